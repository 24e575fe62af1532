"""Where a stage's model runs, and its forwards on a CPU worker: one intra-op thread each, several side by side.

A torch op split across threads sums its pieces in an order that depends on the thread count, so
the same Demucs forward gives stems ~2e-7 apart with 1, 2 or 4 threads, and FLAC bytes, token
arrays and the dataset version id would follow the CPUs a worker happened to get. Here every
forward runs on one thread, and a worker with N CPUs runs N independent forwards at once (torch
releases the GIL inside its ops): each result is the bytes one thread gives, whatever N. On the
demo's separator, 2 single-threaded segments side by side also ran faster than one segment on 2
threads (0.37 s against 0.43 s for 8 segments, 2 cores).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def stage_device(stage: str, setting: str) -> torch.device:
    """The device of ``stages.<stage>.device``: ``auto`` is the GPU when this worker sees one, else the CPU;
    ``cuda`` on a worker that sees no GPU is refused (a job asking for it also asks Ray for a GPU)."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"stages.{stage}.device = 'cuda' but this worker sees no GPU")
    return torch.device(setting)


def worker_threads(configured: int | None, cpus: float | None) -> int:
    """Threads a worker uses: ``configured`` if set, else the CPUs it holds (at least 1)."""
    if configured is not None:
        return configured
    return max(1, math.floor(cpus or 1))


class SideBySide:
    """Runs a function over items on ``threads`` threads, each torch op on one thread; keeps the order."""

    def __init__(self, threads: int) -> None:
        torch.set_num_threads(1)
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="forward") if threads > 1 else None

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self._pool is None or len(items) < 2:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))
