"""Run a job: read its source, run its phases on Ray, log every outcome, write the report."""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import ray

from ..schemas.base import StageConfig
from ..schemas.job import JobSpec
from ..schemas.records import OK, Outcome
from . import report as report_mod
from .ledger import Ledger
from .phase import PlannedStage, StallError, run_phase
from .registry import stage_class
from .resources import StagePlan, fit_resources
from .runtime import Cluster, start_ray
from .stage import Stage, StageContext
from .storage import Storage
from .worker import StageTask

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
        if cls.barrier:
            phases.append([])
    return [p for p in phases if p]


def run_job(job: JobSpec, job_text: str) -> RunResult:
    """Run or resume ``job``. Everything already computed with the same fingerprint is reused."""
    storage = Storage(job.root)
    run_id = new_run_id()
    run_dir = f"runs/{run_id}"
    storage.write_bytes(f"{run_dir}/job.toml", job_text.encode())  # preflight: the root is writable
    classes = [stage_class(name) for name in job.stages.enabled()]
    source = classes[0].read_source(job.input, storage)
    cluster = start_ray(job.runtime.address, job.runtime.num_cpus)
    ledger = Ledger(storage)
    ctx = PhaseContext(
        storage, cluster, run_id, source.input_base, job.runtime.max_attempts, job.runtime.stall_timeout_s,
        job.model_dump(mode="json"),
    )
    started = time.time()
    log.info("run %s of job %s on %s: %d input rows", run_id, job.name, cluster.describe(), len(source.rows))
    plans: list[StagePlan] = []
    notices: list[str] = []
    status = "failed"
    rows = source.rows
    try:
        for phase in split_phases(classes):
            rows, phase_plans, phase_notices = run_chain(
                ctx, [(cls, getattr(job.stages, cls.name)) for cls in phase], rows
            )
            plans.extend(phase_plans)
            notices.extend(phase_notices)
        status = "completed"
    except StallError:
        status = "stalled"
        raise
    finally:
        for cls in classes:
            ledger.compact(cls.name)
        report = report_mod.build_report(
            ledger=ledger, job=job, run_id=run_id, status=status, started=started, finished=time.time(),
            stages=classes, plans=plans, notices=notices + source.notices,
        )
        report_path = report_mod.write_report(storage, run_dir, report)
    return RunResult(run_id, status, report, report_path)


@dataclass(frozen=True)
class PhaseContext:
    """What every phase of one run shares."""

    storage: Storage
    cluster: Cluster
    run_id: str
    input_base: str | None
    max_attempts: int
    stall_timeout_s: float
    job: dict | None = None


def run_chain(
    ctx: PhaseContext, stages: list[tuple[type[Stage], StageConfig]], rows: list[dict]
) -> tuple[list[dict], list[StagePlan], list[str]]:
    """Run one phase (stages that stream into each other) over ``rows``.

    Returns the input rows of the next phase (the ok outputs when the last stage is a barrier,
    else none), the resource plan that was used, and the stages' notices for the report.
    """
    ledger = Ledger(ctx.storage)
    plans = fit_resources({cls.name: cfg.resources for cls, cfg in stages}, ctx.cluster.cpus, ctx.cluster.gpus)
    for p in plans:
        if p.note:
            log.warning("%s: %s", p.stage, p.note)
    planned = []
    notices: list[str] = []
    for (cls, cfg), plan in zip(stages, plans):
        task = StageTask(
            stage_cls=cls, config=cfg, root=ctx.storage.root, run_id=ctx.run_id,
            max_attempts=ctx.max_attempts, input_base=ctx.input_base, log_outcomes=not cls.barrier,
        )
        driver_side = cls(cfg, StageContext(ctx.storage, ctx.input_base, ctx.run_id))
        weights = driver_side.weights_hash()  # also the preflight: a model that cannot load stops here
        notices += driver_side.notices()
        planned.append(PlannedStage(task, plan, weights, ray.put(ledger.priors(cls.name))))
    if not rows:
        log.info("phase %s has no input rows", [cls.name for cls, _ in stages])
        return [], plans, notices
    table = run_phase(ctx.storage, rows, planned, stall_timeout_s=ctx.stall_timeout_s)
    last, last_cfg = stages[-1]
    if not last.barrier:
        return [], plans, notices
    finisher = last(last_cfg, StageContext(ctx.storage, ctx.input_base, ctx.run_id, ctx.job))
    outcomes = finisher.finalize(_outcomes_from_table(table))
    ledger.append(ctx.run_id, last.name, last.version, outcomes)
    next_rows = []
    for o in outcomes:
        if o.status == OK:
            item_id, fingerprint = finisher.hand_off(o.item_id, o.fingerprint, o.record)
            next_rows.append({"item_id": item_id, "fingerprint": fingerprint, "record": o.record})
    return next_rows, plans, notices


def _outcomes_from_table(table: pa.Table | None) -> list[Outcome]:
    if table is None:
        return []
    fields = [f for f in Outcome.__dataclass_fields__ if f != "record"]
    outcomes = []
    for row in table.to_pylist():
        outcome = Outcome(**{f: row[f] for f in fields})
        outcome.record = None if row["record"] is None else json.loads(row["record"])
        outcomes.append(outcome)
    return outcomes
