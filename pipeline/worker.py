"""The Ray Data UDF that runs one stage of a phase: compute what the driver planned, isolate failures.

Workers never read or write the ledger and never decide what is already done: the driver planned
every item's fingerprints and earlier attempts (see ``pipeline.phase``). A worker computes the
items whose turn it is, hands each item's ledger row to the run tracker as soon as the item is
done at this stage (the driver drains the tracker every second and logs what it gets, so an
outcome is durable within the flush interval whatever stage of the phase it came from), and passes
the row on with its new record.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import ray

from ..schemas.base import StageConfig
from ..schemas.records import LEDGER_SCHEMA, OK, PHASE_SCHEMA, REJECTED, WORKER_DIED, Outcome
from .ledger import outcome_row
from .stage import BarrierStage, Reject, Result, Stage, StageContext
from .storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything an actor needs to run one stage of a phase; small and picklable."""

    stage_cls: type[Stage]
    config: StageConfig
    #: the stage's position in its phase (index into each row's fingerprints and attempts)
    index: int
    root: str
    run_id: str
    max_attempts: int
    tracker: ray.actor.ActorHandle
    input_base: str | None = None


class _WarningCounter(logging.Handler):
    """Counts warnings that libraries log (and Python warnings, through ``logging.captureWarnings``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("songcorpus"):
            first_line = record.getMessage().strip().splitlines()[0] if record.getMessage().strip() else ""
            self.counts[f"{record.name}: {first_line[:160]}"] += 1

    def take(self) -> dict[str, int]:
        counts, self.counts = dict(self.counts), Counter()
        return counts


class StageWorker:
    """Callable class for ``Dataset.map_batches``: one instance per actor, model loaded once."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        self.stage = spec.stage_cls(spec.config, StageContext(Storage(spec.root), spec.input_base, spec.run_id,
                                                              cpus=cpus))
        self.warnings = _WarningCounter()
        logging.captureWarnings(True)
        logging.getLogger().addHandler(self.warnings)
        self.stage.setup()
        node = ray.get_runtime_context().get_node_id()[:12]
        self.worker_name = f"{socket.gethostname()}:{node}:{os.getpid()}"

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        index = self.spec.index
        todo = [row for row in rows if row["status"] == OK and row["start"] <= index]
        if todo:
            for row, logged in zip(todo, self._run(todo), strict=True):
                row["status"] = logged["status"]
                if logged["status"] == OK:
                    row["record"] = logged["record"]
            warnings = self.warnings.take()
            if warnings:
                self.spec.tracker.warn.remote(warnings)
        return pa.Table.from_pylist(rows, schema=PHASE_SCHEMA)

    def _run(self, rows: list[dict]) -> list[dict]:
        """One ledger row per row. A batch that held an item when its worker died runs one item at a time."""
        tracker, name = self.spec.tracker, self.stage.name
        started: bool
        deaths: list[int]
        started, deaths = ray.get(tracker.begin.remote(name, [r["item_id"] for r in rows]))
        if started:
            return self._compute(rows, deaths)
        outcomes = []
        for row in rows:
            _, died = ray.get(tracker.begin.remote(name, [row["item_id"]]))
            outcomes += self._compute([row], died)
        return outcomes

    def _compute(self, rows: list[dict], deaths: list[int]) -> list[dict]:
        """Ledger rows of ``rows`` (started in the tracker); ``deaths``: times each killed a worker before.

        The rows reach the tracker before this returns (and so before the batch moves on): the driver's
        last drain of a phase then finds every outcome of it.
        """
        index, spec = self.spec.index, self.spec
        outcomes: list[Outcome | None] = [None] * len(rows)
        todo = []
        for i, (row, died) in enumerate(zip(rows, deaths, strict=True)):
            earlier = row["attempts"][index] + died
            if died and earlier >= spec.max_attempts:
                outcomes[i] = Outcome(
                    row["item_id"], row["fingerprints"][index], REJECTED, reason=WORKER_DIED, retryable=True,
                    attempt=earlier, finished_at=time.time(), worker=self.worker_name,
                    message=f"the worker process died {died} times while computing this item (a crash in "
                    "native code or an out-of-memory kill); see the Ray worker logs",
                )
            else:
                todo.append((i, earlier + 1))
        timings: dict[str, float] = {}
        if todo:
            started, started_at = time.perf_counter(), time.time()
            self.stage.take_timings()
            results = self.stage.process_batch([
                (rows[i]["item_id"], json.loads(rows[i]["record"]), rows[i]["fingerprints"][index]) for i, _ in todo
            ])
            per_item = (time.perf_counter() - started) / len(todo)
            timings = self.stage.take_timings()
            share = {step: seconds / len(todo) for step, seconds in timings.items()}
            for (i, attempt), result in zip(todo, results, strict=True):
                outcome = self._outcome(rows[i]["item_id"], rows[i]["fingerprints"][index], result)
                outcome.attempt, outcome.seconds, outcome.timings = attempt, per_item, share
                outcome.started_at, outcome.finished_at, outcome.worker = started_at, time.time(), self.worker_name
                outcomes[i] = outcome
        done = [o for o in outcomes if o is not None]
        logged = [outcome_row(spec.run_id, self.stage.name, self.stage.version, o) for o in done]
        table = pa.Table.from_pylist(logged, schema=LEDGER_SCHEMA)  # built here, in parallel, not on the driver
        ray.get(spec.tracker.finish.remote(self.stage.name, [r["item_id"] for r in rows], timings, table))
        return logged

    def _outcome(self, item_id: str, fp: str, result: Result | BaseException) -> Outcome:
        if isinstance(result, Reject):
            return Outcome(
                item_id, fp, REJECTED, reason=result.reason, message=result.message, retryable=result.retryable
            )
        if isinstance(result, BaseException):  # one bad item must never fail its batch
            log.warning("%s failed on %s: %s", self.stage.name, item_id, "".join(
                traceback.format_exception(result)))
            return Outcome(
                item_id, fp, REJECTED, reason=f"error_{type(result).__name__}", message=str(result)[:500],
                retryable=True,
            )
        # every output carries the fingerprints of the stage outputs it was made from; a barrier stage's
        # entry is the fingerprint its hand-off gives the next phase, so the logged record is final
        stage = self.stage
        lineage = stage.hand_off(item_id, fp, result.record)[1] if isinstance(stage, BarrierStage) else fp
        result.record["lineage"] = {**result.record.get("lineage", {}), stage.name: lineage}
        return Outcome(item_id, fp, OK, record=result.record, audio_seconds=result.audio_seconds)
