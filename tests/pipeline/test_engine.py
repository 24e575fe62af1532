"""The engine on a real embedded Ray: resource fitting, per-item failures, retries, stalls, crashes."""

from __future__ import annotations

import json
import time

import pyarrow.compute as pc
import pytest
import ray

from songcorpus.pipeline.ledger import Ledger
from songcorpus.pipeline.phase import StallError
from songcorpus.pipeline.runner import PhaseContext, new_run_id, run_chain
from songcorpus.pipeline.storage import Storage
from tests.pipeline import toy_stages
from tests.pipeline.toy_stages import ToyA, ToyB, ToyC, ToyConfig, ToyD

ray.cloudpickle.register_pickle_by_value(toy_stages)

ROWS = [{"item_id": f"i{i}", "fingerprint": f"in{i}", "record": {"n": i}} for i in range(8)]


def context(root, cluster, max_attempts=3, stall_timeout_s=60.0) -> PhaseContext:
    return PhaseContext(Storage(str(root)), cluster, new_run_id(), None, max_attempts, stall_timeout_s)


def run_rows(ctx, ledger, stage):
    table = ledger.read(stage)
    return {r["item_id"]: r for r in table.filter(pc.equal(table["run_id"], ctx.run_id)).to_pylist()}


@pytest.mark.timeout(180)
def test_four_one_cpu_actor_stages_finish_on_two_cpus(tmp_path, ray_cluster):
    ctx = context(tmp_path, ray_cluster)
    stages = [(cls, ToyConfig()) for cls in (ToyA, ToyB, ToyC, ToyD)]
    run_chain(ctx, stages, ROWS)
    ledger = Ledger(ctx.storage)
    for cls in (ToyA, ToyB, ToyC, ToyD):
        rows = run_rows(ctx, ledger, cls.name)
        assert len(rows) == len(ROWS) and all(r["status"] == "ok" for r in rows.values())
        # a model set up on one thread and called on another costs ~10% on CPU (two OpenMP teams)
        assert all(json.loads(r["record"])["on_setup_thread"] for r in rows.values())


@pytest.mark.timeout(180)
def test_exception_rejects_one_item_and_is_retried_up_to_the_limit(tmp_path, ray_cluster):
    stages = [(ToyA, ToyConfig(fail_items=("i3",), reject_items=("i5",))), (ToyB, ToyConfig())]
    ledger = Ledger(Storage(str(tmp_path)))
    attempts = []
    for _ in range(3):
        ctx = context(tmp_path, ray_cluster, max_attempts=2)
        run_chain(ctx, stages, ROWS)
        a, b = run_rows(ctx, ledger, "toy_a"), run_rows(ctx, ledger, "toy_b")
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
    ctx = context(tmp_path / "out", ray_cluster)
    run_chain(ctx, [(ToyA, ToyConfig(die_items=("i2", "i5"), marker_dir=str(markers)))], ROWS)
    assert sorted(p.name for p in markers.iterdir()) == ["i2", "i5"]  # the worker really died twice
    rows = run_rows(ctx, Ledger(ctx.storage), "toy_a")
    assert sorted(rows) == sorted(r["item_id"] for r in ROWS)
    assert all(r["status"] == "ok" for r in rows.values())


@pytest.mark.timeout(180)
def test_a_stage_without_progress_is_reported_not_waited_on(tmp_path, ray_cluster):
    ctx = context(tmp_path, ray_cluster, stall_timeout_s=2.0)
    slow = ToyConfig(sleep_s=20.0)
    started = time.monotonic()
    with pytest.raises(StallError, match="no progress for 2s in stages \\['toy_a'\\]"):
        run_chain(ctx, [(ToyA, slow)], ROWS[:1])
    waited = time.monotonic() - started
    assert waited < 15.0
    time.sleep(22.0 - waited)  # let the abandoned batch drain before the next test uses the cluster
