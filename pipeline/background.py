"""Per-item host work (encode, write, statistics) run beside a GPU's forward passes.

A GPU stage alternates between device work and host work for each item. Run in line, the GPU idles
while the host works. :class:`BackgroundWork` runs the host part on a few threads instead, so it
overlaps the next forward passes. It keeps at most ``2 × threads`` items queued: finished device
outputs must not pile up in memory when the host is the slower side. With ``threads = 0`` it runs
each job in line, which is right on a CPU worker whose torch threads already use every core.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

R = TypeVar("R")


class BackgroundWork(Generic[R]):
    """Runs ``fn()`` per key and collects each outcome (a value or the exception it raised) by key."""

    def __init__(self, threads: int) -> None:
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="host-work") if threads else None
        self._limit = 2 * threads
        self._queued: deque[tuple[int, Future[R]]] = deque()
        self.outcomes: dict[int, R | BaseException] = {}

    def submit(self, key: int, fn: Callable[[], R]) -> None:
        if self._pool is None:
            self.outcomes[key] = _call(fn)
            return
        while len(self._queued) >= self._limit:
            self._collect_oldest()
        self._queued.append((key, self._pool.submit(fn)))

    def _collect_oldest(self) -> None:
        key, future = self._queued.popleft()
        exc = future.exception()
        self.outcomes[key] = exc if exc is not None else future.result()

    def __enter__(self) -> BackgroundWork[R]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Wait for every queued job, also when the caller failed: no write is left half done."""
        while self._queued:
            self._collect_oldest()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _call(fn: Callable[[], R]) -> R | BaseException:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the caller turns it into that item's outcome
        return exc
