"""Whole jobs through the real CLI: determinism, recompute-nothing re-runs, resume after a killed driver."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from songcorpus.pipeline.ledger import Ledger, latest_run
from songcorpus.pipeline.storage import Storage
from tests.songtools import job_toml, tone, write_manifest

SONGS = 12


@pytest.fixture(scope="module")
def long_songs(tmp_path_factory) -> Path:
    """Twelve 40 s songs: long enough that standardize takes a while, so a kill lands mid-stage."""
    src = tmp_path_factory.mktemp("songs")
    rows = []
    for i in range(SONGS):
        sf.write(src / f"s{i}.flac", tone(40, 150 + 35 * i), 44100)
        (src / f"s{i}.txt").write_text(f"words of song {i}\n")
        rows.append({"audio_path": f"s{i}.flac", "lyrics_path": f"s{i}.txt", "song_id": f"song{i:02d}"})
    return write_manifest(src / "manifest.csv", rows)


def write_job(folder: Path, manifest: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "job.toml"
    extra = "[stages.standardize.resources]\nbatch_size = 1\nmax_workers = 1\n"
    # the driver logs finished items every second (default 10 s), so a kill lands between flushes
    job.write_text(job_toml("e2e", folder / "out", manifest, extra).replace(
        "[runtime]\n", "[runtime]\nledger_flush_seconds = 1.0\n"))
    return job


def cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "RAY_ADDRESS": ""}  # each run starts its own embedded Ray
    return subprocess.Popen([sys.executable, "-m", "songcorpus", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def run_cli(*args: str) -> str:
    proc = cli(*args)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def artifact_hashes(root: Path) -> dict[str, str]:
    base = root / "artifacts"
    return {
        str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(base.rglob("*")) if p.is_file()
    }


def run_rows(root: Path, stage: str) -> list[dict]:
    storage = Storage(str(root))
    run_id = latest_run(storage)
    assert run_id is not None, f"no run under {root}"
    return Ledger(storage).run_rows(stage, run_id).to_pylist()


@pytest.mark.timeout(900)
def test_deterministic_rerun_and_resume_after_killed_driver(tmp_path, long_songs):
    # 1. An uninterrupted run, then a second identical job in another root: same fingerprints, same bytes.
    first, second = write_job(tmp_path / "a", long_songs), write_job(tmp_path / "b", long_songs)
    run_cli("run", str(first))
    run_cli("run", str(second))
    a_hashes, b_hashes = artifact_hashes(tmp_path / "a" / "out"), artifact_hashes(tmp_path / "b" / "out")
    assert len([k for k in a_hashes if k.startswith("standardize/")]) == SONGS  # one FLAC per song
    assert a_hashes == b_hashes

    # 2. Re-running a finished job recomputes nothing, and says so.
    out = run_cli("run", str(first))
    assert "nothing recomputed" in out
    assert all(r["reused"] for r in run_rows(tmp_path / "a" / "out", "standardize"))

    # 3. Kill the driver (and its embedded Ray) mid-standardize, then resume.
    killed = write_job(tmp_path / "k", long_songs)
    parts = tmp_path / "k" / "out" / "ledger" / "standardize"
    proc = cli("run", str(killed), start_new_session=True)
    deadline = time.monotonic() + 240
    while len(list(parts.glob("*.parquet"))) < 2:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(5)  # a worker may finish the batches already handed to it before it notices
    logged = Ledger(Storage(str(tmp_path / "k" / "out"))).read("standardize")
    done_before = set(logged["fingerprint"].to_pylist())
    assert 2 <= len(done_before) < SONGS, "the kill must land mid-stage"

    run_cli("run", str(killed))
    resumed = {r["fingerprint"]: r for r in run_rows(tmp_path / "k" / "out", "standardize")}
    assert len(resumed) == SONGS
    assert all(resumed[fp]["reused"] for fp in done_before)  # nothing finished before the kill is redone
    assert sum(not r["reused"] for r in resumed.values()) == SONGS - len(done_before)
    assert artifact_hashes(tmp_path / "k" / "out") == a_hashes  # identical to the uninterrupted run

    status = run_cli("status", str(tmp_path / "k" / "out"))
    assert "accounting closed" in status and "standardize" in status
