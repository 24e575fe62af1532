"""Typed records that pass between the song-level stages, and the JSON artifacts they point to.

Records cross the engine as plain JSON dicts (docs/design.md, "Stage"). Each stage builds its output record through
its model here and the next stage validates the record it reads, so a missing, misspelt or mistyped
key fails in the stage that made it instead of shipping in a shard. A song's record grows as it moves
down the pipeline: the record of each stage extends the record of the stage before it.

Times are seconds rounded to the millisecond (:data:`Seconds`) when a model is built, that is, in the
stage that produces them, so float noise such as ``0.33000000000000007`` never reaches a record.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, AllowInfNan, Field

from .base import StrictModel
from .stage_configs import AccompanimentRule

#: What a song id may be: it starts every clip id, a WebDataset key, which must hold no dot.
SONG_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


def to_ms(seconds: float) -> float:
    """``seconds`` rounded to the millisecond."""
    return round(seconds, 3)


#: Seconds rounded to the millisecond; NaN and infinities are refused (JSON cannot hold them).
Seconds = Annotated[float, AllowInfNan(False), AfterValidator(to_ms)]
LyricsFormat = Literal["lrc", "text"]


class StageRecord(StrictModel):
    """Base of the records stages hand each other."""

    lineage: dict[str, str] = Field(
        default_factory=dict, description="stage → fingerprint of each output this record descends from (the "
        "engine adds the producing stage after it returns)"
    )

    @classmethod
    def extending(cls, previous: StageRecord, **fields: Any) -> Self:
        """``previous``'s fields plus ``fields`` (which may replace some), validated as a ``cls``."""
        return cls.model_validate({**dict(previous), **fields})


# --- ingest -> standardize -> separate --------------------------------------------------------------


class IngestedSong(StageRecord):
    """A manifest row that ingest checked, hashed and probed, with its lyrics text."""

    song_id: str = Field(pattern=SONG_ID_PATTERN)
    row_index: int = Field(ge=0, description="row of the manifest (the earliest row wins among duplicates)")
    source_path: str = Field(description="absolute path or URI of the audio file")
    content_sha256: str
    size_bytes: int = Field(ge=0)
    codec: str
    container: str
    source_sample_rate: int
    source_channels: int
    source_duration: float | None = Field(description="seconds the file's header declares, if it does")
    lyrics: str
    lyrics_format: LyricsFormat = Field(description="lrc when the lyrics hold [mm:ss] timestamps")
    language: str | None
    artist: str | None
    title: str | None
    group: str = Field(description="split key: the manifest's group, else the artist, else the song id")
    extra: dict[str, str | None] = Field(description="manifest columns ingest does not interpret")


class AudioLevels(StrictModel):
    """Level measurements of a decoded song."""

    loudness_lufs: float | None = Field(description="integrated loudness; None when too short or silent to gate")
    peak_dbfs: float
    clipping_ratio: float = Field(ge=0, le=1, description="share of samples at or above the clip level")
    silence_ratio: float = Field(ge=0, le=1, description="share of 20 ms frames below the silence threshold")


class StandardizedSong(IngestedSong, AudioLevels):
    """A song decoded and resampled for the separator, written as FLAC."""

    audio: str = Field(description="standardized FLAC, relative to the output root")
    sample_rate: int
    channels: int
    duration: float = Field(gt=0, description="seconds of decoded audio")


class SeparatedSong(StandardizedSong):
    """A song with vocals and accompaniment stems and a vocal-activity envelope."""

    vocals: str = Field(description="vocals FLAC, relative to the output root")
    accomp: str = Field(description="accompaniment FLAC, relative to the output root")
    stem_scale: float = Field(gt=0, le=1, description="both stems were multiplied by this to fit FLAC's range")
    accompaniment_rule: AccompanimentRule
    separation_model: str
    vocal_activity: str = Field(description="float16 .npy of vocal levels (dBFS), one per frame")
    vocal_activity_frame_seconds: float = Field(gt=0)
    vocal_activity_threshold_db: float = Field(description="frames above this level count as active vocals")
    vocal_energy_db: float
    accomp_energy_db: float
    vocal_to_accomp_db: float
    vocal_active_ratio: float = Field(ge=0, le=1, description="share of frames above the threshold")


# --- align ------------------------------------------------------------------------------------------


class Word(StrictModel):
    """One sung word and its times (song time in an alignment, clip time in clips and samples)."""

    word: str = Field(description="the word as written in the lyrics")
    start: Seconds = Field(description="seconds (ms precision)")
    end: Seconds = Field(description="seconds (ms precision)")
    score: float = Field(description="alignment confidence, 0-1")


class AlignedLine(StrictModel):
    """One lyric line; ``start``/``end`` are None when the aligner could not place it."""

    index: int = Field(ge=0, description="position of the line in the lyrics")
    text: str
    start: Seconds | None
    end: Seconds | None
    score: float | None = Field(description="mean score of its words")
    words: tuple[Word, ...] = ()


class AlignmentSummary(StrictModel):
    """How well a song's lyrics aligned, as a whole."""

    language: str = Field(description="language whose alignment model was used")
    lyrics_format: LyricsFormat
    lines_total: int = Field(ge=0)
    lines_aligned: int = Field(ge=0)
    coverage: float = Field(ge=0, le=1, description="share of lyric lines aligned")
    mean_score: float = Field(description="mean score of the aligned lines")
    notes: tuple[str, ...] = Field(description="what the lyrics parser repaired or dropped, for humans")


class Alignment(AlignmentSummary):
    """The align stage's ``alignment.json``: the summary and every line, aligned or not."""

    lines: tuple[AlignedLine, ...]


class AlignedSong(SeparatedSong):
    """A song with word- and line-level timings of its lyrics."""

    alignment: str = Field(description="alignment.json (an :class:`Alignment`), relative to the output root")
    align: AlignmentSummary


# --- segment -> filter ------------------------------------------------------------------------------


class Clip(StrictModel):
    """A planned training clip: whole lyric lines, cut in silences."""

    clip_id: str = Field(pattern=r"^[^.]+$", description="<song_id>-NNNN (no dots: it is a WebDataset key)")
    start: Seconds = Field(ge=0, description="seconds in the song")
    end: Seconds = Field(description="seconds in the song")
    line_indices: tuple[int, ...]
    text: str = Field(description="the clip's lines joined by newlines")
    words: tuple[Word, ...] = Field(description="word times relative to the clip start")
    instrumental: bool

    @property
    def duration(self) -> float:
        return to_ms(self.end - self.start)


class ClipPlan(StrictModel):
    """The clips planned for one song, and every line or span left out (segment's ``clip_plan.json``)."""

    clips: tuple[Clip, ...]
    dropped: tuple[tuple[str, str], ...] = Field(description="(reason, human message) per line or span left out")


class KeptClips(StrictModel):
    """The planned clips that passed every filter rule (filter's ``kept_clips.json``)."""

    clips: tuple[Clip, ...]


class SegmentedSong(AlignedSong):
    """A song with its clip plan."""

    clip_plan: str = Field(description="clip_plan.json (a :class:`ClipPlan`), relative to the output root")
    clip_count: int = Field(ge=1, description="clips planned")
    clip_seconds: Seconds = Field(description="seconds in the planned clips")
    segment_dropped: dict[str, int] = Field(description="lines or spans the plan left out, by reason")


class FilteredSong(SegmentedSong):
    """A song with the clips that passed the quality rules.

    ``clip_count`` and ``clip_seconds`` count the kept clips here; the planned ones are in segment's record.
    """

    kept_clips: str = Field(description="kept_clips.json (a :class:`KeptClips`), relative to the output root")
    clip_count: int = Field(ge=1, description="clips kept")
    clip_seconds: Seconds = Field(description="seconds in the kept clips")
    filter_dropped: dict[str, int] = Field(description="clips dropped, by dropped_<reason>")


class TokenizedSong(FilteredSong):
    """A song whose kept clips have semantic tokens (tokenize's ``tokens.npz``: ``<clip_id>.<stream>`` arrays)."""

    tokens: str = Field(description="tokens.npz, relative to the output root")
    token_rate: float = Field(gt=0, description="tokens per second")
    token_codes: int = Field(ge=2, description="size of the tokenizer's codebook")
    tokenizer: str = Field(description="the tokenizer's folder name: its model artifact id")


# --- shard ------------------------------------------------------------------------------------------


class SampleEntry(StrictModel):
    """One sample of a song's fragment tar."""

    key: str = Field(description="the clip id")
    seconds: Seconds
    sha256: str = Field(description="sha256 of the sample's members, concatenated in order")
    bytes: int = Field(ge=0)


class ShardedSong(StageRecord):
    """A song's samples, written to a fragment tar that the shard stage packs into shards at the end."""

    song_id: str
    split: str
    fragment: str = Field(description="fragment tar, relative to the output root")
    samples: tuple[SampleEntry, ...]
    language: str | None
    tokenizer: str | None = Field(None, description="the tokenizer of the samples' token members, if any")
    token_codes: int | None = Field(None, ge=2)
    token_rate: float | None = Field(None, gt=0)
