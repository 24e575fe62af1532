"""Valid stage records for tests that start in the middle of the pipeline.

Each helper extends the record of the stage before, as the stages do, with plausible values that a
test overrides by keyword; what a test does not care about is still a complete, validated record.
"""

from __future__ import annotations

from typing import Any

from songcorpus.schemas.song_records import (
    AlignedLine,
    AlignedSong,
    Alignment,
    AlignmentSummary,
    IngestedSong,
    SeparatedSong,
    StandardizedSong,
)


def ingested(song_id: str = "s1", **fields: Any) -> IngestedSong:
    base = {
        "song_id": song_id, "row_index": 0, "source_path": f"/in/{song_id}.wav", "content_sha256": "0" * 64,
        "size_bytes": 1000, "codec": "pcm_s16le", "container": "wav", "source_sample_rate": 44100,
        "source_channels": 2, "source_duration": None, "lyrics": "la la", "lyrics_format": "text",
        "language": "en", "artist": None, "title": None, "group": song_id, "extra": {},
    }
    return IngestedSong(**{**base, **fields})


def standardized(song: IngestedSong, audio: str, duration: float, **fields: Any) -> StandardizedSong:
    base = {"sample_rate": 44100, "channels": 2, "loudness_lufs": -20.0, "peak_dbfs": -1.0, "clipping_ratio": 0.0,
            "silence_ratio": 0.1}
    return StandardizedSong.extending(song, audio=audio, duration=duration, **{**base, **fields})


def separated(song: StandardizedSong, vocals: str, vocal_activity: str, **fields: Any) -> SeparatedSong:
    base = {"accomp": "accomp.flac", "stem_scale": 1.0, "accompaniment_rule": "mixture_minus_vocals",
            "separation_model": "oracle", "vocal_activity_frame_seconds": 0.02, "vocal_activity_threshold_db": -40.0,
            "vocal_energy_db": -20.0, "accomp_energy_db": -20.0, "vocal_to_accomp_db": 0.0, "vocal_active_ratio": 0.5}
    return SeparatedSong.extending(song, vocals=vocals, vocal_activity=vocal_activity, **{**base, **fields})


def alignment(lines: tuple[AlignedLine, ...], **fields: Any) -> Alignment:
    """An alignment document whose summary agrees with its lines."""
    placed = [line for line in lines if line.start is not None]
    base = {"language": "en", "lyrics_format": "text", "lines_total": len(lines), "lines_aligned": len(placed),
            "coverage": len(placed) / len(lines) if lines else 0.0, "mean_score": 1.0, "notes": ()}
    return Alignment(lines=lines, **{**base, **fields})


def aligned(song: SeparatedSong, alignment_path: str, doc: Alignment, **fields: Any) -> AlignedSong:
    summary = AlignmentSummary(**doc.model_dump(exclude={"lines"}))
    return AlignedSong.extending(song, alignment=alignment_path, align=summary, **fields)
