"""BackgroundWork: per-item host work beside a GPU, with outcomes by key and bounded queueing."""

from __future__ import annotations

import threading
import time

import pytest

from songcorpus.pipeline.background import BackgroundWork


@pytest.mark.parametrize("threads", [0, 2])
def test_outcomes_are_collected_by_key_with_exceptions_kept(threads):
    def job(key: int):
        def run() -> int:
            if key == 3:
                raise ValueError("bad item")
            return key * key
        return run

    with BackgroundWork[int](threads) as work:
        for key in range(6):
            work.submit(key, job(key))
    assert {k: v for k, v in work.outcomes.items() if k != 3} == {0: 0, 1: 1, 2: 4, 4: 16, 5: 25}
    assert isinstance(work.outcomes[3], ValueError)


def test_queue_is_bounded_so_outputs_cannot_pile_up():
    lock = threading.Lock()
    outstanding = 0
    most = 0

    def slow() -> None:
        nonlocal outstanding
        time.sleep(0.01)
        with lock:
            outstanding -= 1

    with BackgroundWork[None](2) as work:
        for key in range(20):
            with lock:
                outstanding += 1
                most = max(most, outstanding)
            work.submit(key, slow)
    assert len(work.outcomes) == 20
    assert most <= 2 * 2 + 1  # the queue limit, plus the job being submitted


def test_negative_threads_is_refused():
    with pytest.raises(ValueError, match="threads"):
        BackgroundWork(-1)
