"""Fit the stages' resource requests to the cluster before anything starts, or refuse clearly.

Ray Data starts at least ``min_workers`` actors per actor stage and waits, silently and forever,
when they cannot all be placed (four 1-CPU stages on a 2-CPU machine hang on "pending: 4 CPU").
So the plan is checked up front: CPUs are scaled down to fractions that fit, and GPU requests that
cannot be met are refused with the key to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..schemas.base import Resources
from .errors import UserError

#: CPUs left free for Ray Data's own read and bookkeeping tasks.
READ_TASK_CPUS = 0.25
MIN_CPUS_PER_WORKER = 0.05


class ResourcePlanError(UserError):
    """The job asks for resources the cluster does not have."""


@dataclass(frozen=True)
class ResourcePlan:
    """The resources one stage's workers get on this cluster, after fitting."""

    stage: str
    num_cpus: float
    num_gpus: float
    min_workers: int
    max_workers: int
    batch_size: int
    initial_workers: int = 1
    note: str = ""

    def as_dict(self) -> dict:
        return {
            "stage": self.stage, "num_cpus": self.num_cpus, "num_gpus": self.num_gpus,
            "min_actors": self.min_workers, "max_actors": self.max_workers,
            "initial_actors": self.initial_workers,
            "batch_size": self.batch_size, "note": self.note,
        }


def fit_resources(requests: dict[str, Resources], cpus: float, gpus: float) -> list[ResourcePlan]:
    """Plan the stages that run concurrently in one phase on a cluster of ``cpus`` and ``gpus``."""
    for name, res in requests.items():
        if res.num_gpus > 0 and gpus <= 0:
            raise ResourcePlanError(
                f"stage {name!r} asks for {res.num_gpus} GPU per worker but the cluster has no GPU; "
                f"set stages.{name}.resources.num_gpus = 0 to run it on CPU, or run on a GPU cluster"
            )
    gpu_demand = sum(r.num_gpus * r.min_workers for r in requests.values())
    if gpu_demand > gpus + 1e-9:
        askers = {name: res for name, res in requests.items() if res.num_gpus > 0}
        asks = ", ".join(f"{name}: {r.num_gpus:g} GPU x {r.min_workers} worker(s)" for name, r in askers.items())
        keys = "; ".join(f"stages.{name}.resources.num_gpus or stages.{name}.resources.min_workers" for name in askers)
        raise ResourcePlanError(
            f"stages need {gpu_demand:g} GPUs for their minimum workers ({asks}) but the cluster has {gpus:g}; "
            f"lower {keys} (a fraction of a GPU lets workers share one), or add GPU nodes"
        )
    budget = cpus - READ_TASK_CPUS
    demand = sum(r.num_cpus * r.min_workers for r in requests.values())
    if budget <= 0:
        raise ResourcePlanError(f"the cluster has {cpus:g} CPUs; at least 1 is needed")
    scale = min(1.0, budget / demand) if demand > 0 else 1.0
    plans = []
    for name, res in requests.items():
        num_cpus = math.floor(res.num_cpus * scale * 100) / 100
        if num_cpus < MIN_CPUS_PER_WORKER:
            raise ResourcePlanError(
                f"stage {name!r} would get {num_cpus:g} CPU per worker on a {cpus:g}-CPU cluster; "
                "lower resources.min_workers of the stages or use a bigger cluster"
            )
        note = "" if scale >= 1.0 else f"scaled from {res.num_cpus:g} to {num_cpus:g} CPU to fit {cpus:g} CPUs"
        by_cpu = math.floor(cpus / num_cpus)
        by_gpu = math.floor(gpus / res.num_gpus) if res.num_gpus > 0 else res.max_workers
        max_workers = max(res.min_workers, min(res.max_workers, by_cpu, by_gpu))
        # start with a fair share of the CPUs rather than growing from the minimum: autoscaling an
        # actor pool takes many batches, which on a short stage is its whole run
        fair = math.floor(budget / len(requests) / num_cpus) if res.num_gpus == 0 else res.min_workers
        initial = min(max_workers, max(res.min_workers, fair))
        plans.append(
            ResourcePlan(name, num_cpus, res.num_gpus, res.min_workers, max_workers, res.batch_size, initial, note)
        )
    return plans
