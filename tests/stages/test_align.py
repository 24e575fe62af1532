"""Alignment: the coarse CTC line locator on a known emission, and the align stage end to end on a
synthetic song with the offline tiny wav2vec2 model loaded through whisperx.load_align_model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from songcorpus.pipeline.stage import Reject, StageContext
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.song_records import AlignedSong, Alignment
from songcorpus.schemas.stage_configs import AlignConfig
from songcorpus.stages.align import AlignStage
from songcorpus.stages.audio_io import encode_flac, read_flac
from songcorpus.stages.coarse_align import line_tokens, line_windows
from songcorpus.synth.corpus import make_corpus
from tests.recordtools import ingested, separated, standardized

DICTIONARY = {"<pad>": 0, "|": 1, "a": 2, "b": 3, "c": 4}


def emission_with_path(frames: int, placed: dict[int, int]) -> torch.Tensor:
    """Log-probs where frame f emits token placed[f] and every other frame is blank."""
    probs = torch.full((frames, len(DICTIONARY)), 1e-4)
    probs[:, 0] = 1.0
    for frame, token in placed.items():
        probs[frame] = 1e-4
        probs[frame, token] = 1.0
    return torch.log(probs / probs.sum(dim=1, keepdim=True))


def test_line_tokens_map_spaces_and_drop_unknown_characters():
    assert line_tokens(" Ab, c ", DICTIONARY) == [2, 3, 1, 4]


def test_line_windows_recover_known_positions():
    # "ab" at frames 10-11, separator at 30, "c" at 60, in a 100-frame (2 s) emission
    log_probs = emission_with_path(100, {10: 2, 11: 3, 30: 1, 60: 4})
    windows = line_windows(["ab", "c", "???"], log_probs, DICTIONARY, seconds=2.0)
    assert windows[0] == pytest.approx((0.20, 0.24))
    assert windows[1] == pytest.approx((1.20, 1.22))
    assert windows[2] is None  # nothing the model knows: cannot be placed


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> tuple[Path, dict]:
    """One synthetic song, its truth, and a root holding its vocals stem as the separate stage would."""
    corpus = tmp_path_factory.mktemp("corpus")
    make_corpus(corpus, 1, seed=5, min_seconds=20, max_seconds=25, workers=1)
    truth = json.loads(next((corpus / "truth").glob("*.json")).read_text())
    return corpus, truth


def align_song(tmp_path: Path, corpus: Path, truth: dict, lyrics: str) -> tuple[AlignedSong, Alignment, dict]:
    """The align stage's record, its alignment document, and that document as raw JSON."""
    storage = Storage(str(tmp_path / "out"))
    vocals, rate = read_flac((corpus / truth["paths"]["vocals"]).read_bytes())
    rel = storage.write_bytes("artifacts/separate/x/vocals.flac", encode_flac(vocals, rate))
    stage = AlignStage(AlignConfig(smoke_dir=str(tmp_path / "models")), StageContext(storage))
    stage.setup()
    song = standardized(ingested("s1", lyrics=lyrics), audio="mix.flac", duration=truth["duration"])
    record = separated(song, vocals=rel, vocal_activity="vocal_activity.npy").model_dump(mode="json")
    out = AlignedSong.model_validate(stage.process("s1", record, "fp").record)
    raw = json.loads(storage.read_bytes(out.alignment))
    return out, Alignment.model_validate(raw), raw


@pytest.mark.parametrize("kind", ["lrc", "txt"])
def test_align_stage_runs_whisperx_on_both_lyrics_kinds(tmp_path, song, kind):
    corpus, truth = song
    lyrics = (corpus / truth["paths"][kind]).read_text()
    out, doc, raw = align_song(tmp_path, corpus, truth, lyrics)
    assert out.align.lyrics_format == doc.lyrics_format == ("lrc" if kind == "lrc" else "text")
    assert out.align.model_dump() == doc.model_dump(exclude={"lines"})  # the record carries the summary
    assert [line.text for line in doc.lines] == [line["text"] for line in truth["lines"]]
    assert out.align.lines_aligned >= 1 and 0 < out.align.coverage <= 1
    for line in doc.lines:
        if line.start is None:
            continue
        assert 0 <= line.start <= line.end <= truth["duration"] + 0.5
        starts = [w.start for w in line.words]
        assert starts == sorted(starts)
    for line in raw["lines"]:  # as written: word timings keyed "word", times to the millisecond
        assert all(set(w) == {"word", "start", "end", "score"} for w in line["words"])
        assert all(t == round(t, 3) for w in line["words"] for t in (w["start"], w["end"]))
    if kind == "lrc":  # LRC windows keep every aligned line near its true start, even with a random model
        for line, true in zip(doc.lines, truth["lines"], strict=False):
            if line.start is not None:
                assert abs(line.start - true["start"]) < 1.0


def test_malformed_lyrics_are_rejected_with_the_line_number(tmp_path, song):
    corpus, truth = song
    with pytest.raises(Reject) as rejected:
        align_song(tmp_path, corpus, truth, "[00:01.00]fine line\n[0a:02.00]broken stamp\n")
    assert rejected.value.reason == "lrc_bad_timestamp" and "line 2" in rejected.value.message


def test_smoke_model_is_announced_and_fingerprinted(tmp_path):
    stage = AlignStage(AlignConfig(smoke_dir=str(tmp_path)), StageContext(Storage(str(tmp_path / "o"))))
    assert "smoke-test model" in stage.notices()[0]
    assert stage.weights_hash() == AlignStage(AlignConfig(smoke_dir=str(tmp_path)), stage.context).weights_hash()
    assert len(stage.weights_hash()) == 32


def test_six_minute_song_is_located_in_bounded_time_and_memory():
    """A 6-min song at 50 frames/s with ~1,500 lyric characters: one Viterbi pass, windows in order."""
    frames, rng = 6 * 60 * 50, np.random.default_rng(0)
    log_probs = torch.log_softmax(torch.from_numpy(rng.standard_normal((frames, len(DICTIONARY)))).float(), dim=-1)
    lines = ["abc ab ca bc abc cab " * 3] * 25
    windows = line_windows(lines, log_probs, DICTIONARY, seconds=360.0)
    assert all(w is not None for w in windows)
    starts = [w[0] for w in windows]
    assert starts == sorted(starts) and windows[-1][1] <= 360.0
