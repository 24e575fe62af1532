"""The clip planner on synthetic songs with known truth, and on hand-made timings for the edge rules."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pytest
import soundfile as sf

from songcorpus.schemas.song_records import AlignedLine, ClipPlan, Word
from songcorpus.schemas.stage_configs import SegmentConfig
from songcorpus.stages.audio_stats import frame_rms_db
from songcorpus.stages.clip_planner import (
    CLIP_TOO_SHORT,
    INSTRUMENTAL_DROPPED,
    INSTRUMENTAL_OVER_CAP,
    LINE_TOO_LONG,
    LINE_UNALIGNED,
    plan_clips,
)
from songcorpus.synth.corpus import make_corpus

FRAME = 0.02
TOL = 1e-9
SILENT_DB = -50.0
REASONS = {LINE_UNALIGNED, LINE_TOO_LONG, CLIP_TOO_SHORT, INSTRUMENTAL_DROPPED, INSTRUMENTAL_OVER_CAP}


@dataclasses.dataclass(frozen=True)
class Song:
    key: str
    duration: float
    lines: tuple[AlignedLine, ...]
    envelope: np.ndarray


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> list[Song]:
    """Three synthetic songs of 60–90 s: their true line/word times and true-vocals envelope."""
    out = tmp_path_factory.mktemp("corpus")
    make_corpus(out, 3, seed=0, min_seconds=60, max_seconds=90, workers=1)
    result = []
    for truth_path in sorted((out / "truth").glob("*.json")):
        truth = json.loads(truth_path.read_text())
        audio, rate = sf.read(out / "stems" / f"{truth['key']}.vocals.flac", always_2d=True)
        assert rate == truth["sample_rate"] == 44100
        envelope = frame_rms_db(audio.T, 44100, FRAME)
        result.append(Song(truth["key"], truth["duration"], truth_lines(truth), envelope))
    return result


def truth_lines(truth: dict) -> tuple[AlignedLine, ...]:
    """The true lines as the align stage records them (times to the millisecond)."""
    return tuple(
        AlignedLine(index=i, text=line["text"], start=line["start"], end=line["end"], score=1.0,
                    words=tuple(Word(word=w["word"], start=w["start"], end=w["end"], score=1.0)
                                for w in line["words"]))
        for i, line in enumerate(truth["lines"])
    )


def line(index: int, start: float, end: float) -> AlignedLine:
    """A hand-made line of two words that split it in half."""
    mid = (start + end) / 2
    words = (Word(word=f"w{index}a", start=start, end=mid, score=1.0),
             Word(word=f"w{index}b", start=mid, end=end, score=1.0))
    return AlignedLine(index=index, text=f"line {index}", start=start, end=end, score=1.0, words=words)


def bare_line(index: int, text: str, start: float | None, end: float | None) -> AlignedLine:
    """A line without words, e.g. one the aligner could not place (``None`` times)."""
    return AlignedLine(index=index, text=text, start=start, end=end, score=None)


def span(ln: AlignedLine) -> tuple[float, float]:
    """(start, end) of a line the test knows to be aligned."""
    assert ln.start is not None and ln.end is not None, f"line {ln.index} has no times"
    return ln.start, ln.end


def envelope_of(duration: float, lines: list[AlignedLine], loud: float = -20.0,
                quiet: float = -90.0) -> np.ndarray:
    """A vocal envelope that is loud over every line and quiet elsewhere."""
    times = (np.arange(int(duration / FRAME)) + 0.5) * FRAME
    env = np.full(times.size, quiet)
    for ln in lines:
        start, end = span(ln)
        env[(times >= start) & (times < end)] = loud
    return env


def planned(song_id: str, duration: float, lines: Sequence[AlignedLine], env: np.ndarray,
            config: SegmentConfig) -> ClipPlan:
    """``plan_clips`` with the envelope frame and silence level of these tests."""
    return plan_clips(song_id, duration, lines, env, FRAME, config, silence_db=SILENT_DB)


def plan(song_id: str, duration: float, lines: list[AlignedLine], env: np.ndarray | None = None,
         **config: object) -> ClipPlan:
    env = envelope_of(duration, lines) if env is None else env
    return planned(song_id, duration, lines, env, SegmentConfig(**config))


def dropped_lines(p: ClipPlan) -> dict[int, str]:
    """Line index -> reason for every dropped line (their messages start with ``line <index> (``)."""
    return {int(msg.split()[1]): reason for reason, msg in p.dropped if msg.startswith("line ")}


def check_plan(p: ClipPlan, song_id: str, duration: float, lines: tuple[AlignedLine, ...] | list[AlignedLine],
               config: SegmentConfig) -> None:
    """The contract every plan keeps, whatever its input."""
    by_index = {ln.index: ln for ln in lines}
    placed = [i for c in p.clips for i in c.line_indices]
    dropped = dropped_lines(p)
    assert len(placed) == len(set(placed)), "a line is in two clips"
    assert sorted(placed + list(dropped)) == sorted(by_index), "a line is neither in a clip nor dropped"
    assert {reason for reason, _ in p.dropped} <= REASONS
    for n, clip in enumerate(p.clips):
        assert clip.clip_id == f"{song_id}-{n:04d}" and "." not in clip.clip_id
        assert 0 <= clip.start < clip.end <= duration
        assert config.min_seconds - TOL <= clip.end - clip.start <= config.max_seconds + TOL
        assert clip.instrumental == (not clip.line_indices)
        assert clip.text == "\n".join(by_index[i].text for i in clip.line_indices)
        for i in clip.line_indices:
            start, end = span(by_index[i])
            assert clip.start <= start and end <= clip.end
        for word in clip.words:
            assert 0 <= word.start <= word.end <= clip.end - clip.start + TOL
    for a, b in pairwise(p.clips):
        assert a.end <= b.start + TOL, "clips overlap"
    for ln in lines:  # no clip holds part of a line it does not own
        if ln.index not in dropped or dropped[ln.index] != LINE_UNALIGNED:
            start, end = span(ln)
            for clip in p.clips:
                if ln.index not in clip.line_indices:
                    assert min(clip.end, end) - max(clip.start, start) <= TOL


# --- synthetic songs ---------------------------------------------------------------------------


def test_synthetic_songs_are_cut_into_several_clips_keeping_every_line(songs: list[Song]) -> None:
    config = SegmentConfig()
    for song in songs:
        p = planned(song.key, song.duration, song.lines, song.envelope, config)
        check_plan(p, song.key, song.duration, song.lines, config)
        lyric = [c for c in p.clips if not c.instrumental]
        assert len(lyric) >= 2
        assert sorted(i for c in lyric for i in c.line_indices) == [ln.index for ln in song.lines]
        assert not dropped_lines(p)


def test_cuts_fall_in_silence_between_the_true_lines(songs: list[Song]) -> None:
    for song in songs:
        p = planned(song.key, song.duration, song.lines, song.envelope, SegmentConfig())
        lyric = [c for c in p.clips if not c.instrumental]
        for a, b in pairwise(lyric):
            gap_start, gap_end = span(song.lines[a.line_indices[-1]])[1], span(song.lines[b.line_indices[0]])[0]
            assert gap_start <= a.end <= b.start <= gap_end
        for clip in lyric:
            for t in (clip.start, clip.end):
                frame = min(int(t / FRAME), len(song.envelope) - 1)
                assert song.envelope[frame] < SILENT_DB, f"{clip.clip_id} cut at {t:.2f} s is not silent"


def test_word_times_are_relative_to_the_clip(songs: list[Song]) -> None:
    song = songs[0]
    p = planned(song.key, song.duration, song.lines, song.envelope, SegmentConfig())
    for clip in p.clips:
        truth = [w for i in clip.line_indices for w in song.lines[i].words]
        assert len(clip.words) == len(truth)
        for word, true in zip(clip.words, truth, strict=True):
            assert word.word == true.word
            assert math.isclose(word.start + clip.start, true.start, abs_tol=1e-9)
            assert math.isclose(word.end + clip.start, true.end, abs_tol=1e-9)


def test_the_plan_is_deterministic_whatever_the_line_order(songs: list[Song]) -> None:
    song, config = songs[1], SegmentConfig(instrumental="keep")
    first = planned(song.key, song.duration, song.lines, song.envelope, config)
    again = planned(song.key, song.duration, song.lines, song.envelope.copy(), config)
    shuffled = list(song.lines)
    random.Random(0).shuffle(shuffled)
    assert first == again == planned(song.key, song.duration, shuffled, song.envelope, config)


def test_instrumental_keep_cuts_intro_and_outro_into_pieces_within_the_limit(songs: list[Song]) -> None:
    config = SegmentConfig(instrumental="keep")
    for song in songs:
        p = planned(song.key, song.duration, song.lines, song.envelope, config)
        check_plan(p, song.key, song.duration, song.lines, config)
        assert not p.dropped
        outro = [c for c in p.clips if c.instrumental and c.start >= span(song.lines[-1])[1]]
        assert outro and song.duration - 0.001 < outro[-1].end <= song.duration  # the song's last whole ms
        assert all(c.text == "" and c.words == () for c in outro)
        covered = sum(c.end - c.start for c in outro)
        assert math.isclose(covered, outro[-1].end - outro[0].start)  # the pieces follow one another
    longest_outro = max(s.duration - span(s.lines[-1])[1] for s in songs)
    assert longest_outro > 30  # so some outro needed more than one piece
    p = planned(songs[0].key, songs[0].duration, songs[0].lines, songs[0].envelope, config)
    assert sum(c.instrumental for c in p.clips) >= 2


def test_instrumental_drop_reports_what_it_drops(songs: list[Song]) -> None:
    config = SegmentConfig(instrumental="drop")
    for song in songs:
        p = planned(song.key, song.duration, song.lines, song.envelope, config)
        check_plan(p, song.key, song.duration, song.lines, config)
        assert not any(c.instrumental for c in p.clips)
        assert [reason for reason, _ in p.dropped].count(INSTRUMENTAL_DROPPED) >= 1


def test_instrumental_cap_keeps_at_most_the_cap(songs: list[Song]) -> None:
    config = SegmentConfig(instrumental="cap", instrumental_cap_seconds=10.0)
    for song in songs:
        p = planned(song.key, song.duration, song.lines, song.envelope, config)
        check_plan(p, song.key, song.duration, song.lines, config)
        kept = sum(c.end - c.start for c in p.clips if c.instrumental)
        assert 3.0 <= kept <= 10.0 + TOL
        assert any(reason == INSTRUMENTAL_OVER_CAP for reason, _ in p.dropped)


# --- hand-made edge cases ----------------------------------------------------------------------


def test_a_40_second_line_is_dropped_and_the_rest_still_gets_clips() -> None:
    lines = [line(0, 1, 6), line(1, 7, 12), line(2, 20, 60), line(3, 62, 70), line(4, 71, 80)]
    p = plan("s", 90.0, lines)
    check_plan(p, "s", 90.0, lines, SegmentConfig())
    assert dropped_lines(p) == {2: LINE_TOO_LONG}
    assert [c.line_indices for c in p.clips] == [(0, 1), (3, 4)]
    assert all(c.end <= 20 or c.start >= 60 for c in p.clips)


def test_unaligned_lines_are_dropped_and_the_others_planned() -> None:
    lines = [line(0, 1, 4), bare_line(1, "not aligned", None, None), bare_line(2, "inverted", 9, 8),
             bare_line(3, "past the end", 18, 25), line(4, 5, 9)]
    p = planned("s", 20.0, lines, envelope_of(20.0, [lines[0], lines[4]]), SegmentConfig())
    check_plan(p, "s", 20.0, lines, SegmentConfig())
    assert dropped_lines(p) == {1: LINE_UNALIGNED, 2: LINE_UNALIGNED, 3: LINE_UNALIGNED}
    assert [c.line_indices for c in p.clips] == [(0, 4)]


def test_touching_and_overlapping_lines_are_never_separated() -> None:
    # 0 and 1 touch, 1 and 2 overlap: one 26 s group; 3 follows after a 0.5 s gap.
    lines = [line(0, 1, 10), line(1, 10, 20), line(2, 19, 27), line(3, 27.5, 40)]
    p = plan("s", 45.0, lines)
    check_plan(p, "s", 45.0, lines, SegmentConfig())
    assert [c.line_indices for c in p.clips] == [(0, 1, 2), (3,)]
    # With a 1 s minimum gap, 3 joins the group too, and 39 s of inseparable lines is over the limit.
    p = plan("s", 45.0, lines, min_gap_seconds=1.0)
    assert p.clips == () and dropped_lines(p) == dict.fromkeys(range(4), LINE_TOO_LONG)


def test_the_cut_is_the_quietest_frame_in_the_gap_earliest_on_ties() -> None:
    lines = [line(0, 1, 20), line(1, 22, 40)]
    env = envelope_of(45.0, lines, quiet=-40.0)
    env[int(21.4 / FRAME)] = env[int(21.0 / FRAME)] = env[int(21.7 / FRAME)] = -80.0
    p = plan("s", 45.0, lines, env, pad_seconds=5.0, min_silence_seconds=FRAME)  # one silent frame is a silence
    first, second = p.clips
    assert math.isclose(first.end, 21.01) and math.isclose(second.start, 21.01)
    assert first.start == 0.0 and second.end == 45.0  # padding stops at the song's edges


def test_a_short_alignment_still_gets_its_whole_line() -> None:
    """The aligner ends line 0 at 7 s and starts line 1 at 16 s; the voice sings 2-9 s and 13-20 s."""
    sung = [line(0, 2, 9), line(1, 13, 20)]
    env = envelope_of(30.0, sung)
    aligned = [line(0, 2, 7), line(1, 16, 20)]
    p = plan("s", 30.0, aligned, env, pad_seconds=0.25, max_seconds=10.0, min_seconds=1.0)
    first, second = p.clips
    assert first.end >= 9.0 and second.start <= 13.0  # both lines whole, as sung
    assert 9.0 <= first.end <= second.start <= 13.0  # the cut is in the silence between them


def test_with_no_silence_between_lines_a_clip_reaches_the_next_line() -> None:
    lines = [line(0, 2, 7), line(1, 10, 16)]
    env = envelope_of(20.0, [line(0, 2, 16)])  # the voice never stops between them
    first, second = plan("s", 20.0, lines, env, pad_seconds=0.25, max_seconds=10.0, min_seconds=1.0).clips
    assert first.end == 10.0 == second.start


def test_padding_never_makes_a_clip_longer_than_the_limit() -> None:
    lines = [line(0, 0.1, 29.9)]
    p = plan("s", 31.0, lines, pad_seconds=1.0)
    (clip,) = p.clips
    assert clip.start == 0.0 and math.isclose(clip.end - clip.start, 30.0)


def test_a_short_last_clip_takes_lines_from_the_clip_before_it() -> None:
    lines = [line(0, 0, 5), line(1, 5.5, 10.5), line(2, 11, 16), line(3, 16.5, 21.5), line(4, 22, 27),
             line(5, 29, 30.5)]
    p = plan("s", 35.0, lines)
    check_plan(p, "s", 35.0, lines, SegmentConfig())
    assert [c.line_indices for c in p.clips] == [(0, 1, 2, 3), (4, 5)]


def test_an_isolated_short_line_is_dropped_and_its_audio_is_not_instrumental() -> None:
    lines = [line(0, 10, 11), line(1, 45, 55)]
    p = plan("s", 60.0, lines, instrumental="keep")
    check_plan(p, "s", 60.0, lines, SegmentConfig(instrumental="keep"))
    assert dropped_lines(p) == {0: CLIP_TOO_SHORT}
    assert all(c.end <= 10 or c.start >= 11 for c in p.clips)
    assert [c.line_indices for c in p.clips if not c.instrumental] == [(1,)]


def test_a_song_without_lines_is_all_instrumental() -> None:
    p = plan("s", 70.0, [], instrumental="keep")
    assert [c.end - c.start for c in p.clips] == pytest.approx([70 / 3] * 3, abs=0.001)  # cut to the ms
    assert all(c.instrumental for c in p.clips)
    p = plan("s", 70.0, [])
    assert p.clips == () and [reason for reason, _ in p.dropped] == [INSTRUMENTAL_DROPPED]


def test_inverted_words_stay_in_the_text_but_not_in_the_timings() -> None:
    words = (Word(word="one", start=1.0, end=1.5, score=1.0), Word(word="2", start=1.9, end=1.8, score=0.0),
             Word(word="three", start=2.0, end=4.0, score=1.0))
    lines = [AlignedLine(index=0, text="one 2 three", start=1.0, end=4.0, score=1.0, words=words)]
    (clip,) = plan("s", 5.0, lines).clips
    assert clip.text == "one 2 three" and [w.word for w in clip.words] == ["one", "three"]


def test_times_are_on_the_millisecond_grid_and_words_exact_relative_to_the_clip() -> None:
    # 2.46 - 2.13 is 0.33000000000000007 in floating point; a 10.0005 s song ends its clips at 10.0 s.
    words = (Word(word="a", start=2.13, end=2.46, score=1.0), Word(word="b", start=5.0, end=5.33, score=1.0))
    lines = [AlignedLine(index=0, text="a b", start=2.13, end=5.33, score=1.0, words=words)]
    (clip,) = plan("s", 10.0005, lines, pad_seconds=2.13).clips
    assert (clip.start, clip.end) == (0.0, 7.46)
    assert [(w.start, w.end) for w in clip.words] == [(2.13, 2.46), (5.0, 5.33)]
    silent = np.full(500, -90.0)  # nothing to widen the line to: its own bounds are the clip's
    intro, sung, outro = plan("s", 10.0005, lines, silent, pad_seconds=0.0, min_seconds=2.0, instrumental="keep").clips
    assert [(c.start, c.end) for c in (intro, sung, outro)] == [(0.0, 2.13), (2.13, 5.33), (5.33, 10.0)]
    assert [(w.start, w.end) for w in sung.words] == [(0.0, 0.33), (2.87, 3.2)]


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="no dots"):
        plan("a.b", 10.0, [])
    with pytest.raises(ValueError, match="duration"):
        planned("s", math.nan, [], np.zeros(10), SegmentConfig())
    with pytest.raises(ValueError, match="1-D"):
        planned("s", 10.0, [], np.zeros((2, 10)), SegmentConfig())


def test_missing_envelope_frames_cut_in_the_middle_of_the_gap() -> None:
    lines = [line(0, 1, 20), line(1, 22, 40)]
    p = plan("s", 45.0, lines, np.zeros(0), pad_seconds=5.0)
    assert math.isclose(p.clips[0].end, 21.0) and math.isclose(p.clips[1].start, 21.0)


@pytest.mark.parametrize("seed", range(40))
def test_random_timings_keep_the_contract(seed: int) -> None:
    """Touching, overlapping, over-long and isolated lines, long gaps: the contract holds for all."""
    rng = random.Random(seed)
    lines, t = [], rng.uniform(0, 10)
    for i in range(rng.randint(0, 25)):
        t += rng.choice([0.0, -0.5, 0.3, 1.0, 5.0, 35.0]) if i else 0.0
        length = rng.choice([0.0, 1.0, 3.0, 8.0, 40.0])
        lines.append(line(i, max(t, 0.0), max(t, 0.0) + length))
        t = max(t, 0.0) + length
    duration = t + rng.uniform(0, 40) + 0.1
    config = SegmentConfig(
        instrumental=rng.choice(["keep", "drop", "cap"]),
        pad_seconds=rng.choice([0.0, 0.25, 2.0]),
        min_gap_seconds=rng.choice([0.0, 0.5]),
        instrumental_cap_seconds=rng.choice([0.0, 20.0]),
    )
    p = planned("s", duration, lines, envelope_of(duration, lines), config)
    check_plan(p, "s", duration, lines, config)
    assert p == planned("s", duration, lines[::-1], envelope_of(duration, lines), config)
    if config.instrumental != "keep":
        kept = sum(c.end - c.start for c in p.clips if c.instrumental)
        assert kept <= config.instrumental_cap_seconds + TOL
