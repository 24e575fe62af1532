"""Where to cut a song into training clips: pure planning over aligned lines and a vocal envelope.

SongCreator trains on clips of at most 30 s that never split a lyric line. The plan is made in
three passes over the lines sorted by time:

1. Lines with unusable times are dropped; lines that touch or overlap are grouped, since no cut
   can fall between them. Each group is widened to the vocal silences around it (an aligner may end
   a line's last word early), never past a neighbour. A group longer than the clip limit is dropped
   and splits the song into independent *runs* (no clip may reach across a dropped line).
2. Each run is packed greedily into clips as long as the limit allows. Between two consecutive
   groups the cut is the quietest envelope frame in the gap; a clip extends past its outer lines by
   at most ``pad_seconds`` and never past a cut. A clip below ``min_seconds`` takes lines from the
   clip before it (a whole merge never fits after greedy packing), or is dropped.
3. What no lyric clip covers and holds no line (intro, outro, long interludes) is instrumental and
   follows ``SegmentConfig.instrumental``. Uncovered stretches shorter than ``min_seconds`` (the
   silence trimmed around cuts) are neither clips nor reported: they carry no lyric and no clip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from ..schemas.song_records import AlignedLine, Clip, ClipPlan, Word, to_ms
from ..schemas.stage_configs import SegmentConfig

LINE_UNALIGNED = "line_unaligned"
LINE_TOO_LONG = "line_longer_than_clip_limit"
CLIP_TOO_SHORT = "clip_too_short"
INSTRUMENTAL_DROPPED = "instrumental_dropped"
INSTRUMENTAL_OVER_CAP = "instrumental_over_cap"
_EPS = 1e-9
Dropped = list[tuple[str, str]]  # (reason, human message), appended to as the plan is made
Spans = list[tuple[float, float]]  # (start, end) in seconds of the song


@dataclass(frozen=True)
class _Group:
    """Lines no cut can separate: they go into one clip together or into none."""

    lines: tuple[AlignedLine, ...]
    start: float
    end: float


@dataclass(frozen=True)
class _Run:
    """Consecutive groups with no dropped line between them, and the cuts in the gaps between them."""

    groups: list[_Group]
    lower: float  # no clip of the run starts before this (song start, or the end of a dropped line)
    upper: float
    cuts: list[float]  # cuts[i] lies in the gap between groups[i] and groups[i + 1]
    pad: float
    max_seconds: float

    def fits(self, a: int, b: int) -> bool:
        return self.groups[b].end - self.groups[a].start <= self.max_seconds

    def extent(self, a: int, b: int) -> tuple[float, float]:
        """Clip bounds of groups ``a..b``: padded, never past a cut, padding trimmed to the limit."""
        first, last = self.groups[a], self.groups[b]
        start = max(first.start - self.pad, self.cuts[a - 1] if a > 0 else self.lower)
        end = min(last.end + self.pad, self.cuts[b] if b < len(self.groups) - 1 else self.upper)
        excess = (end - start) - self.max_seconds
        if excess > 0:
            end -= min(excess, end - last.end)
            start += max(0.0, (end - start) - self.max_seconds)
        return start, end

    def length(self, a: int, b: int) -> float:
        start, end = self.extent(a, b)
        return end - start


def plan_clips(song_id: str, duration: float, lines: Sequence[AlignedLine], activity_db: np.ndarray,
               frame_seconds: float, config: SegmentConfig, *, silence_db: float) -> ClipPlan:
    """Cut one song into clips; every line ends up in exactly one clip or in ``dropped``.

    ``activity_db`` is the vocal-activity envelope (dBFS per frame of ``frame_seconds``, frame ``k``
    covering ``[k*f, (k+1)*f)``); frames below ``silence_db`` are silent. An aligner can place a
    line's last word too early (or its first too late), so each group of lines reaches on to the
    first silence of at least ``min_silence_seconds`` after it (before it), or to the next (previous)
    line when there is none; cuts go at the quietest frame between two groups. Clip bounds are
    rounded to the millisecond, so the song is planned up to its last whole millisecond: a rounded
    clip then never ends past the audio.
    """
    _check_inputs(song_id, duration, activity_db, frame_seconds)
    duration = math.floor(duration * 1000 + 1e-6) / 1000
    envelope = np.nan_to_num(np.asarray(activity_db, dtype=np.float64), nan=np.inf)
    dropped: Dropped = []
    occupied: Spans = []  # song time that holds a line: never instrumental
    spans: list[tuple[float, float, tuple[AlignedLine, ...]]] = []
    groups = _group_lines(_valid_lines(lines, duration, dropped), config.min_gap_seconds)
    silences = _Silences.of(envelope, silence_db, frame_seconds, config.min_silence_seconds)
    groups = _to_silence(groups, silences, duration)
    for run in _runs(groups, duration, envelope, frame_seconds, config, dropped, occupied):
        for a, b in _pack(run, config.min_seconds, dropped, occupied):
            start, end = run.extent(a, b)
            spans.append((start, end, tuple(ln for g in run.groups[a : b + 1] for ln in g.lines)))
    occupied.extend((start, end) for start, end, _ in spans)
    free = _free_stretches(duration, occupied, config.min_seconds)
    spans.extend((start, end, ()) for start, end in _instrumental(free, config, dropped))
    spans.sort(key=lambda span: span[0])
    clips = tuple(_make_clip(f"{song_id}-{n:04d}", *span) for n, span in enumerate(spans))
    return ClipPlan(clips=clips, dropped=tuple(dropped))


def _check_inputs(song_id: str, duration: float, activity_db: np.ndarray, frame_seconds: float) -> None:
    if not song_id or "." in song_id:
        raise ValueError(f"song_id {song_id!r} must be non-empty with no dots (clip ids are WebDataset keys)")
    if not 0 < duration < math.inf:
        raise ValueError(f"duration must be a positive number of seconds, got {duration}")
    if not 0 < frame_seconds < math.inf:
        raise ValueError(f"frame_seconds must be a positive number of seconds, got {frame_seconds}")
    if np.ndim(activity_db) != 1:
        raise ValueError(f"activity_db must be 1-D (one level per frame), got shape {np.shape(activity_db)}")


def _valid_lines(lines: Sequence[AlignedLine], duration: float, dropped: Dropped) -> list[AlignedLine]:
    """Lines that were aligned, with times ordered and inside the song, sorted by time."""
    valid = []
    for line in sorted(lines, key=lambda ln: ln.index):  # same reasons in the same order for any input order
        if line.start is None or line.end is None:
            _drop_lines(dropped, LINE_UNALIGNED, [line], "was not aligned")
        elif 0 <= line.start <= line.end <= duration:
            valid.append(line)
        else:
            _drop_lines(dropped, LINE_UNALIGNED, [line], f"has unusable times for a {duration:.2f} s song")
    return sorted(valid, key=lambda ln: (ln.start, ln.end, ln.index))


def _times(line: AlignedLine) -> tuple[float, float]:
    """A valid line's start and end: ``_valid_lines`` keeps only lines that have both."""
    assert line.start is not None and line.end is not None, f"line {line.index} was not aligned"
    return line.start, line.end


def _group_lines(lines: list[AlignedLine], min_gap: float) -> list[_Group]:
    """Join lines separated by no more than ``min_gap`` (touching or overlapping when it is 0)."""
    groups: list[list[AlignedLine]] = []
    end = -math.inf
    for line in lines:
        line_start, line_end = _times(line)
        if groups and line_start - end <= min_gap:
            groups[-1].append(line)
            end = max(end, line_end)
        else:
            groups.append([line])
            end = line_end
    return [_Group(tuple(g), _times(g[0])[0], max(_times(ln)[1] for ln in g)) for g in groups]


@dataclass(frozen=True)
class _Silences:
    """Where the vocal envelope is silent for at least ``width`` frames in a row."""

    starts: np.ndarray  # starts[k]: frames k .. k+width-1 are all silent (frames past the end count as silent)
    width: int
    frame: float

    @classmethod
    def of(cls, envelope: np.ndarray, silence_db: float, frame: float, min_seconds: float) -> _Silences:
        width = max(1, math.ceil(min_seconds / frame - _EPS))
        silent = np.concatenate([envelope < silence_db, np.ones(width, dtype=bool)]).astype(np.int64)
        sums = np.concatenate([[0], np.cumsum(silent)])
        return cls((sums[width : width + envelope.size + 1] - sums[: envelope.size + 1]) == width, width, frame)

    def after(self, t: float) -> float:
        """Start of the first silence at or after ``t`` (``t`` itself when it lies in one)."""
        first = min(int(t / self.frame), self.starts.size - 1)
        k = first + int(np.argmax(self.starts[first:]))  # the last entry is past the envelope: always silent
        return max(t, k * self.frame)

    def before(self, t: float) -> float:
        """End of the last silence that ends at or before ``t`` (``t`` itself when it lies in one; else 0)."""
        k = int(t / self.frame + _EPS)  # the frame holding t
        if k >= self.starts.size - 1:  # past the envelope's end: silent
            return t
        found = np.flatnonzero(self.starts[: max(k - self.width + 2, 0)])
        return min(t, (found[-1] + self.width) * self.frame) if found.size else 0.0


def _to_silence(groups: list[_Group], silences: _Silences, duration: float) -> list[_Group]:
    """Widen each group to the silences around it, never past its neighbours' lines.

    Where no silence separates two groups, the first one reaches to the second one's start.
    """
    widened = []
    for i, group in enumerate(groups):
        floor = groups[i - 1].end if i > 0 else 0.0
        cap = groups[i + 1].start if i + 1 < len(groups) else duration
        start = min(max(silences.before(group.start), floor), group.start)
        end = max(min(silences.after(group.end), cap), group.end)
        widened.append(_Group(group.lines, start, end))
    for i, (g, h) in enumerate(pairwise(widened)):
        if g.end > h.start:  # no silence between them
            meet = groups[i + 1].start
            widened[i], widened[i + 1] = _Group(g.lines, g.start, meet), _Group(h.lines, meet, h.end)
    return widened


def _runs(groups: list[_Group], duration: float, envelope: np.ndarray, frame: float,
          config: SegmentConfig, dropped: Dropped, occupied: Spans) -> list[_Run]:
    """Split at groups longer than the limit (dropped); each run knows the cuts between its groups."""
    runs: list[_Run] = []
    current: list[_Group] = []
    lower = 0.0

    def close(upper: float) -> None:
        if current:
            cuts = [_quietest_cut(g.end, h.start, envelope, frame) for g, h in pairwise(current)]
            runs.append(_Run(list(current), lower, upper, cuts, config.pad_seconds, config.max_seconds))
            current.clear()

    for group in groups:
        if group.end - group.start <= config.max_seconds:
            current.append(group)
            continue
        close(group.start)
        lower = group.end
        occupied.append((group.start - config.pad_seconds, group.end + config.pad_seconds))
        seconds = group.end - group.start
        why = f"is in {seconds:.2f} s of unbroken singing, over the {config.max_seconds:g} s limit"
        _drop_lines(dropped, LINE_TOO_LONG, group.lines, why)
    close(duration)
    return runs


def _quietest_cut(gap_start: float, gap_end: float, envelope: np.ndarray, frame: float) -> float:
    """Middle of the quietest frame in the gap (earliest on ties); frames wholly inside come first."""
    inside = (math.ceil(gap_start / frame - _EPS), math.floor(gap_end / frame + _EPS) - 1)
    touching = (math.floor(gap_start / frame), math.ceil(gap_end / frame) - 1)
    for first, end in (inside, touching):
        last = min(end, len(envelope) - 1)
        if first <= last:
            k = first + int(np.argmin(envelope[first : last + 1]))
            return min(max((k + 0.5) * frame, gap_start), gap_end)
    return (gap_start + gap_end) / 2  # the envelope does not reach this far


def _pack(run: _Run, min_seconds: float, dropped: Dropped, occupied: Spans) -> list[tuple[int, int]]:
    """Greedy packing into the fewest longest clips, then repair of clips below ``min_seconds``."""
    clips: list[tuple[int, int]] = []
    a = 0
    while a < len(run.groups):
        b = a
        while b + 1 < len(run.groups) and run.fits(a, b + 1):
            b += 1
        clips.append((a, b))
        a = b + 1
    k = 0
    while k < len(clips):
        if run.length(*clips[k]) >= min_seconds or _repair(run, clips, k, min_seconds):
            k += 1
            continue
        a, b = clips.pop(k)
        occupied.append(run.extent(a, b))
        why = f"makes a clip of {run.length(a, b):.2f} s, under {min_seconds:g} s, that no neighbour can take"
        _drop_lines(dropped, CLIP_TOO_SHORT, [ln for g in run.groups[a : b + 1] for ln in g.lines], why)
    return clips


def _repair(run: _Run, clips: list[tuple[int, int]], k: int, min_seconds: float) -> bool:
    """Give a short clip the last lines of the clip before it, if both then reach ``min_seconds``.

    Merging a short clip whole into a neighbour never fits after greedy packing (the packer would
    have done it), so moving lines over is the merge that is left; False when it does not work.
    """
    a, b = clips[k]
    if k == 0 or clips[k - 1][1] != a - 1:  # no clip right before (first of its run, or one was dropped)
        return False
    first = clips[k - 1][0]
    for m in range(a - 1, first, -1):  # the short clip would take groups m..b
        if not run.fits(m, b) or run.length(first, m - 1) < min_seconds:
            return False
        if run.length(m, b) >= min_seconds:
            clips[k - 1 : k + 1] = [(first, m - 1), (m, b)]
            return True
    return False


def _free_stretches(duration: float, occupied: Spans, min_seconds: float) -> Spans:
    """Stretches of the song that hold no line and no clip, at least ``min_seconds`` long."""
    free, cursor = [], 0.0
    for start, end in sorted(occupied):
        if start - cursor >= max(min_seconds, _EPS):
            free.append((cursor, start))
        cursor = max(cursor, end)
    if duration - cursor >= max(min_seconds, _EPS):
        free.append((cursor, duration))
    return free


def _instrumental(free: Spans, config: SegmentConfig, dropped: Dropped) -> Spans:
    """Apply the instrumental policy; kept stretches are cut into equal pieces within the limit."""
    kept: Spans = []
    budget = {"keep": math.inf, "drop": 0.0, "cap": config.instrumental_cap_seconds}[config.instrumental]
    for start, end in free:
        take = min(end - start, budget)
        take = take if take >= config.min_seconds and take > 0 else 0.0
        budget -= take
        if config.instrumental == "drop":
            dropped.append((INSTRUMENTAL_DROPPED, f"instrumental {start:.2f}–{end:.2f} s (policy 'drop')"))
        elif take < end - start:
            why = f"is over the cap of {config.instrumental_cap_seconds:g} s"
            dropped.append((INSTRUMENTAL_OVER_CAP, f"instrumental {start + take:.2f}–{end:.2f} s {why}"))
        if take:
            pieces = math.ceil(take / config.max_seconds - _EPS)
            bounds = [start + take * i / pieces for i in range(pieces)] + [start + take]
            kept.extend(pairwise(bounds))
    for s, e in kept:  # only when min_seconds > max_seconds / 2 can an equal piece be this short
        if e - s < config.min_seconds:
            why = f"is under {config.min_seconds:g} s"
            dropped.append((CLIP_TOO_SHORT, f"instrumental piece {s:.2f}–{e:.2f} s {why}"))
    return [(s, e) for s, e in kept if e - s >= config.min_seconds]


def _drop_lines(dropped: Dropped, reason: str, lines: Sequence[AlignedLine], why: str) -> None:
    for line in lines:
        where = "(no times)" if line.start is None or line.end is None else f"({line.start:.2f}–{line.end:.2f} s)"
        dropped.append((reason, f"line {line.index} {where} {why}: {line.text!r}"))


def _make_clip(clip_id: str, start: float, end: float, lines: tuple[AlignedLine, ...]) -> Clip:
    """A clip with its lines in time order and word times relative to its start, inside the clip.

    The bounds are rounded to the millisecond first, so that word times relative to them are exact.
    """
    start, end = to_ms(start), to_ms(end)
    length = end - start

    def relative(t: float) -> float:
        return min(max(t - start, 0.0), length)

    words = tuple(
        Word(word=w.word, start=relative(w.start), end=relative(w.end), score=w.score)
        for line in lines
        for w in line.words
        if w.start <= w.end  # an inverted word from the aligner has no place in the clip's timings
    )
    return Clip(clip_id=clip_id, start=start, end=end, line_indices=tuple(ln.index for ln in lines),
                text="\n".join(ln.text for ln in lines), words=words, instrumental=not lines)
