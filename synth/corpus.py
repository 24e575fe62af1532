"""``make_corpus``: many synthetic songs in parallel, plus the manifest that ingest reads.

Layout under ``out_dir`` (``<key>`` is ``song-000123``)::

    audio/<key>.<fmt>            mixture; the format rotates through ``formats`` across songs
    stems/<key>.vocals.flac      the exact vocal signal summed into the mixture (24-bit)
    stems/<key>.accomp.flac      the exact accompaniment signal summed into the mixture (24-bit)
    lyrics/<key>.txt, .lrc       plain lines; LRC with [ar:]/[ti:] and true line starts
    truth/<key>.json             timings of lines and words, gains, voice, tempo, seed
    accomp_midi/<key>.mid        the MIDI the accompaniment was rendered from
    manifest.parquet, .csv       one row per song (``MANIFEST_COLUMNS``)
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from songcorpus.synth import accompaniment, lyrics_text, vocals, writers
from songcorpus.synth.song import SynthSettings, make_song

logger = logging.getLogger(__name__)

DEFAULT_FORMATS: tuple[str, ...] = tuple(writers.AUDIO_FORMATS)
MANIFEST_COLUMNS: tuple[str, ...] = (
    "audio_path",
    "lyrics_path",
    "title",
    "artist",
    "language",
    "genre",
    "truth_path",
)
MIN_SONG_SECONDS = 8.0  # room for a 2 s intro, one sung line and a 2 s outro


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _check_settings(songs: int, settings: SynthSettings, workers: int) -> None:
    if songs < 1:
        raise ValueError(f"--songs must be at least 1, got {songs}")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if not settings.languages:
        raise ValueError(f"give at least one language, e.g. {', '.join(lyrics_text.SUPPORTED_LANGUAGES)}")
    for language in settings.languages:
        lyrics_text.check_language(language)
    if not settings.formats:
        raise ValueError(f"give at least one audio format, e.g. {', '.join(writers.AUDIO_FORMATS)}")
    unknown = [fmt for fmt in settings.formats if fmt not in writers.AUDIO_FORMATS]
    if unknown:
        raise ValueError(f"unsupported audio formats {unknown}: use {', '.join(writers.AUDIO_FORMATS)}")
    if not MIN_SONG_SECONDS <= settings.min_seconds <= settings.max_seconds:
        raise ValueError(
            f"song length must satisfy {MIN_SONG_SECONDS} <= min_seconds <= max_seconds, "
            f"got {settings.min_seconds} and {settings.max_seconds}"
        )


def _write_manifest(out_dir: Path, rows: list[dict[str, str]]) -> Path:
    schema = pa.schema([(name, pa.string()) for name in MANIFEST_COLUMNS])
    table = pa.Table.from_pylist(rows, schema=schema)
    manifest = out_dir / "manifest.parquet"
    with writers.atomic_path(manifest) as tmp:
        pq.write_table(table, tmp)
    with writers.atomic_path(out_dir / "manifest.csv") as tmp:
        pacsv.write_csv(table, tmp)
    return manifest


def make_corpus(
    out_dir: Path,
    songs: int,
    seed: int = 0,
    *,
    languages: Iterable[str] = ("en",),
    min_seconds: float = 25.0,
    max_seconds: float = 50.0,
    formats: Iterable[str] = DEFAULT_FORMATS,
    workers: int | None = None,
) -> Path:
    """Write ``songs`` synthetic songs with their truth under ``out_dir``; return the manifest path.

    The same ``seed`` gives byte-identical files whatever ``workers`` is, and song ``i`` is the
    same whether 3 or 3000 songs are made. Existing files of the same songs are overwritten.
    """
    out_dir = Path(out_dir)
    settings = SynthSettings(
        languages=tuple(languages),
        min_seconds=float(min_seconds),
        max_seconds=float(max_seconds),
        formats=tuple(fmt.lower() for fmt in formats),
    )
    workers = default_workers() if workers is None else workers
    _check_settings(songs, settings, workers)
    # Fail fast, before any process starts, on what a user has to install or fix.
    accompaniment.fluidsynth_executable()
    accompaniment.soundfont_path()
    for language in settings.languages:
        vocals.available_voices(language)

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    job = partial(make_song, out_dir, seed=seed, settings=settings)
    workers = min(workers, songs)
    logger.info("synth: %d songs into %s with %d worker(s), seed %d", songs, out_dir, workers, seed)
    if workers == 1:
        rows = [job(index) for index in range(songs)]
    else:
        # spawn, not fork: a forked child would inherit a half-used espeak-ng and its lock.
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            rows = list(pool.map(job, range(songs)))
    manifest = _write_manifest(out_dir, rows)
    logger.info("synth: %d songs in %.1f s, manifest %s", songs, time.perf_counter() - started, manifest)
    return manifest
