"""What a person sees while a job runs: one live progress display per phase, and logs kept out of the way.

On a terminal each phase shows one line per stage (done / to do, rejected, rate, ETA), redrawn in
place; elsewhere (CI, ``ray job submit`` logs) a plain line per stage every ``log_every_s``. Library
logs go to the run's log file; the console keeps the engine's own messages.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

log = logging.getLogger(__name__)
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class PhaseProgress:
    """Per-stage counts of one phase, fed with the run tracker's snapshots."""

    def __init__(self, stages: list[str], to_compute: list[int], reused: list[int], *, live: bool | None = None,
                 log_every_s: float = 30.0) -> None:
        self.stages, self.to_compute, self.reused = stages, to_compute, reused
        self.live = sys.stderr.isatty() if live is None else live
        self.log_every_s = log_every_s
        self._started = time.monotonic()
        self._last_log = self._started
        self._tasks: dict[str, TaskID] = {}
        self._progress: Progress | None = None
        if self.live and any(to_compute):
            self._progress = Progress(
                TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rejected]} rejected"), TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(), console=Console(stderr=True), transient=False,
            )
            for name, total, reused_n in zip(stages, to_compute, reused, strict=True):
                label = f"{name} ({reused_n} reused)" if reused_n else name
                self._tasks[name] = self._progress.add_task(label, total=total, rejected=0, rate="")
            self._progress.start()

    def update(self, snapshot: dict) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        counts = snapshot.get("stages", {})
        if self._progress is not None:
            for name, task in self._tasks.items():
                c = counts.get(name, {})
                done = c.get("ok", 0) + c.get("rejected", 0)
                self._progress.update(task, completed=done, rejected=c.get("rejected", 0),
                                      rate=f"{done / elapsed:.2f} items/s")
        elif time.monotonic() - self._last_log >= self.log_every_s:
            self._last_log = time.monotonic()
            log.info("progress: %s", self.describe(counts))

    def describe(self, counts: dict) -> str:
        parts = []
        for name, total in zip(self.stages, self.to_compute, strict=True):
            c = counts.get(name, {})
            parts.append(f"{name} {c.get('ok', 0) + c.get('rejected', 0)}/{total} ({c.get('rejected', 0)} rejected)")
        return ", ".join(parts)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def configure_console(verbose: bool) -> None:
    """Console logging for the CLI: the engine's own INFO lines; everything with ``verbose``."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "songcorpus_console", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler()
    handler.songcorpus_console = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT, datefmt="%H:%M:%S"))
    if not verbose:
        handler.addFilter(lambda record: record.name.startswith("songcorpus") or record.levelno >= logging.ERROR)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


@contextmanager
def run_log(path: Path | None) -> Iterator[None]:
    """Copy every log record (libraries' included) into ``path`` while the block runs."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
