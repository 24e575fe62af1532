"""One run writes a root at a time: ``ROOT/run.lock`` names the run that holds it.

Two runs on one root would compute every item twice and log it twice. The lock file holds who has
the root (host, pid, run id, since when) and a heartbeat the holder refreshes every
``HEARTBEAT_S`` seconds. A second run is refused at once with those facts. A lock whose holder is
gone never blocks the next run: on the same host it is stale as soon as its process is gone (the pid
and that process' start time, so a reused pid does not count), on another host once its heartbeat
is ``STALE_AFTER_S`` old.

On a local root the lock is created with ``O_EXCL``, so of two runs that start together exactly one
gets it. Object stores (``s3://``) have no exclusive create in ``pyarrow.fs``: there the lock is
written, then read back after a pause, and the later writer of two that raced sees the other's run
id and backs off; it narrows the race to that pause rather than closing it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from .errors import UserError
from .storage import Storage

log = logging.getLogger(__name__)

LOCK = "run.lock"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 90.0
#: how long a writer on an object store waits before reading its lock back
OBJECT_STORE_SETTLE_S = 2.0


class RootBusyError(UserError):
    """Another run holds the root."""


@dataclass(frozen=True)
class Holder:
    """Who holds a root."""

    run_id: str
    host: str
    pid: int
    #: the process' start time (Linux clock ticks since boot), so a reused pid is not taken for the holder
    pid_started: int | None
    since: str
    heartbeat: float

    def describe(self) -> str:
        age = time.time() - self.heartbeat
        return f"run {self.run_id} (pid {self.pid} on {self.host}, since {self.since}, heartbeat {age:.0f} s ago)"

    def is_stale(self) -> bool:
        """True when the holder cannot be running any more."""
        if self.host == socket.gethostname():
            started = _process_start(self.pid)
            return started is None or (self.pid_started is not None and started not in (-1, self.pid_started))
        return time.time() - self.heartbeat > STALE_AFTER_S


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (None: no such process)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of stat(5), counted after the command name
    except (OSError, IndexError, ValueError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return -1  # alive, start time unknown (no /proc)


def read_holder(storage: Storage) -> Holder | None:
    """The holder named by the root's lock file, or None when there is none (or it is unreadable)."""
    try:
        return Holder(**json.loads(storage.read_bytes(LOCK)))
    except (FileNotFoundError, OSError, ValueError, TypeError):
        return None


class RootLock:
    """Hold ``storage``'s root for ``run_id`` while the ``with`` block runs; refresh the heartbeat meanwhile."""

    def __init__(self, storage: Storage, run_id: str) -> None:
        self.storage, self.run_id = storage, run_id
        pid = os.getpid()
        self.holder = Holder(run_id, socket.gethostname(), pid, _process_start(pid),
                             datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), time.time())
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        for _ in range(3):  # a stale lock that another run takes over first is looked at again
            if self._create():
                self._beat = threading.Thread(target=self._heartbeat, name="root-lock", daemon=True)
                self._beat.start()
                return
            current = read_holder(self.storage)
            if current is not None and not current.is_stale():
                raise RootBusyError(
                    f"{self.storage.uri('')} is being written by {current.describe()}: one run writes a root at a "
                    "time. Wait for it to finish, or stop it; a killed run's lock is taken over by the next run "
                    f"(at once on the same host, after {STALE_AFTER_S:g} s without heartbeat from another host)")
            self._take_over(current)
        raise RootBusyError(f"could not take the lock of {self.storage.uri('')}: other runs keep taking it")

    def _create(self) -> bool:
        data = json.dumps(asdict(self.holder), indent=1).encode()
        if self.storage.is_local:
            path = self.storage.full(LOCK)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            return True
        if self.storage.exists(LOCK):
            return False
        self.storage.write_bytes(LOCK, data)
        time.sleep(OBJECT_STORE_SETTLE_S)
        current = read_holder(self.storage)
        return current is not None and current.run_id == self.run_id

    def _take_over(self, stale: Holder | None) -> None:
        """Move a stale (or unreadable) lock aside; of several runs doing this at once, one moves it."""
        aside = f"{LOCK}.stale-{uuid.uuid4().hex}"
        try:
            if self.storage.is_local:
                os.rename(self.storage.full(LOCK), self.storage.full(aside))
            else:
                self.storage.delete(LOCK)
        except FileNotFoundError:
            return  # another run moved it first
        log.warning("took over the root from %s: it is no longer running",
                    stale.describe() if stale else "an unreadable lock")
        if self.storage.is_local:
            self.storage.delete(aside)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            if read_holder(self.storage) != self.holder:
                log.error("the lock of %s no longer names this run", self.storage.uri(""))
                return
            self.holder = Holder(**{**asdict(self.holder), "heartbeat": time.time()})
            self.storage.write_bytes(LOCK, json.dumps(asdict(self.holder), indent=1).encode())

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
            if read_holder(self.storage) == self.holder:
                self.storage.delete(LOCK)
