"""End-to-end checks of ``make_corpus``: determinism, exact stems, silences, lyrics and manifest."""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TypedDict

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from songcorpus.synth.accompaniment import FLUIDSYNTH_MISSING, MissingToolError
from songcorpus.synth.cli import add_synth_parser, run_synth
from songcorpus.synth.corpus import MANIFEST_COLUMNS, make_corpus


class _SongLengths(TypedDict):
    min_seconds: float
    max_seconds: float


SHORT: _SongLengths = {"min_seconds": 12.0, "max_seconds": 16.0}
LRC_LINE = re.compile(r"^\[(\d{2}):(\d{2}\.\d{2})\](.*)$")


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four small corpora: the same seed twice (different workers and processes), a 1-song prefix, another seed.

    ``b`` is made by the CLI in a process of its own, started at another second than ``a``'s workers:
    whatever a library seeds from the clock or carries between calls shows up as different bytes.
    """
    base = tmp_path_factory.mktemp("synth")
    make_corpus(base / "a", 3, seed=0, workers=2, **SHORT)
    time.sleep(1.0)
    cli = [sys.executable, "-m", "songcorpus", "synth", "--songs", "3", "--seed", "0", "--workers", "1"]
    lengths = ["--min-seconds", str(SHORT["min_seconds"]), "--max-seconds", str(SHORT["max_seconds"])]
    subprocess.run([*cli, *lengths, "--out", str(base / "b")], check=True, capture_output=True)
    make_corpus(base / "prefix", 1, seed=0, workers=1, **SHORT)
    make_corpus(base / "other", 1, seed=1, languages=("de",), formats=("ogg",), workers=1, **SHORT)
    return {name: base / name for name in ("a", "b", "prefix", "other")}


def _truths(root: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((root / "truth").glob("*.json"))]


def test_same_seed_gives_identical_bytes_whatever_the_workers(corpora: dict[str, Path]) -> None:
    a, b = _hashes(corpora["a"]), _hashes(corpora["b"])
    assert a == b
    assert not any(".tmp" in name for name in a)  # atomic writes leave no temp files behind
    assert len(a) == 3 * 7 + 2


def test_song_does_not_depend_on_corpus_size(corpora: dict[str, Path]) -> None:
    a, prefix = _hashes(corpora["a"]), _hashes(corpora["prefix"])
    songs = {name: digest for name, digest in prefix.items() if not name.startswith("manifest")}
    assert songs and all(a[name] == digest for name, digest in songs.items())


def test_other_seed_differs(corpora: dict[str, Path]) -> None:
    a, other = _hashes(corpora["a"]), _hashes(corpora["other"])
    assert a["stems/song-000000.vocals.flac"] != other["stems/song-000000.vocals.flac"]
    assert a["lyrics/song-000000.txt"] != other["lyrics/song-000000.txt"]
    assert _truths(corpora["other"])[0]["language"] == "de"


@pytest.mark.parametrize("name", ["a", "other"])
def test_mixture_is_vocals_plus_accompaniment(corpora: dict[str, Path], name: str) -> None:
    root = corpora[name]
    for truth in _truths(root):
        mixture, rate = sf.read(root / truth["paths"]["audio"], dtype="float64", always_2d=True)
        vocals, _ = sf.read(root / truth["paths"]["vocals"], dtype="float64", always_2d=True)
        accomp, _ = sf.read(root / truth["paths"]["accomp"], dtype="float64", always_2d=True)
        assert rate == truth["sample_rate"] == 44100
        assert vocals.shape == accomp.shape == (truth["num_samples"], 2)
        assert len(mixture) == truth["num_samples"]
        total = vocals + accomp
        assert np.max(np.abs(total)) < 1.0
        if truth["format"] in ("wav", "flac"):
            np.testing.assert_allclose(mixture, total, atol=1e-4)  # 16-bit mixture, 24-bit stems
        else:
            assert np.corrcoef(mixture[:, 0], total[:, 0])[0, 1] > 0.98


def test_vocals_silent_between_lines_and_loud_inside(corpora: dict[str, Path]) -> None:
    root = corpora["a"]
    for truth in _truths(root):
        vocals, rate = sf.read(root / truth["paths"]["vocals"], dtype="float64", always_2d=True)
        inside = np.zeros(len(vocals), dtype=bool)
        for line in truth["lines"]:
            start, end = round(line["start"] * rate), round(line["end"] * rate)
            assert np.sqrt(np.mean(vocals[start:end] ** 2)) > 0.01, line["text"]
            inside[start:end] = True
        assert np.max(np.abs(vocals[~inside])) < 1e-6
        intro, outro = truth["intro"], truth["outro"]
        assert intro["end"] - intro["start"] >= 2.0 and outro["end"] - outro["start"] >= 2.0
        assert intro["end"] == truth["lines"][0]["start"] and outro["start"] == truth["lines"][-1]["end"]
        assert outro["end"] == truth["duration"] == pytest.approx(truth["num_samples"] / rate)
        gaps = [b["start"] - a["end"] for a, b in itertools.pairwise(truth["lines"])]
        assert all(gap >= 0.29 for gap in gaps)


def test_word_times_are_monotonic_and_inside_their_line(corpora: dict[str, Path]) -> None:
    for truth in _truths(corpora["a"]) + _truths(corpora["other"]):
        for line in truth["lines"]:
            words = line["words"]
            assert " ".join(w["word"] for w in words) == line["text"]
            assert words[0]["start"] == line["start"] and words[-1]["end"] == line["end"]
            for word, following in itertools.pairwise(words):
                assert word["end"] == following["start"]
            assert all(line["start"] <= w["start"] < w["end"] <= line["end"] for w in words)


def test_lyrics_files_match_truth(corpora: dict[str, Path]) -> None:
    root = corpora["a"]
    for truth in _truths(root):
        lrc = (root / truth["paths"]["lrc"]).read_text().splitlines()
        assert f"[ar:{truth['artist']}]" in lrc and f"[ti:{truth['title']}]" in lrc
        timed = [m for row in lrc if (m := LRC_LINE.match(row))]
        assert [m.group(3) for m in timed] == [line["text"] for line in truth["lines"]]
        for match, line in zip(timed, truth["lines"], strict=False):
            assert abs(int(match.group(1)) * 60 + float(match.group(2)) - line["start"]) <= 0.01
        txt = (root / truth["paths"]["txt"]).read_text().splitlines()
        assert txt == [line["text"] for line in truth["lines"]]
        assert (root / truth["paths"]["midi"]).read_bytes().startswith(b"MThd")


def test_manifest_rows_and_columns(corpora: dict[str, Path]) -> None:
    root = corpora["a"]
    table = pq.read_table(root / "manifest.parquet")
    assert tuple(table.column_names) == MANIFEST_COLUMNS
    assert pacsv.read_csv(root / "manifest.csv").to_pylist() == table.to_pylist()
    rows = table.to_pylist()
    assert [row["audio_path"] for row in rows] == [
        "audio/song-000000.wav",
        "audio/song-000001.flac",
        "audio/song-000002.mp3",
    ]
    assert [Path(row["lyrics_path"]).suffix for row in rows] == [".txt", ".lrc", ".txt"]
    assert len({row["artist"] for row in rows}) == 1  # consecutive songs share an artist: groups exist
    for row in rows:
        assert row["language"] == "en" and row["genre"] and row["title"]
        for column in ("audio_path", "lyrics_path", "truth_path"):
            assert (root / row[column]).is_file()


def test_missing_fluidsynth_gives_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match=re.escape("install the Debian package `fluidsynth`")):
        make_corpus(tmp_path / "out", 1, workers=1)
    assert "(`apt-get install fluidsynth`)" in FLUIDSYNTH_MISSING

    parser = argparse.ArgumentParser(prog="songcorpus")
    add_synth_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", "--songs", "1", "--out", str(tmp_path / "cli")])
    assert args.func(args) == 2
    assert FLUIDSYNTH_MISSING in capsys.readouterr().err


def test_cli_parses_and_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="songcorpus")
    add_synth_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "synth",
            "--songs",
            "2",
            "--out",
            str(tmp_path),
            "--languages",
            "en, ES",
            "--formats",
            "flac",
            "--min-seconds",
            "10",
            "--max-seconds",
            "12",
        ]
    )
    assert (args.songs, args.seed, args.languages, args.formats) == (2, 0, ["en", "es"], ["flac"])
    assert args.func is run_synth
    args.languages = ["xx"]
    assert run_synth(args) == 2
    assert "unsupported lyrics language 'xx'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["synth", "--out", str(tmp_path)])  # --songs is required
