"""The Ray Data UDF that runs one stage over batches: skip what is done, isolate failures, log outcomes."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass

import pyarrow as pa
import ray

from ..schemas.base import StageConfig
from ..schemas.records import OK, REJECTED, Outcome
from .fingerprint import stage_fingerprint
from .ledger import Ledger, Prior, outcomes_to_table
from .stage import Reject, Result, Stage, StageContext
from .storage import Storage, artifact_path

log = logging.getLogger(__name__)

RECORD_FILE = "record.json"
#: Extra columns on a worker's output: what the next stage knows the item by (see Stage.hand_off).
NEXT_ITEM_ID = "next_item_id"
NEXT_FINGERPRINT = "next_fingerprint"


@dataclass(frozen=True)
class Item:
    item_id: str
    input_fingerprint: str
    record_json: str


@dataclass(frozen=True)
class StageTask:
    """Everything a worker needs to run one stage; small and picklable."""

    stage_cls: type[Stage]
    config: StageConfig
    root: str
    run_id: str
    max_attempts: int
    input_base: str | None = None
    #: Barrier stages are logged by the driver after ``finalize``; others log per batch here.
    log_outcomes: bool = True


class StageWorker:
    """Callable class for ``Dataset.map_batches``: one instance per actor, model loaded once."""

    def __init__(self, task: StageTask, priors: ray.ObjectRef, weights: str | None) -> None:
        """``priors`` (fingerprint → earlier outcome) is shared through the object store, not copied per task."""
        storage = Storage(task.root)
        self.task = task
        self.storage = storage
        self.ledger = Ledger(storage)
        self.priors: dict[str, Prior] = ray.get(priors)
        self.weights = weights
        self.config_fields = task.config.fingerprint_fields()
        self.stage = task.stage_cls(task.config, StageContext(storage, task.input_base, task.run_id))
        self.stage.setup()
        self.worker_name = f"{socket.gethostname()}:{ray.get_runtime_context().get_node_id()[:12]}:{os.getpid()}"

    def __call__(self, batch: pa.Table) -> pa.Table:
        items = [
            Item(row.get(NEXT_ITEM_ID) or row["item_id"], row.get(NEXT_FINGERPRINT) or row["fingerprint"],
                 row["record"])
            for row in batch.to_pylist()
            if row.get("status", OK) == OK  # rejected upstream: accounted for in that stage's ledger
        ]
        outcomes = self.run_items(items)
        if self.task.log_outcomes:
            self.ledger.append(self.task.run_id, self.stage.name, self.stage.version, outcomes)
        table = outcomes_to_table(self.task.run_id, self.stage.name, self.stage.version, outcomes)
        handed = [
            self.stage.hand_off(o.item_id, o.fingerprint, o.record) if o.status == OK else (o.item_id, "")
            for o in outcomes
        ]
        table = table.append_column(NEXT_ITEM_ID, pa.array([h[0] for h in handed], pa.string()))
        return table.append_column(NEXT_FINGERPRINT, pa.array([h[1] for h in handed], pa.string()))

    def fingerprint(self, input_fingerprint: str) -> str:
        return stage_fingerprint(
            stage=self.stage.name,
            version=self.stage.version,
            config=self.config_fields,
            weights=self.weights,
            input_fingerprint=input_fingerprint,
        )

    def run_items(self, items: list[Item]) -> list[Outcome]:
        """Outcomes in input order: reused where a final prior exists, else computed as one batch."""
        outcomes: list[Outcome | None] = []
        todo: list[tuple[int, str, int, Item]] = []
        for item in items:
            fp = self.fingerprint(item.input_fingerprint)
            prior = self.priors.get(fp)
            reusable = (
                prior is not None
                and prior.is_final(self.task.max_attempts)
                and prior.reason not in self.stage.recheck_reasons
            )
            reused = self._reuse(item.item_id, fp, prior) if reusable else None
            outcomes.append(reused)
            if reused is None:
                todo.append((len(outcomes) - 1, fp, 1 if prior is None else prior.attempts + 1, item))
        if todo:
            started = time.perf_counter()
            results = self.stage.process_batch(
                [(item.item_id, json.loads(item.record_json), fp) for _, fp, _, item in todo]
            )
            per_item = (time.perf_counter() - started) / len(todo)
            for (index, fp, attempt, item), result in zip(todo, results, strict=True):
                outcome = self._outcome(item.item_id, fp, result)
                outcome.attempt, outcome.seconds = attempt, per_item
                outcome.finished_at, outcome.worker = time.time(), self.worker_name
                outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    def _reuse(self, item_id: str, fp: str, prior: Prior) -> Outcome | None:
        """An outcome from an earlier run, or None if its artifacts are gone and it must be redone."""
        common = {
            "item_id": item_id, "fingerprint": fp, "reused": True, "attempt": prior.attempts,
            "finished_at": time.time(), "worker": self.worker_name,
        }
        if prior.status == OK:
            rel = artifact_path(self.stage.name, fp, RECORD_FILE)
            try:
                record = json.loads(self.storage.read_bytes(rel))
            except (FileNotFoundError, OSError):
                log.warning("%s: record of %s is missing from the artifact store; recomputing", item_id, fp)
                return None
            return Outcome(status=OK, record=record, audio_seconds=prior.audio_seconds, **common)
        return Outcome(
            status=REJECTED, reason=prior.reason, message=prior.message, retryable=prior.retryable, **common
        )

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
        # every output carries the fingerprints of the stage outputs it was made from
        _, content_fp = self.stage.hand_off(item_id, fp, result.record)
        result.record["lineage"] = {**result.record.get("lineage", {}), self.stage.name: content_fp}
        self.storage.write_bytes(
            artifact_path(self.stage.name, fp, RECORD_FILE), json.dumps(result.record, sort_keys=True).encode()
        )
        return Outcome(item_id, fp, OK, record=result.record, audio_seconds=result.audio_seconds)
