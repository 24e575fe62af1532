"""``songcorpus validate``: what a job would do on a cluster, without running anything."""

from __future__ import annotations

import os

from ..schemas.job import JobSpec
from .registry import stage_class
from .resources import ResourcePlanError, fit_resources
from .runner import split_phases
from .stage import is_barrier


def local_resources(num_cpus: int | None) -> tuple[float, float]:
    """CPUs and GPUs an embedded Ray would get on this machine."""
    try:
        import torch

        gpus = float(torch.cuda.device_count())
    except ImportError:
        gpus = 0.0
    return float(num_cpus or os.cpu_count() or 1), gpus


def cluster_resources(job: JobSpec) -> tuple[str, float, float]:
    """Where the job would run and its CPUs and GPUs; joins the cluster (read-only) when an address is set."""
    address = job.runtime.address or os.environ.get("RAY_ADDRESS")
    if not address:
        cpus, gpus = local_resources(job.runtime.num_cpus)
        return "embedded local Ray on this machine", cpus, gpus
    from .runtime import start_ray, stop_ray

    cluster = start_ray(address)
    stop_ray()
    return address, cluster.cpus, cluster.gpus


def validate_text(job: JobSpec) -> str:
    """The enabled stages by phase and the resource plan each phase gets; raises if it cannot be placed."""
    where, cpus, gpus = cluster_resources(job)
    classes = [stage_class(name) for name in job.stages.enabled()]
    lines = [f"job {job.name!r} is valid; root {job.root}", f"cluster: {where}: {cpus:g} CPUs, {gpus:g} GPUs"]
    header = f"    {'stage':<14}{'CPU/worker':>11}{'GPU/worker':>11}{'workers':>10}{'batch':>7}  note"
    for number, phase in enumerate(split_phases(classes), start=1):
        configs = {cls.name: job.stages.config(cls.name) for cls in phase}
        try:
            plans = fit_resources({n: c.resources for n, c in configs.items() if c is not None}, cpus, gpus)
        except ResourcePlanError as exc:
            raise ResourcePlanError(f"phase {number} ({', '.join(configs)}): {exc}") from None
        ends = "barrier: outcomes revised together" if is_barrier(phase[-1]) else "end of the pipeline"
        lines += [f"phase {number}: {' -> '.join(configs)} ({ends})", header]
        lines += [f"    {p.stage:<14}{p.num_cpus:>11g}{p.num_gpus:>11g}{f'{p.min_workers}-{p.max_workers}':>10}"
                  f"{p.batch_size:>7}  {p.note}" for p in plans]
    return "\n".join(lines)
