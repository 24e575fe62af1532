"""Run one phase: a chain of stages streamed through Ray Data, watched for stalls.

A phase ends at a barrier stage (one whose outcomes are revised together on the driver) or at the
end of the pipeline. Inside a phase, items stream from stage to stage without waiting for each other.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

import pyarrow as pa
import ray

from ..schemas.records import STREAM_SCHEMA
from .ledger import Ledger
from .resources import StagePlan
from .storage import Storage
from .worker import StageTask, StageWorker

log = logging.getLogger(__name__)


class StallError(RuntimeError):
    """A phase made no progress for longer than the configured stall timeout."""


@dataclass(frozen=True)
class PlannedStage:
    task: StageTask
    plan: StagePlan
    weights: str | None
    priors_ref: ray.ObjectRef


def run_phase(
    storage: Storage,
    rows: list[dict],
    stages: list[PlannedStage],
    *,
    stall_timeout_s: float,
    poll_s: float = 2.0,
) -> pa.Table | None:
    """Stream ``rows`` (``item_id``, ``fingerprint``, ``record``) through ``stages``.

    Returns the last stage's outcome rows when it is a barrier stage (the driver must finalize and
    log them), else None (every worker logged its own outcomes).
    """
    ds = ray.data.from_arrow(stream_blocks(rows, stages[0].plan.batch_size))
    for st in stages:
        ds = ds.map_batches(
            StageWorker,
            fn_constructor_kwargs={"task": st.task, "priors": st.priors_ref, "weights": st.weights},
            batch_size=st.plan.batch_size,
            batch_format="pyarrow",
            num_cpus=st.plan.num_cpus,
            num_gpus=st.plan.num_gpus or None,
            compute=ray.data.ActorPoolStrategy(
                min_size=st.plan.min_workers,
                max_size=st.plan.max_workers,
                initial_size=st.plan.initial_workers,
                # Call the stage on the thread that built it (one call at a time all the same). Ray
                # Data's default hands each call to a second thread; a torch model set up on the
                # first then owns two OpenMP thread teams, more threads than CPUs, and libgomp
                # throttles its spin-waits: ~10% slower on CPU, measured in bench_separate.py.
                enable_true_multi_threading=True,
            ),
        )
    keep = stages[-1].task.stage_cls.barrier
    progress = _Progress(Ledger(storage), [s.task.stage_cls.name for s in stages], stages[0].task.run_id)
    collected: list[pa.Table] = []
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                progress.rows_seen += batch.num_rows
                if keep:
                    collected.append(batch)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the driver thread below
            failure.append(exc)

    consumer = threading.Thread(target=consume, name="phase-consumer", daemon=True)
    consumer.start()
    while consumer.is_alive():
        consumer.join(timeout=poll_s)
        if progress.idle_seconds() > stall_timeout_s:
            detail = progress.describe()
            raise StallError(
                f"no progress for {stall_timeout_s:g}s in stages {progress.stages}: {detail}; "
                f"cluster has {ray.available_resources()} free of {ray.cluster_resources()}"
            )
    if failure:
        raise failure[0]
    if not keep:
        return None
    return pa.concat_tables(collected) if collected else None


class _Progress:
    """Counts outcomes as workers log them, to show progress and to notice a stall."""

    def __init__(self, ledger: Ledger, stages: list[str], run_id: str) -> None:
        self.ledger = ledger
        self.stages = stages
        self.run_id = run_id
        self.rows_seen = 0
        self._last_state: tuple = ()
        self._last_change = time.monotonic()
        self._last_log = 0.0

    def _state(self) -> tuple:
        return tuple(self.ledger.rows_logged(s, self.run_id) for s in self.stages) + (self.rows_seen,)

    def idle_seconds(self) -> float:
        state = self._state()
        now = time.monotonic()
        if state != self._last_state:
            self._last_state, self._last_change = state, now
            if now - self._last_log > 10:
                self._last_log = now
                log.info("progress: %s", self.describe())
        return now - self._last_change

    def describe(self) -> str:
        counts = ", ".join(f"{s}: {n} items done" for s, n in zip(self.stages, self._last_state))
        return f"{counts}; {self.rows_seen} rows out of the phase"


def stream_blocks(rows: list[dict], block_rows: int) -> list[pa.Table]:
    """The phase input as Arrow blocks of small metadata rows, one first-stage batch per block.

    Built on the driver and handed to Ray directly (no file read), because a file-based read adds a
    listing task that needs a whole CPU and can starve behind the actor pools on a small machine.
    One batch per block keeps every actor of the pool busy (a block is never split across actors)
    and bounds the work an orphaned worker finishes after its driver is killed.
    """
    table = pa.Table.from_pylist(
        [
            {"item_id": r["item_id"], "fingerprint": r["fingerprint"], "record": json.dumps(r["record"])}
            for r in rows
        ],
        schema=STREAM_SCHEMA,
    )
    return [table.slice(i, block_rows) for i in range(0, table.num_rows, block_rows)]
