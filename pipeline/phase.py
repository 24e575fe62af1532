"""Run one phase: plan every item on the driver, stream what must be computed through Ray Data.

A phase is a chain of stages that stream into each other; it ends at a barrier stage (whose
outcomes are revised together on the driver) or at the end of the pipeline. Fingerprints pass
through unchanged inside a phase, so the driver knows every item's fingerprint at every stage
before anything runs. From the ledger alone it decides, per item and stage, "reuse" (ok, or a final
rejection) or "compute from here on"; reused outcomes are logged at once and never reach a worker.
Only the stages from the first one with work to do start actors, and a phase with nothing to
compute starts none and loads no model.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import pyarrow as pa
import ray

from ..schemas.base import StageConfig
from ..schemas.records import LEDGER_SCHEMA, OK, PHASE_SCHEMA, Outcome
from .errors import UserError
from .fingerprint import stage_fingerprinter
from .ledger import Ledger, LedgerWriter, Prior
from .resources import ResourcePlan
from .stage import Stage, is_barrier
from .tracker import Tracker
from .worker import StageWorker, WorkerSpec

log = logging.getLogger(__name__)


class StallError(UserError):
    """A phase made no progress for longer than the configured stall timeout."""


class SharedFailureError(UserError):
    """Every item a stage computed failed with the same error: a fault of the job, not of the items."""


@dataclass(frozen=True)
class PhaseStage:
    """A stage as a phase runs it: its class, config, weights hash and fitted resources."""

    cls: type[Stage]
    config: StageConfig
    weights: str | None
    resources: ResourcePlan

    @property
    def name(self) -> str:
        return self.cls.name

    @cached_property
    def fingerprint(self) -> Callable[[str], str]:
        """The fingerprint of this stage's output for an input fingerprint."""
        return stage_fingerprinter(stage=self.cls.name, version=self.cls.version,
                                   config=self.config.fingerprint_fields(), weights=self.weights)


@dataclass(frozen=True)
class InputRow:
    """An item entering a phase: its id, its input fingerprint and its record as JSON text."""

    item_id: str
    fingerprint: str
    record: str


@dataclass(frozen=True)
class PhaseRun:
    """What every phase of one run shares."""

    ledger: Ledger
    writer: LedgerWriter
    tracker: Tracker
    run_id: str
    max_attempts: int
    stall_timeout_s: float
    input_base: str | None = None
    #: a stage whose first this-many computed items (all, when fewer, and at least 2) fail with one
    #: error stops the run (0: never)
    fail_fast_items: int = 8


@dataclass
class PhasePlan:
    """The driver's decisions for one phase."""

    stream: dict[str, list] = field(default_factory=lambda: {name: [] for name in PHASE_SCHEMA.names})
    #: per stage: items reused ok / reused rejected / sent to compute
    reused_ok: list[int] = field(default_factory=list)
    reused_rejected: list[int] = field(default_factory=list)
    to_compute: list[int] = field(default_factory=list)
    #: the last stage's reused outcomes when it is a barrier (finalized with the computed ones)
    barrier_reused: list[Outcome] = field(default_factory=list)

    @property
    def first_compute(self) -> int | None:
        starts = self.stream["start"]
        return min(starts) if starts else None


class _Reuses:
    """The reused outcomes of one stage, gathered as columns and logged as one table."""

    COLUMNS = ("item_id", "fingerprint", "status", "reason", "message", "retryable", "attempt", "audio_seconds")

    def __init__(self) -> None:
        self.columns: dict[str, list] = {c: [] for c in self.COLUMNS}

    def add(self, item_id: str, fingerprint: str, prior: Prior) -> None:
        c = self.columns
        c["item_id"].append(item_id)
        c["fingerprint"].append(fingerprint)
        c["status"].append(prior.status)
        c["reason"].append(prior.reason)
        c["message"].append(prior.message)
        c["retryable"].append(prior.retryable)
        c["attempt"].append(prior.attempts)
        c["audio_seconds"].append(prior.audio_seconds)

    def table(self, run_id: str, stage: PhaseStage, now: float) -> pa.Table:
        n = len(self.columns["item_id"])
        constant = {"run_id": run_id, "stage": stage.name, "stage_version": stage.cls.version, "reused": True,
                    "record": None, "seconds": 0.0, "finished_at": now, "started_at": now, "worker": "driver",
                    "timings": None}
        arrays = [pa.array(self.columns[f.name], f.type) if f.name in self.columns
                  else pa.array([constant[f.name]] * n, f.type) for f in LEDGER_SCHEMA]
        return pa.Table.from_arrays(arrays, schema=LEDGER_SCHEMA)


def plan_phase(run: PhaseRun, stages: list[PhaseStage], rows: Iterator[InputRow]) -> PhasePlan:
    """Decide, from the ledger alone, what each item needs at each stage; log the reuses.

    This is the whole cost of a rerun with nothing to do, so it is one sha256 and one dict lookup
    per item and stage, and the reuses are logged as columns, not row objects.
    """
    priors: list[dict[str, Prior]] = [run.ledger.priors(st.name) for st in stages]
    n = len(stages)
    plan = PhasePlan(reused_ok=[0] * n, reused_rejected=[0] * n, to_compute=[0] * n)
    keep_last = is_barrier(stages[-1].cls)
    reuses = [_Reuses() for _ in stages]
    fingerprinters = [st.fingerprint for st in stages]
    rechecks = [st.cls.recheck_reasons for st in stages]
    now = time.time()
    for row in rows:
        fps, fp = [], row.fingerprint
        for fingerprint in fingerprinters:
            fp = fingerprint(fp)
            fps.append(fp)
        record, start = row.record, None
        for j in range(n):
            prior = priors[j].get(fps[j])
            if prior is None or not prior.is_final(run.max_attempts) or prior.reason in rechecks[j]:
                start = j
                break
            ok = prior.status == OK
            if ok:
                plan.reused_ok[j] += 1
            else:
                plan.reused_rejected[j] += 1
            if keep_last and j == n - 1:
                plan.barrier_reused.append(Outcome(
                    row.item_id, fps[j], prior.status, None if prior.record is None else json.loads(prior.record),
                    prior.reason, prior.message, prior.retryable, reused=True, attempt=prior.attempts,
                    audio_seconds=prior.audio_seconds, finished_at=now, worker="driver"))
            else:
                reuses[j].add(row.item_id, fps[j], prior)
            if not ok:
                break
            record = prior.record or "{}"
        if start is None:
            continue
        for j in range(start, n):
            plan.to_compute[j] += 1
        stream = plan.stream
        stream["item_id"].append(row.item_id)
        stream["record"].append(record)
        stream["status"].append(OK)
        stream["start"].append(start)
        stream["fingerprints"].append(fps)
        stream["attempts"].append([p.attempts if (p := priors[j].get(fps[j])) else 0 for j in range(n)])
    for st, reused in zip(stages, reuses, strict=True):
        run.writer.add_table(st.name, reused.table(run.run_id, st, now))
    return plan


def stream_phase(
    run: PhaseRun,
    stages: list[PhaseStage],
    plan: PhasePlan,
    on_poll: Callable[[dict], None],
    *,
    poll_s: float = 1.0,
) -> list[Outcome]:
    """Compute what ``plan`` sends to workers; log every outcome; return the last stage's if it is a barrier."""
    first = plan.first_compute
    if first is None:
        return []
    table = pa.Table.from_pydict(plan.stream, schema=PHASE_SCHEMA)
    block = stages[first].resources.batch_size
    ds: ray.data.Dataset = ray.data.from_arrow([table.slice(i, block) for i in range(0, table.num_rows, block)])
    for index in range(first, len(stages)):
        st = stages[index]
        spec = WorkerSpec(st.cls, st.config, index, run.ledger.storage.root, run.run_id, run.max_attempts,
                          run.tracker.actor(), run.input_base)
        ds = ds.map_batches(
            StageWorker,
            fn_constructor_kwargs={"spec": spec},
            batch_size=st.resources.batch_size,
            batch_format="pyarrow",
            num_cpus=st.resources.num_cpus,
            num_gpus=st.resources.num_gpus or None,
            compute=ray.data.ActorPoolStrategy(
                min_size=st.resources.min_workers,
                max_size=st.resources.max_workers,
                initial_size=st.resources.initial_workers,
                # Call the stage on the thread that built it (one call at a time all the same). Ray
                # Data's default hands each call to a second thread; a torch model set up on the
                # first then owns two OpenMP thread teams, more threads than CPUs, and libgomp
                # throttles its spin-waits: ~10% slower on CPU, measured in bench_separate.py.
                enable_true_multi_threading=True,
            ),
        )
    last = stages[-1]
    barrier = is_barrier(last.cls)
    collected: list[Outcome] = []
    failure: list[BaseException] = []
    rows_out = [0]

    def consume() -> None:
        try:
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                assert isinstance(batch, pa.Table)  # batch_format="pyarrow"
                rows_out[0] += batch.num_rows
        except BaseException as exc:  # noqa: BLE001 - re-raised in the driver thread below
            failure.append(exc)

    def log_drained() -> dict:
        """Log what workers finished since the last poll; returns the tracker's snapshot."""
        snapshot, tables = run.tracker.drain()
        for table in tables:
            if table.num_rows == 0:
                continue
            stage = table["stage"][0].as_py()
            run.writer.add_table(stage, table)
            if barrier and stage == last.name:
                collected.extend(_outcome_of(row) for row in table.to_pylist())
            breaker.saw(stage, table)
        run.writer.tick()
        return snapshot

    breaker = _SharedFailure({st.name: n for st, n in zip(stages, plan.to_compute, strict=True)}, run.fail_fast_items)
    consumer = threading.Thread(target=consume, name="phase-consumer", daemon=True)
    consumer.start()
    watch = _StallWatch([st.name for st in stages[first:]], run.stall_timeout_s)
    while consumer.is_alive():
        consumer.join(timeout=poll_s)
        snapshot = log_drained()
        on_poll({"stages": run.writer.durable})
        watch.check(snapshot, rows_out[0])
    if failure:
        raise failure[0]
    log_drained()  # every worker handed its rows in before its batch moved on
    return collected


def _outcome_of(row: dict) -> Outcome:
    fields = set(Outcome.__dataclass_fields__) - {"record", "timings"}
    outcome = Outcome(**{k: row[k] for k in fields})
    outcome.record = None if row["record"] is None else json.loads(row["record"])
    outcome.timings = dict(row["timings"] or [])
    return outcome


class _SharedFailure:
    """Stops the phase when a stage's first computed items all fail with the same error.

    Only errors count (retryable rejections: an exception, a dead worker), never a stage's verdict on
    an item: a model, a path or a device that is missing makes every item fail the same way, and
    computing the rest would only log the same failure thousands of times.
    """

    def __init__(self, to_compute: dict[str, int], items: int) -> None:
        self.needed = {stage: min(items, n) for stage, n in to_compute.items() if items and n >= 2}
        self.failures: dict[str, list[tuple[str | None, str | None]]] = {stage: [] for stage in self.needed}

    def saw(self, stage: str, outcomes: pa.Table) -> None:
        """Look at a batch of ``stage``'s computed outcomes (until the stage has shown it works)."""
        if stage not in self.failures:
            return
        for row in outcomes.select(["status", "retryable", "reason", "message"]).to_pylist():
            self._saw(stage, row)
            if stage not in self.failures:
                return

    def _saw(self, stage: str, row: dict) -> None:
        failures = self.failures[stage]
        if row["status"] == OK or not row["retryable"] or (failures and failures[0] != (row["reason"], row["message"])):
            del self.failures[stage]  # this stage works for some items, or fails for several reasons
            return
        failures.append((row["reason"], row["message"]))
        if len(failures) >= self.needed[stage]:
            raise SharedFailureError(
                f"stage {stage}: the first {len(failures)} items it computed all failed with {row['reason']}: "
                f"{row['message']}. One cause for every item is a fault of the job (a model, a path, a device), "
                "not of the songs: fix it and run again (these items are logged as retryable rejections)"
            )


class _StallWatch:
    """Raises :class:`StallError` when neither the workers' counts nor the rows out changed for too long."""

    def __init__(self, stages: list[str], timeout_s: float) -> None:
        self.stages, self.timeout_s = stages, timeout_s
        self._state: tuple = ()
        self._changed = time.monotonic()

    def check(self, snapshot: dict, rows_out: int) -> None:
        counts = snapshot["stages"]
        state: tuple = (*((counts.get(s, {}).get("ok"), counts.get(s, {}).get("rejected")) for s in self.stages),
                        rows_out)
        now = time.monotonic()
        if state != self._state:
            self._state, self._changed = state, now
        elif now - self._changed > self.timeout_s:
            counts = zip(self.stages, state[:-1], strict=True)
            done = ", ".join(f"{s}: {ok or 0} ok, {rej or 0} rejected" for s, (ok, rej) in counts)
            raise StallError(
                f"no progress for {self.timeout_s:g}s in stages {self.stages}: {done}; {rows_out} rows out of "
                f"the phase; cluster has {ray.available_resources()} free of {ray.cluster_resources()}"
            )
