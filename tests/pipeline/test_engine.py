"""The engine on a real embedded Ray: resource fitting, per-item failures, retries, stalls, crashes."""

from __future__ import annotations

import json
import threading
import time

import pytest
import ray

from songcorpus.pipeline.phase import InputRow, SharedFailureError, StallError
from songcorpus.pipeline.runner import RunSession, new_run_id
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.base import Resources
from tests.pipeline import toy_stages
from tests.pipeline.toy_stages import ToyA, ToyB, ToyC, ToyConfig, ToyD

ray.cloudpickle.register_pickle_by_value(toy_stages)

ROWS = [{"item_id": f"i{i}", "fingerprint": f"in{i}", "record": {"n": i}} for i in range(8)]


def run_chain(root, cluster, stages, rows, *, max_attempts=3, stall_timeout_s=60.0) -> RunSession:
    """Run ``stages`` as one phase over ``rows`` in a run of its own; returns the finished session."""
    session = RunSession(Storage(str(root)), cluster, new_run_id(), max_attempts=max_attempts,
                         stall_timeout_s=stall_timeout_s)
    with session:
        session.phase(stages, [InputRow(r["item_id"], r["fingerprint"], json.dumps(r["record"])) for r in rows])
    return session


def run_rows(session, stage):
    rows = session.run.ledger.run_rows(stage, session.run.run_id)
    return {r["item_id"]: r for r in rows.to_pylist()}


@pytest.mark.timeout(180)
def test_four_one_cpu_actor_stages_finish_on_two_cpus(tmp_path, ray_cluster):
    stages = [(cls, ToyConfig()) for cls in (ToyA, ToyB, ToyC, ToyD)]
    session = run_chain(tmp_path, ray_cluster, stages, ROWS)
    for cls in (ToyA, ToyB, ToyC, ToyD):
        rows = run_rows(session, cls.name)
        assert len(rows) == len(ROWS) and all(r["status"] == "ok" for r in rows.values())
        # a model set up on one thread and called on another costs ~10% on CPU (two OpenMP teams)
        assert all(json.loads(r["record"])["on_setup_thread"] for r in rows.values())


@pytest.mark.timeout(180)
def test_exception_rejects_one_item_and_is_retried_up_to_the_limit(tmp_path, ray_cluster):
    stages = [(ToyA, ToyConfig(fail_items=("i3",), reject_items=("i5",))), (ToyB, ToyConfig())]
    attempts = []
    for _ in range(3):
        session = run_chain(tmp_path, ray_cluster, stages, ROWS, max_attempts=2)
        a, b = run_rows(session, "toy_a"), run_rows(session, "toy_b")
        assert len(a) == 8 and len(b) == 6  # accounting closes: b sees only a's ok items
        assert a["i3"]["reason"] == "error_ValueError" and "boom on i3" in a["i3"]["message"]
        assert a["i5"]["reason"] == "toy_reject" and not a["i5"]["retryable"]
        attempts.append((a["i3"]["attempt"], a["i3"]["reused"], a["i5"]["reused"], a["i0"]["reused"]))
    # run 1 computes all; run 2 retries only the failed item; run 3 has used up its 2 attempts
    assert attempts == [(1, False, False, False), (2, False, True, True), (2, True, True, True)]


@pytest.mark.timeout(180)
def test_worker_killed_mid_batch_is_restarted_and_nothing_is_lost(tmp_path, ray_cluster):
    markers = tmp_path / "markers"
    markers.mkdir()
    session = run_chain(tmp_path / "out", ray_cluster,
                        [(ToyA, ToyConfig(die_items=("i2", "i5"), marker_dir=str(markers)))], ROWS)
    assert sorted(p.name for p in markers.iterdir()) == ["i2", "i5"]  # the worker really died twice
    rows = run_rows(session, "toy_a")
    assert sorted(rows) == sorted(r["item_id"] for r in ROWS)
    assert all(r["status"] == "ok" for r in rows.values())


@pytest.mark.timeout(180)
def test_a_stage_without_progress_is_reported_not_waited_on(tmp_path, ray_cluster):
    slow = ToyConfig(sleep_s=45.0)  # far longer than the stall timeout plus actor start-up on a busy machine
    started = time.monotonic()
    with pytest.raises(StallError, match="no progress for 2s in stages \\['toy_a'\\]"):
        run_chain(tmp_path, ray_cluster, [(ToyA, slow)], ROWS[:1], stall_timeout_s=2.0)
    waited = time.monotonic() - started
    assert waited < 40.0
    time.sleep(max(0.0, 47.0 - waited))  # let the abandoned batch drain before the next test uses the cluster


def setups(folder, stage: str) -> int:
    return sum(1 for p in folder.iterdir() if p.name.startswith(f"{stage}-"))


@pytest.mark.timeout(240)
def test_a_rerun_decides_on_the_driver_and_starts_no_actor_for_finished_stages(tmp_path, ray_cluster):
    marks = tmp_path / "setups"
    marks.mkdir()
    a, b = ToyConfig(setup_dir=str(marks), reject_items=("i1",)), ToyConfig(setup_dir=str(marks))
    first = run_chain(tmp_path / "out", ray_cluster, [(ToyA, a), (ToyB, b)], ROWS)
    assert setups(marks, "toy_a") >= 1 and setups(marks, "toy_b") >= 1
    before = {stage: setups(marks, stage) for stage in ("toy_a", "toy_b")}

    again = run_chain(tmp_path / "out", ray_cluster, [(ToyA, a), (ToyB, b)], ROWS)
    assert {stage: setups(marks, stage) for stage in ("toy_a", "toy_b")} == before  # no actor, no model
    rows_a, rows_b = run_rows(again, "toy_a"), run_rows(again, "toy_b")
    assert len(rows_a) == 8 and all(r["reused"] and r["worker"] == "driver" for r in rows_a.values())
    assert rows_a["i1"]["status"] == "rejected" and "i1" not in rows_b and len(rows_b) == 7
    assert again.tracker_snapshot["stages"] == {}  # no worker saw a batch

    # a new config for the second stage only: the first stays on the driver, the second recomputes
    b2 = ToyConfig(setup_dir=str(marks), sleep_s=0.001)
    third = run_chain(tmp_path / "out", ray_cluster, [(ToyA, a), (ToyB, b2)], ROWS)
    assert setups(marks, "toy_a") == before["toy_a"] and setups(marks, "toy_b") > before["toy_b"]
    rows_b = run_rows(third, "toy_b")
    assert len(rows_b) == 7 and not any(r["reused"] for r in rows_b.values())
    # the record the second stage read came from the ledger: the first stage's output, not a file
    assert all(json.loads(r["record"])["path"] == ["toy_a", "toy_b"] for r in rows_b.values())
    assert first.run.run_id != third.run.run_id


@pytest.mark.timeout(300)
def test_an_item_that_kills_its_worker_every_time_is_rejected_and_the_run_finishes(tmp_path, ray_cluster):
    session = run_chain(tmp_path, ray_cluster, [(ToyA, ToyConfig(always_die_items=("i4",))), (ToyB, ToyConfig())],
                        ROWS, max_attempts=2)
    a, b = run_rows(session, "toy_a"), run_rows(session, "toy_b")
    assert sorted(a) == sorted(r["item_id"] for r in ROWS)  # accounting closes: one outcome per item
    assert a["i4"]["status"] == "rejected" and a["i4"]["reason"] == "worker_died"
    assert a["i4"]["attempt"] == 2 and "died 2 times" in a["i4"]["message"]
    assert all(r["status"] == "ok" for k, r in a.items() if k != "i4") and sorted(b) == sorted(set(a) - {"i4"})
    assert session.tracker_snapshot["stages"]["toy_a"]["deaths"] >= 2
    # final: a rerun does not feed the poison pill to a worker again
    again = run_chain(tmp_path, ray_cluster, [(ToyA, ToyConfig(always_die_items=("i4",))), (ToyB, ToyConfig())],
                      ROWS, max_attempts=2)
    assert run_rows(again, "toy_a")["i4"]["reused"] and again.tracker_snapshot["stages"] == {}


@pytest.mark.timeout(180)
def test_an_outcome_is_durable_once_its_stage_is_done_not_when_its_phase_is(tmp_path, ray_cluster):
    """toy_a's outcomes reach the ledger (flushed within a second) while toy_b still holds the same items."""
    stages = [(ToyA, ToyConfig()), (ToyB, ToyConfig(sleep_s=2.0, resources=Resources(batch_size=1, max_workers=1)))]
    session = RunSession(Storage(str(tmp_path)), ray_cluster, new_run_id(), flush_seconds=1.0)
    ledger = session.run.ledger
    rows = [InputRow(r["item_id"], r["fingerprint"], json.dumps(r["record"])) for r in ROWS[:4]]
    seen: list[tuple[int, int]] = []  # (toy_a rows, toy_b rows) in the ledger while the phase ran
    with session:
        phase = threading.Thread(target=session.phase, args=(stages, rows))
        phase.start()
        while phase.is_alive():
            logged = {stage: ledger.read(stage, ["item_id"]).num_rows if ledger.storage.exists(f"ledger/{stage}")
                      else 0 for stage in ("toy_a", "toy_b")}
            seen.append((logged["toy_a"], logged["toy_b"]))
            time.sleep(0.2)
        phase.join()
    # every toy_a outcome was durable while toy_b had finished at most one item (2 s each, one at a time)
    assert any(a == 4 and b <= 1 for a, b in seen), seen
    assert len(run_rows(session, "toy_b")) == 4


@pytest.mark.timeout(180)
def test_a_stage_whose_items_all_fail_the_same_way_stops_the_run(tmp_path, ray_cluster):
    failing = ToyConfig(fail_items=tuple(r["item_id"] for r in ROWS))  # "boom on iN": a message of its own each
    session = run_chain(tmp_path / "varied", ray_cluster, [(ToyA, failing)], ROWS)  # messages differ: no stop
    assert all(r["reason"] == "error_ValueError" for r in run_rows(session, "toy_a").values())

    class SameError(ToyA):
        def process(self, item_id, record, fingerprint):
            raise OSError("model file /models/x.th is missing")

    with pytest.raises(SharedFailureError, match="first 8 items it computed all failed with error_OSError"):
        run_chain(tmp_path / "same", ray_cluster, [(SameError, ToyConfig())],
                  [{**r, "item_id": f"{r['item_id']}{copy}"} for r in ROWS for copy in "ab"])
