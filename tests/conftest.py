"""Shared fixtures: one embedded Ray for the session, and songs whose content the tests control.

Tests that start the embedded Ray cluster or run whole jobs (tests/e2e/) are marked ``slow`` here, so
``-m "not slow"`` is the quick run and no test has to remember the marker.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import soundfile as sf

from tests.songtools import tone, write_manifest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")

E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()) or item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ray_cluster():
    from songcorpus.pipeline.runtime import start_ray, stop_ray

    cluster = start_ray(num_cpus=2)
    yield cluster
    stop_ray()


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
