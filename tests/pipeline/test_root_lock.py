"""One run writes a root at a time; a lock whose holder is gone never blocks the next run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, replace

import pytest

from songcorpus.pipeline.root_lock import LOCK, STALE_AFTER_S, RootBusyError, RootLock, read_holder
from songcorpus.pipeline.storage import Storage


def test_a_second_run_is_refused_with_who_holds_the_root(tmp_path):
    storage = Storage(str(tmp_path))
    with RootLock(storage, "run-a") as first:
        holder = read_holder(storage)
        assert holder == first.holder and holder.run_id == "run-a"
        with pytest.raises(RootBusyError, match=r"being written by run run-a \(pid \d+ on .+, since .+, heartbeat"):
            RootLock(storage, "run-b").acquire()
    assert not (tmp_path / LOCK).exists()  # released
    with RootLock(storage, "run-b"):
        assert read_holder(storage).run_id == "run-b"


def _write(storage: Storage, holder) -> None:
    storage.write_bytes(LOCK, json.dumps(asdict(holder)).encode())


def test_the_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    storage = Storage(str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead = replace(RootLock(storage, "killed").holder, pid=int(gone.stdout), pid_started=1)
    _write(storage, dead)
    assert dead.is_stale()
    with RootLock(storage, "next"):
        assert read_holder(storage).run_id == "next"
    assert [p.name for p in tmp_path.iterdir()] == []  # the stale lock was moved aside and removed


def test_another_hosts_lock_counts_until_its_heartbeat_stops(tmp_path):
    storage = Storage(str(tmp_path))
    elsewhere = replace(RootLock(storage, "remote").holder, host="another-node", heartbeat=time.time())
    _write(storage, elsewhere)
    with pytest.raises(RootBusyError, match="on another-node"):
        RootLock(storage, "mine").acquire()
    _write(storage, replace(elsewhere, heartbeat=time.time() - STALE_AFTER_S - 1))
    with RootLock(storage, "mine"):
        assert read_holder(storage).run_id == "mine"
