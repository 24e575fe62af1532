"""Helpers the tests share: tone songs, manifests and job files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


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


def job_toml(name: str, root: Path, manifest: Path, extra: str = "") -> str:
    """A job over ``manifest`` running ingest and standardize with test-friendly bounds."""
    return (
        f'name = "{name}"\nroot = "{root}"\n[input]\nmanifest = "{manifest}"\n'
        "[runtime]\nstall_timeout_s = 120\n[stages.ingest]\n"
        "[stages.standardize]\nmin_seconds = 1.0\nmax_seconds = 600.0\n" + extra
    )
