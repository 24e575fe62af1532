"""Typed configs of the song-level stages. Every number the recipe uses is a field here."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .base import Device, Resources, StageConfig

#: How the accompaniment stem is formed from Demucs' stems.
AccompanimentRule = Literal["sum_of_stems", "mixture_minus_vocals"]
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif")


class IngestConfig(StageConfig):
    """Validate manifest rows, probe audio, hash content, find duplicates."""

    resources: Resources = Resources(num_cpus=1.0, batch_size=8, max_workers=8)
    audio_extensions: tuple[str, ...] = Field(AUDIO_EXTENSIONS, description="files a directory scan picks up")
    require_lyrics: bool = Field(True, description="reject songs without lyrics")
    max_lyrics_bytes: int = Field(256 * 1024, gt=0, description="lyrics larger than this are rejected")
    max_file_bytes: int = Field(4 * 1024**3, gt=0, description="audio files larger than this are rejected")


class StandardizeConfig(StageConfig):
    """Decode, resample and measure audio; write FLAC for the separator."""

    resources: Resources = Resources(num_cpus=1.0, batch_size=2, max_workers=8)
    sample_rate: int = Field(44100, ge=8000, le=192000, description="output rate (Demucs expects 44100)")
    channels: int = Field(2, ge=1, le=2, description="output channels (Demucs expects stereo)")
    min_seconds: float = Field(5.0, ge=0, description="shorter audio is rejected")
    max_seconds: float = Field(900.0, gt=0, description="longer audio is rejected")
    silence_threshold_db: float = Field(-50.0, le=0, description="frames quieter than this (dBFS RMS) are silent")
    max_silence_ratio: float = Field(0.95, gt=0, le=1, description="audio more silent than this is rejected")
    clip_level: float = Field(0.999, gt=0, le=1, description="|sample| at or above this counts as clipped")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> StandardizeConfig:
        if self.min_seconds >= self.max_seconds:
            raise ValueError(f"min_seconds ({self.min_seconds}) must be below max_seconds ({self.max_seconds})")
        return self


class SeparateConfig(StageConfig):
    """Demucs source separation into vocals and accompaniment."""

    path_fields = ("repo",)
    execution_fields = ("batch_segments", "cpu_threads")

    resources: Resources = Resources(num_cpus=1.0, num_gpus=0.0, batch_size=4, max_workers=4)
    model: str = Field("htdemucs", description="Demucs model name (htdemucs, htdemucs_ft, mdx_extra, ...)")
    repo: str | None = Field(
        None, description="local Demucs model repository (folder of .th/.yaml); none = Hugging Face cache/hub"
    )
    segment: float | None = Field(None, gt=0, description="seconds per segment (default: the model's own)")
    overlap: float = Field(0.25, ge=0, lt=1, description="overlap between consecutive segments")
    shifts: int = Field(0, ge=0, le=20, description="random time shifts averaged (the 'shift trick')")
    batch_segments: int = Field(8, ge=1, description="segments, across songs, in one forward pass on a GPU")
    device: Device = Field("auto", description="auto = cuda when the worker has a GPU")
    precision: Literal["fp32", "fp16", "bf16"] = Field("fp32", description="autocast dtype on GPU")
    accompaniment: AccompanimentRule = Field(
        "mixture_minus_vocals", description="how the accompaniment stem is formed"
    )
    cpu_threads: int | None = Field(
        None, ge=1, description="forwards a CPU worker runs side by side, one thread each (default: the CPUs it got)")
    activity_frame_seconds: float = Field(0.02, gt=0, le=1, description="frame of the vocal-activity envelope")
    activity_threshold_db: float = Field(-40.0, le=0, description="vocal frames above this (dBFS) are active")
    seed: int = Field(0, description="seed of the shift trick's random offsets (outputs are deterministic)")


class AlignConfig(StageConfig):
    """WhisperX forced alignment of the known lyrics to the vocals stem."""

    path_fields = ("smoke_dir",)
    model_ref_fields = ("models",)

    resources: Resources = Resources(num_cpus=1.0, batch_size=2, max_workers=4)
    models: dict[str, str] = Field(
        default_factory=dict,
        description="language -> wav2vec2 CTC model (Hugging Face name or local folder); default: WhisperX' own",
    )
    smoke_dir: str | None = Field(
        None, description="folder for offline random test models: every language uses the tiny smoke model"
    )
    default_language: str = Field("en", description="language of songs whose manifest row names none")
    device: Device = "auto"
    chunk_seconds: float = Field(20.0, gt=1, le=120, description="audio per CTC pass when locating lines")
    line_pad_seconds: float = Field(0.3, ge=0, description="slack around LRC line windows")
    max_line_seconds: float = Field(30.0, gt=0, description="window of an LRC line with no following timestamp")


class SegmentConfig(StageConfig):
    """Clips of at most ``max_seconds`` that never split a lyric line, cut in silences between lines.

    The clip planner takes this config as it is; every rule it needs is checked here, when the job is read.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    resources: Resources = Resources(num_cpus=0.5, batch_size=8, max_workers=4)
    max_seconds: float = Field(30.0, gt=0, description="longest clip (SongCreator: 30 s)")
    min_seconds: float = Field(  # checked against max_seconds also when left at its default
        3.0, ge=0, validate_default=True, description="shorter clips are merged into a neighbour or dropped"
    )
    pad_seconds: float = Field(0.25, ge=0, description="context kept before the first and after the last line")
    min_gap_seconds: float = Field(0.0, ge=0, description="gaps between lines no longer than this are not cut")
    min_silence_seconds: float = Field(  # 0.1 s was too short: sung lines dip below -40 dBFS that long mid-word
        0.3, gt=0, description="a line's clip reaches on to the first vocal silence this long after its last word"
    )
    instrumental: Literal["keep", "drop", "cap"] = Field("drop", description="clips without lyrics")
    instrumental_cap_seconds: float = Field(30.0, ge=0, description="with instrumental = 'cap': seconds kept per song")

    @field_validator("min_seconds")
    @classmethod
    def _min_within_max(cls, value: float, info: ValidationInfo) -> float:
        longest = info.data.get("max_seconds")  # absent when max_seconds itself was invalid
        if longest is not None and value > longest:
            raise ValueError(f"min_seconds ({value:g}) must not exceed max_seconds ({longest:g})")
        return value


class FilterConfig(StageConfig):
    """Quality rules; every dropped clip and rejected song is counted by reason."""

    resources: Resources = Resources(num_cpus=0.5, batch_size=8, max_workers=4)
    min_coverage: float = Field(0.5, ge=0, le=1, description="songs with fewer lyric lines aligned are rejected")
    min_align_score: float = Field(0.0, ge=0, le=1, description="songs with a lower mean alignment score are rejected")
    min_vocal_to_accomp_db: float = Field(-40.0, description="songs with quieter vocals are rejected")
    min_clip_seconds: float = Field(3.0, ge=0, description="shorter clips are dropped")
    max_clip_seconds: float = Field(30.0, gt=0, description="longer clips are dropped")

    @model_validator(mode="after")
    def _clip_bounds_in_order(self) -> FilterConfig:
        if self.min_clip_seconds > self.max_clip_seconds:
            raise ValueError(f"min_clip_seconds ({self.min_clip_seconds:g}) must not exceed max_clip_seconds "
                             f"({self.max_clip_seconds:g}): every clip would be dropped")
        return self
    min_clip_score: float = Field(0.0, ge=0, le=1, description="lyric clips with a lower mean word score are dropped")
    min_clip_vocal_activity: float = Field(
        0.1, ge=0, le=1, description="lyric clips with a smaller share of active vocal frames are dropped"
    )


class TokenizeConfig(StageConfig):
    """Semantic tokens of every kept clip's mixture, vocals and accompaniment, from a tokenizer artifact."""

    model_ref_fields = ("tokenizer",)
    execution_fields = ("batch_clips", "cpu_threads")

    resources: Resources = Resources(num_cpus=1.0, num_gpus=0.0, batch_size=8, max_workers=4)
    tokenizer: str = Field(description="a tokenizer artifact's folder (ROOT/models/tokenizer/<id>), or 'latest': "
                           "the newest under the job's root")
    device: Device = Field("auto", description="auto = cuda when the worker has a GPU")
    precision: Literal["fp32", "fp16", "bf16"] = Field("fp32", description="autocast dtype on GPU")
    batch_clips: int = Field(16, ge=1, description="clips (of similar length) in one forward pass on a GPU")
    cpu_threads: int | None = Field(
        None, ge=1, description="forwards a CPU worker runs side by side, one thread each (default: the CPUs it got)")


class ShardConfig(StageConfig):
    """WebDataset shards of the kept clips, split by a stable hash of the group key, as a dataset version."""

    execution_fields = ("publish_empty",)

    resources: Resources = Resources(num_cpus=0.5, batch_size=4, max_workers=4)
    splits: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.98, "valid": 0.01, "test": 0.01},
        description="split name -> fraction of groups (artist/work, else song); fractions sum to 1",
    )
    target_shard_bytes: int = Field(1_000_000_000, gt=0, description="a shard is closed once it reaches this size")
    target_shard_samples: int = Field(10_000, gt=0, description="... or this many samples")
    audio_members: tuple[Literal["mix", "vocals", "accomp"], ...] = Field(
        ("mix", "vocals", "accomp"), description="FLAC audio members written per sample (may be empty)"
    )
    publish_empty: bool = Field(
        False, description="publish (and name as LATEST) a version with no clips; by default such a run fails "
        "and leaves LATEST as it was")

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> ShardConfig:
        total = sum(self.splits.values())
        if not self.splits or abs(total - 1.0) > 1e-6 or min(self.splits.values()) < 0:
            raise ValueError(f"splits must be non-negative fractions summing to 1 (got {self.splits}, sum {total:g})")
        bad = [name for name in self.splits if not name.isidentifier() or "-" in name]
        if bad:
            raise ValueError(f"split names must be plain identifiers: {bad}")
        return self
