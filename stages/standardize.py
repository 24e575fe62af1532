"""standardize: decode any format, resample for the separator, measure levels, write FLAC."""

from __future__ import annotations

import numpy as np

from ..pipeline.stage import Reject, Result, Stage
from ..pipeline.storage import artifact_path, resolve_filesystem
from ..schemas.song_records import IngestedSong, StandardizedSong
from ..schemas.stage_configs import StandardizeConfig
from .audio_io import decode_audio, encode_flac, held_seconds
from .audio_stats import measure

#: A decode shorter than this share of the duration the header declares means a cut-off or damaged
#: file (FFmpeg skips corrupt frames silently; FLAC's STREAMINFO and WAV's data chunk still tell).
TRUNCATION_TOLERANCE = 0.98


def check_declared_length(data: bytes, declared: float, max_seconds: float) -> None:
    """A header declares more than ``max_seconds``: reject as too long, or as truncated if the data falls short.

    The declared length is a claim (a WAV data chunk or FLAC STREAMINFO of a file that was cut off, a
    header written wrong), so measure what the file holds without decoding (the WAV bytes present, or
    the packets' durations up to just past the maximum): a genuinely long file is still rejected
    cheaply, and a WAV whose header claims 6.7 h over 1 s of samples is called what it is. When that
    cannot be measured, the decoder decides: it stops at the maximum, and the truncation check follows.
    """
    present = held_seconds(data, max_seconds)
    if present is None:
        return
    if present > max_seconds:
        raise Reject("too_long", f"the header declares {declared:.1f} s and the file holds more than "
                                 f"{max_seconds:g} s of audio, the maximum")
    if present < TRUNCATION_TOLERANCE * declared:
        raise Reject("truncated_audio", f"the header declares {declared:.1f} s ({declared / 3600:.2f} h) "
                                        f"but the file holds {present:.2f} s of audio")


class StandardizeStage(Stage[StandardizeConfig]):
    """One song in, one 44.1 kHz stereo FLAC out (by default), or a rejection with the reason."""

    name = "standardize"
    version = 1

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        cfg = self.config
        declared = record.get("source_duration")
        fs, inner = resolve_filesystem(record["source_path"])
        try:
            with fs.open_input_stream(inner) as src:
                data = src.read()
        except FileNotFoundError:
            raise Reject("source_vanished", f"the source file disappeared after ingest: {record['source_path']}",
                         retryable=True) from None
        if declared and declared > cfg.max_seconds:
            check_declared_length(data, declared, cfg.max_seconds)
        with self.timed("decode"):
            audio = decode_audio(data, cfg.sample_rate, cfg.channels, cfg.max_seconds)
        seconds = audio.shape[1] / cfg.sample_rate
        if audio.shape[1] == 0:
            raise Reject("empty_audio", "the file decodes to no samples")
        if not np.isfinite(audio).all():
            bad = int(np.size(audio) - np.count_nonzero(np.isfinite(audio)))
            raise Reject("non_finite_samples", f"{bad} samples are NaN or infinite")
        if declared and seconds < TRUNCATION_TOLERANCE * declared:
            raise Reject("truncated_audio", f"decoded {seconds:.2f} s of the {declared:.2f} s the header declares")
        if seconds < cfg.min_seconds:
            raise Reject("too_short", f"{seconds:.2f} s is shorter than the minimum {cfg.min_seconds:g} s")
        stats = measure(audio, cfg.sample_rate, cfg.silence_threshold_db, cfg.clip_level)
        if stats.silence_ratio >= 1.0:
            raise Reject("silent_audio", f"every frame is below {cfg.silence_threshold_db:g} dBFS")
        if stats.silence_ratio > cfg.max_silence_ratio:
            raise Reject(
                "mostly_silent",
                f"{stats.silence_ratio:.1%} of frames are silent (limit {cfg.max_silence_ratio:.0%})",
            )
        rel = artifact_path(self.name, fingerprint, "audio.flac")
        with self.timed("write"):
            self.context.storage.write_bytes(rel, encode_flac(audio, cfg.sample_rate))
        out = StandardizedSong.extending(
            IngestedSong.model_validate(record), audio=rel, sample_rate=cfg.sample_rate, channels=cfg.channels,
            duration=round(seconds, 6), **dict(stats),
        )
        return Result(out.model_dump(mode="json"), audio_seconds=seconds)
