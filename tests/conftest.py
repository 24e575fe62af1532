"""Shared fixtures: one embedded Ray for the session, and songs whose content the tests control."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_cluster():
    from songcorpus.pipeline.runtime import start_ray, stop_ray

    cluster = start_ray(num_cpus=2)
    yield cluster
    stop_ray()


def tone(seconds: float, freq: float, rate: int = 44100, channels: int = 2, level: float = 0.3) -> np.ndarray:
    """A sine tone, ``(samples, channels)`` float32, the layout soundfile writes."""
    t = np.arange(int(seconds * rate)) / rate
    mono = (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def write_manifest(path: Path, rows: list[dict]) -> Path:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def tone_songs(tmp_path: Path) -> Path:
    """Six distinct tone songs (6–11 s) with plain-text lyrics and a CSV manifest; returns the manifest."""
    src = tmp_path / "in"
    src.mkdir()
    rows = []
    for i in range(6):
        sf.write(src / f"song{i}.wav", tone(6 + i, 220 + 40 * i), 44100)
        (src / f"song{i}.txt").write_text(f"line one of song {i}\nline two\n")
        rows.append({"audio_path": f"song{i}.wav", "lyrics_path": f"song{i}.txt", "artist": f"a{i % 2}",
                     "language": "en"})
    return write_manifest(src / "manifest.csv", rows)


def job_toml(name: str, root: Path, manifest: Path, extra: str = "") -> str:
    """A job over ``manifest`` running ingest and standardize with test-friendly bounds."""
    return (
        f'name = "{name}"\nroot = "{root}"\n[input]\nmanifest = "{manifest}"\n'
        "[runtime]\nstall_timeout_s = 120\n[stages.ingest]\n"
        "[stages.standardize]\nmin_seconds = 1.0\nmax_seconds = 600.0\n" + extra
    )
