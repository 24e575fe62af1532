"""The demo job through the real CLI, its driver killed (SIGKILL) again and again: every outcome that was
finished more than the flush interval before a kill is in the ledger, each rerun goes on from there, a second
run on the same root is refused while one runs, no run leaves a process behind, and the version it publishes
in the end is the one the uninterrupted demo published with other resources, worker counts and batch sizes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pytest

from songcorpus.pipeline.ledger import Ledger
from songcorpus.pipeline.storage import Storage
from tests.e2e.conftest import DEMO4

FLUSH_S = 2.0
#: an item's outcome reaches the ledger within the flush interval of its stage finishing it; this much more is
#: allowed for the driver's once-a-second drain and a busy machine
SLACK_S = 3.0
STREAMED = ("standardize", "separate", "align", "segment", "filter")
#: each killed run is killed once this stage has logged an item it computed: mid-phase, stage after stage
KILL_AFTER = ("standardize", "separate", "align", "filter")


def job_text() -> str:
    """The four-song demo with other resources than the reference run: 2 CPUs for separate, one item per batch,
    one worker per stage, fractions of a CPU for the light stages, and a 2 s ledger flush."""
    text = DEMO4.replace("[runtime]\n", f"[runtime]\nnum_cpus = 2\nledger_flush_seconds = {FLUSH_S}\n")
    cpus = {"standardize": 1, "separate": 2, "align": 1, "segment": 0.5, "filter": 0.5}
    for stage in STREAMED:
        text += f"\n[stages.{stage}.resources]\nnum_cpus = {cpus[stage]}\nbatch_size = 1\nmax_workers = 1\n"
    return text


class Runs:
    """`songcorpus run` of one job on one root as separate processes, each marked so its processes can be found."""

    def __init__(self, job: Path, root: Path) -> None:
        self.job, self.root = job, root

    def start(self) -> tuple[subprocess.Popen, str]:
        mark = f"songcorpus-test-{uuid.uuid4().hex}"
        env = {**os.environ, "RAY_ADDRESS": "", "SONGCORPUS_TEST_MARK": mark}
        proc = subprocess.Popen([sys.executable, "-m", "songcorpus", "run", str(self.job), "--root", str(self.root)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return proc, mark


def alive(mark: str) -> list[int]:
    """Processes of the run marked ``mark`` that are alive (the driver, Ray's own, every worker)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"SONGCORPUS_TEST_MARK={mark}".encode() in environ.read_bytes():
                pids.append(int(environ.parent.name))
        except OSError:
            continue
    return pids


def assert_nothing_left(marks: list[str], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while any(alive(m) for m in marks) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [pid for m in marks for pid in alive(m)]
    commands = []
    for pid in left:
        with contextlib.suppress(OSError):
            commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode())
    assert not left, f"processes of the run still alive {within_s:g} s after it ended: {commands}"


def computed(root: Path, stage: str) -> set[str]:
    """Fingerprints of the ok outcomes ``stage`` computed, as far as the ledger holds them."""
    if not (root / "ledger" / stage).exists():
        return set()
    table = Ledger(Storage(str(root))).read(stage, ["fingerprint", "status", "reused"])
    done = table.filter(pc.and_(pc.equal(table["status"], "ok"), pc.invert(table["reused"])))
    return set(done["fingerprint"].to_pylist())


def finished_before(root: Path, stage: str, moment: float) -> set[str]:
    """Fingerprints whose every output file of ``stage`` was written before ``moment`` (its outcome follows)."""
    folder = root / "artifacts" / stage
    done = set()
    for output in folder.iterdir() if folder.exists() else ():
        files = [f for f in output.iterdir() if not f.name.startswith(".tmp-")]
        if files and max(f.stat().st_mtime for f in files) < moment:
            done.add(output.name)
    return done


@pytest.mark.timeout(1200)
def test_killed_driver_loses_seconds_not_a_phase_and_the_version_is_the_same(tmp_path, demo_run):
    job = tmp_path / "job.toml"
    job.write_text(job_text())
    root = tmp_path / "out"
    shutil.copytree(demo_run.root / "synth", root / "synth")  # the same corpus: the first run need not make it
    runs = Runs(job, root)
    killed: list[str] = []
    outputs: list[str] = []
    for stage in KILL_AFTER:
        later = STREAMED[STREAMED.index(stage):]
        before = sum(len(computed(root, name)) for name in later)
        proc, mark = runs.start()
        deadline = time.monotonic() + 400
        while sum(len(computed(root, name)) for name in later) == before and proc.poll() is None:
            assert time.monotonic() < deadline, f"{stage} computed nothing in 400 s"
            time.sleep(0.2)
        if proc.poll() is not None:  # a kill came too late for this stage: it and those after it are done
            out, _ = proc.communicate()
            assert proc.returncode == 0, out
            outputs.append(out)
            break
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        outputs.append(proc.communicate()[0])
        killed.append(mark)
        # the promise: what a stage finished more than the flush interval before the kill is in the ledger
        for name in STREAMED:
            lost = finished_before(root, name, killed_at - FLUSH_S - SLACK_S) - computed(root, name)
            assert not lost, f"{name}: {len(lost)} outputs written well before the kill are not in the ledger"

    assert len(killed) >= 3, f"only {len(killed)} kills landed mid-phase"
    final, mark = runs.start()
    while not (root / "run.lock").exists():
        assert final.poll() is None, final.communicate()[0]
        time.sleep(0.1)
    second, second_mark = runs.start()  # the same job on the same root while the first holds it
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 2 and "is being written by run" in out, out
    out, _ = final.communicate(timeout=600)
    assert final.returncode == 0, out
    assert_nothing_left([mark, second_mark], within_s=15)  # a finished run stops the Ray it started, workers too
    # a killed driver's embedded Ray follows it (its agents notice their raylet is gone within a minute or so)
    assert_nothing_left(killed, within_s=120)
    # every killed run's lock was taken over by the run after it: a stale lock blocks nothing
    assert sum("took over the root from run" in text for text in [*outputs, out]) == len(killed)
    assert (root / "versions" / "LATEST").read_text() == demo_run.version
    assert not (root / "run.lock").exists()
    status = subprocess.run([sys.executable, "-m", "songcorpus", "status", str(root)], capture_output=True, text=True,
                            check=True).stdout
    assert "completed" in status and "accounting closed" in status
