"""The ``<key>.json`` member of every WebDataset sample of a dataset version.

docs/reading.md documents these fields in a table that tests/schemas/test_records.py checks against
this model both ways, so the docs and the shards cannot drift apart again.
"""

from __future__ import annotations

from pydantic import Field

from .base import StrictModel
from .song_records import Seconds, Word

#: Bump on any change to :class:`SampleJson` that a reader could notice.
SAMPLE_SCHEMA_VERSION = 1


class SampleJson(StrictModel):
    """Clip metadata, lyrics and word timings of one sample."""

    schema_version: int = Field(SAMPLE_SCHEMA_VERSION, description="version of this layout")
    clip_id: str = Field(description="the sample key: `<song_id>-NNNN`, no dots")
    song_id: str = Field(description="the song the clip was cut from")
    group: str = Field(description="split key: artist/work when given, else the song")
    language: str | None = Field(description="language from the manifest, if given")
    title: str | None = Field(description="song title from the manifest, if given")
    artist: str | None = Field(description="artist from the manifest, if given")
    split: str = Field(description="the split the sample belongs to (`train`, `valid`, ...)")
    start: Seconds = Field(description="clip start in the song, seconds (ms precision)")
    end: Seconds = Field(description="clip end in the song, seconds (ms precision)")
    duration: Seconds = Field(description="`end - start`, seconds (ms precision)")
    sample_rate: int = Field(description="sample rate of the audio members")
    lyrics: str = Field(description="the clip's lyric lines joined by `\\n` (empty for instrumental clips)")
    words: tuple[Word, ...] = Field(description="the sung words, times relative to the clip start (see below)")
    instrumental: bool = Field(description="the clip holds no lyric line")
    stem_scale: float = Field(description="`vocals` and `accomp` audio were multiplied by this to fit FLAC's "
                              "range (divide to undo)")
    lineage: dict[str, str] = Field(description="stage → fingerprint of the outputs the sample was made from")
