"""Run a job: read its source, run its phases on Ray, log every outcome, write the report."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import pyarrow.compute as pc

from ..schemas.base import StageConfig
from ..schemas.job import JobSpec
from ..schemas.records import OK, Outcome
from . import report as report_mod
from .console import PhaseProgress, run_log
from .errors import UserError
from .ledger import Ledger, LedgerWriter, outcome_row
from .phase import InputRow, PhaseRun, PhaseStage, StallError, plan_phase, stream_phase
from .registry import stage_class
from .resources import ResourcePlan, fit_resources
from .root_lock import RootLock
from .runtime import Cluster, check_address, ray_session
from .stage import BarrierStage, Source, SourceStage, Stage, StageContext, is_barrier
from .storage import Storage
from .tracker import Tracker
from .versions import stage_identity

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: str
    status: str
    report: dict
    report_path: str


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def split_phases(stages: list[type[Stage]]) -> list[list[type[Stage]]]:
    """Cut the stage chain after every barrier stage."""
    phases: list[list[type[Stage]]] = [[]]
    for cls in stages:
        phases[-1].append(cls)
        if is_barrier(cls):
            phases.append([])
    return [p for p in phases if p]


class RunSession:
    """One run's shared state on the driver: ledger writer, tracker, resource plans, notices.

    ``run_job`` drives it through a job's phases; tests and benchmarks drive it with their own stages.
    Use it as a context manager: leaving it flushes the ledger and stops the tracker.
    """

    def __init__(self, storage: Storage, cluster: Cluster, run_id: str, *, max_attempts: int = 3,
                 stall_timeout_s: float = 1800.0, input_base: str | None = None, job: dict | None = None,
                 identities: dict[str, str] | None = None, flush_seconds: float = 10.0,
                 fail_fast_items: int = 8) -> None:
        ledger = Ledger(storage)
        writer = LedgerWriter(ledger, flush_seconds=flush_seconds)
        self.run = PhaseRun(ledger, writer, Tracker(), run_id, max_attempts, stall_timeout_s, input_base,
                            fail_fast_items)
        self.cluster, self.job, self.identities = cluster, job, identities or {}
        self.plans: list[ResourcePlan] = []
        self.notices: list[str] = []
        self.tracker_snapshot: dict = {"stages": {}, "warnings": {}}
        #: each stage's preflight, done before any work by ``run_job`` (else when its phase starts)
        self.checked: dict[str, StageCheck] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.run.writer.flush()
        self.tracker_snapshot = self.run.tracker.snapshot()
        self.run.tracker.stop()

    def phase(self, stages: Sequence[tuple[type[Stage], StageConfig]], rows: list[InputRow]) -> list[InputRow]:
        """Run one phase over ``rows``; returns the next phase's input (the barrier's ok outputs), else []."""
        run, storage = self.run, self.run.ledger.storage
        resources = fit_resources({cls.name: cfg.resources for cls, cfg in stages}, self.cluster.cpus,
                                  self.cluster.gpus)
        for plan in resources:
            if plan.note:
                log.warning("%s: %s", plan.stage, plan.note)
        self.plans.extend(resources)
        unchecked = [(cls, cfg) for cls, cfg in stages if cls.name not in self.checked]
        self.checked.update(preflight(unchecked, storage))
        phase: list[PhaseStage] = []
        for (cls, cfg), plan in zip(stages, resources, strict=True):
            self.notices += self.checked[cls.name].notices
            phase.append(PhaseStage(cls, cfg, self.checked[cls.name].weights, plan))
        decided = plan_phase(run, phase, iter(rows))
        names = [st.name for st in phase]
        reused = [ok + rej for ok, rej in zip(decided.reused_ok, decided.reused_rejected, strict=True)]
        log.info("phase %s: %d items in; to compute per stage %s; reused %s", names, len(rows),
                 dict(zip(names, decided.to_compute, strict=True)), dict(zip(names, reused, strict=True)))
        progress = PhaseProgress(names, decided.to_compute, reused)
        try:
            computed = stream_phase(run, phase, decided, progress.update)
        finally:
            progress.close()
        last = phase[-1]
        if not issubclass(last.cls, BarrierStage):
            return []
        run.writer.flush()  # the barrier reads this run's earlier outcomes (rejects by reason)
        finisher = last.cls(last.config, StageContext(
            storage, run.input_base, run.run_id, self.job, stage_identities=self.identities,
            rejects=_rejects(run.ledger, run.run_id, self.identities), notices=list(self.notices),
        ))
        before = {id(o): _verdict(o) for o in computed}  # logged as the workers finished them
        outcomes = finisher.finalize(decided.barrier_reused + computed)
        revised = [o for o in outcomes if o.reused or before.get(id(o)) != _verdict(o)]
        next_rows = _hand_off(run, finisher, outcomes, revised)
        run.writer.flush()  # the next phase starts from what is durable
        return next_rows


class PreflightError(UserError):
    """A stage cannot work with what the job gave it (a model that does not load, a missing path)."""


@dataclass(frozen=True)
class StageCheck:
    """What a stage's preflight found: its weights hash and what a reader of its output must know."""

    weights: str | None
    notices: list[str]


def preflight(stages: Sequence[tuple[type[Stage], StageConfig]], storage: Storage) -> dict[str, StageCheck]:
    """Check on the driver, before any work, that every stage has what it needs (its models load).

    A model, a path or a device that is missing is the job's failure, reported once here, not a
    rejection of every item; the error names the stage and what failed.
    """
    checked = {}
    for cls, cfg in stages:
        stage = cls(cfg, StageContext(storage))
        try:
            stage.preflight()
            weights = stage.weights_hash()  # loads the model where the hash is of the model itself
            notices = stage.notices()
        except UserError as exc:
            raise PreflightError(f"stage {cls.name}: {exc}") from exc
        except Exception as exc:
            raise PreflightError(f"stage {cls.name} cannot start: {type(exc).__name__}: {exc}") from exc
        checked[cls.name] = StageCheck(weights, notices)
    return checked


def _job_record(job: JobSpec, configs: dict[str, StageConfig]) -> dict:
    """What a dataset version records of the job that made it: only what changes the data."""
    return {"name": job.name, "input": job.input.model_dump(mode="json"),
            "stages": {name: cfg.fingerprint_fields() for name, cfg in configs.items()}}


def run_job(job: JobSpec, job_text: str, *, verbose: bool = False) -> RunResult:
    """Run or resume ``job``. Everything already computed with the same fingerprint is reused.

    What can fail fast is checked first, in this order, before anything slow or any write: the
    cluster address, the root's lock (one run writes a root at a time), every stage's preflight.
    """
    storage = Storage(job.root)
    check_address(job.runtime.address)
    run_id = new_run_id()
    with RootLock(storage, run_id):
        classes = [stage_class(name) for name in job.stages.enabled()]
        configs = {cls.name: _config(job, cls.name) for cls in classes}
        skipped = {cls.name: why for cls in classes if (why := cls.skip_reason(configs[cls.name], storage))}
        classes = [cls for cls in classes if cls.name not in skipped]
        checked = preflight([(cls, configs[cls.name]) for cls in classes], storage)
        run_dir = f"runs/{run_id}"
        storage.write_bytes(f"{run_dir}/job.toml", job_text.encode())
        log_path = Path(storage.full(f"{run_dir}/run.log")) if storage.is_local else None
        with run_log(log_path):
            return _run(_Prepared(job, storage, run_id, run_dir, log_path, verbose, classes,
                                   {cls.name: configs[cls.name] for cls in classes}, checked, skipped))


@dataclass(frozen=True)
class _Prepared:
    """A run that passed its preflight and holds its root."""

    job: JobSpec
    storage: Storage
    run_id: str
    run_dir: str
    log_path: Path | None
    verbose: bool
    classes: list[type[Stage]]
    configs: dict[str, StageConfig]
    checked: dict[str, StageCheck]
    skipped: dict[str, str]


def _run(prep: _Prepared) -> RunResult:
    first = prep.classes[0]
    if not issubclass(first, SourceStage):
        raise UserError(f"stage {first.name!r} cannot start a pipeline: it reads no job input")
    source = first.read_source(prep.job.input, prep.storage)
    with ray_session(prep.job.runtime.address, prep.job.runtime.num_cpus, log_to_driver=prep.verbose) as cluster:
        return _run_on(prep, cluster, source)


def _run_on(prep: _Prepared, cluster: Cluster, source: Source) -> RunResult:
    job, storage, run_id, classes, configs = prep.job, prep.storage, prep.run_id, prep.classes, prep.configs
    log.info("run %s of job %s on %s: %d input rows", run_id, job.name, cluster.describe(), len(source.rows))
    if prep.log_path is not None:
        log.info("library and engine logs of this run: %s", prep.log_path)
    if not prep.verbose:
        log.info("worker output (library chatter, tracebacks of failed items) is in Ray's logs on each node "
                 "(/tmp/ray/session_latest/logs); warnings are counted in the report; --verbose shows it all")
    phases = split_phases(classes)
    for phase in phases:  # preflight: a request the cluster cannot meet stops the job before any work
        fit_resources({cls.name: configs[cls.name].resources for cls in phase}, cluster.cpus, cluster.gpus)
    session = RunSession(
        storage, cluster, run_id, max_attempts=job.runtime.max_attempts,
        stall_timeout_s=job.runtime.stall_timeout_s, input_base=source.input_base, job=_job_record(job, configs),
        flush_seconds=job.runtime.ledger_flush_seconds, fail_fast_items=job.runtime.fail_fast_items,
        identities={cls.name: stage_identity(configs[cls.name].fingerprint_fields(), cls.version) for cls in classes},
    )
    session.checked.update(prep.checked)
    source.notices.extend(f"stage {name} left out of this run: {why}" for name, why in prep.skipped.items())
    started = time.time()
    rows = [InputRow(r["item_id"], r["fingerprint"], json.dumps(r["record"], sort_keys=True)) for r in source.rows]
    status = "failed"
    try:
        with session:
            for phase in phases:
                rows = session.phase([(cls, configs[cls.name]) for cls in phase], rows)
        status = "completed"
    except StallError:
        status = "stalled"
        raise
    finally:
        report = report_mod.build_report(
            ledger=session.run.ledger, job=job, run_id=run_id, status=status, started=started,
            finished=time.time(), stages=classes, plans=session.plans, notices=session.notices + source.notices,
            tracker=session.tracker_snapshot,
        )
        report_path = report_mod.write_report(storage, prep.run_dir, report)
    return RunResult(run_id, status, report, report_path)


def _config(job: JobSpec, name: str) -> StageConfig:
    config = job.stages.config(name)
    if config is None:
        raise ValueError(f"stage {name!r} is not enabled in job {job.name!r}")
    return config


def _verdict(o: Outcome) -> tuple:
    """What a barrier's ``finalize`` may change of an outcome (the record as text: it may be edited in place)."""
    return o.status, o.reason, o.message, json.dumps(o.record, sort_keys=True)


def _hand_off(run: PhaseRun, finisher: BarrierStage, outcomes: list[Outcome], to_log: list[Outcome]) -> list[InputRow]:
    """Turn a barrier stage's ok outputs into the next phase's input, and log ``to_log``: its reused
    outcomes and those its ``finalize`` changed (a revision replaces the worker's row in the run's
    accounting: ``Ledger.run_rows`` keeps an item's last row)."""
    next_rows = []
    for o in outcomes:
        if o.status == OK and o.record is not None:
            item_id, fingerprint = finisher.hand_off(o.item_id, o.fingerprint, o.record)
            next_rows.append(InputRow(item_id, fingerprint, json.dumps(o.record, sort_keys=True)))
    now = time.time()
    rows = []
    for o in to_log:
        if not o.reused:
            o.finished_at = max(o.finished_at, now)
        rows.append(outcome_row(run.run_id, finisher.name, finisher.version, o))
    run.writer.add(finisher.name, rows)
    return next_rows


def _rejects(ledger: Ledger, run_id: str, stages: dict[str, str]) -> dict[str, dict[str, int]]:
    """Rejections by reason of every stage this run has logged so far."""
    out = {}
    for stage in stages:
        rows = ledger.run_rows(stage, run_id)
        rejected = rows.filter(pc.not_equal(rows["status"], OK))
        if rejected.num_rows:
            out[stage] = dict(sorted(Counter(rejected["reason"].to_pylist()).items()))
    return out
