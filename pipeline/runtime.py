"""Start or join Ray: embedded local by default, a cluster by ``--address`` or ``RAY_ADDRESS``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import ray

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cluster:
    address: str | None
    cpus: float
    gpus: float

    def describe(self) -> str:
        where = self.address or "embedded local Ray"
        return f"{where}: {self.cpus:g} CPUs, {self.gpus:g} GPUs"


def start_ray(address: str | None = None, num_cpus: int | None = None, *, log_to_driver: bool = True) -> Cluster:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start a local Ray in this process.

    Without ``log_to_driver`` the workers' own output (library chatter, tracebacks of failed
    items) stays in Ray's session logs instead of the console; the engine's progress is unaffected.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=log_to_driver)
        else:
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=log_to_driver,
                configure_logging=True,
            )
    # The engine logs its own per-stage progress; Ray Data's block-level bars would drown it.
    ray.data.DataContext.get_current().enable_progress_bars = False
    resources = ray.cluster_resources()
    cluster = Cluster(address, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)))
    log.info("ray: %s", cluster.describe())
    return cluster


def stop_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
