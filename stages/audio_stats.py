"""Level measurements of a decoded song: loudness, peak, clipping and silence."""

from __future__ import annotations

import warnings

import numpy as np
import pyloudnorm

from ..schemas.song_records import AudioLevels

FRAME_SECONDS = 0.02


def frame_rms_db(audio: np.ndarray, sample_rate: int, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """RMS level in dBFS of consecutive frames of the channel mean (``audio`` is ``(channels, n)``)."""
    mono = audio.mean(axis=0)
    hop = max(1, round(frame_seconds * sample_rate))
    frames = len(mono) // hop
    if frames == 0:
        return np.zeros(0)
    power = np.mean(mono[: frames * hop].reshape(frames, hop) ** 2, axis=1)
    return 10.0 * np.log10(np.maximum(power, 1e-20))


def measure(audio: np.ndarray, sample_rate: int, silence_threshold_db: float, clip_level: float) -> AudioLevels:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    levels = frame_rms_db(audio, sample_rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyloudnorm warns on clipped or near-silent input
        lufs = float(pyloudnorm.Meter(sample_rate).integrated_loudness(audio.T.astype(np.float64)))
    return AudioLevels(
        loudness_lufs=round(lufs, 3) if np.isfinite(lufs) else None,
        peak_dbfs=round(20.0 * np.log10(max(peak, 1e-10)), 3),
        clipping_ratio=round(float(np.mean(np.abs(audio) >= clip_level)) if audio.size else 0.0, 6),
        silence_ratio=round(float(np.mean(levels < silence_threshold_db)) if levels.size else 1.0, 6),
    )
