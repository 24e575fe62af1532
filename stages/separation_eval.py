"""Separation quality against known truth: SDR of vocals and accompaniment per song.

SDR here is the plain signal-to-distortion ratio used by the MDX challenges,
``10 log10(sum(s^2) / sum((s - s_hat)^2))`` over the whole song, in dB. The synthetic corpus keeps
the exact stems it mixed, so on a machine with real Demucs weights this gives real numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..pipeline.ledger import Ledger
from ..pipeline.storage import Storage
from .audio_io import read_flac

EPS = 1e-9


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SDR in dB of ``estimate`` against ``reference`` (same shape); NaN when the reference is silent."""
    n = min(reference.shape[-1], estimate.shape[-1])
    ref, est = reference[..., :n].astype(np.float64), estimate[..., :n].astype(np.float64)
    signal = float(np.sum(ref**2))
    if signal < EPS:
        return math.nan
    return 10.0 * math.log10((signal + EPS) / (float(np.sum((ref - est) ** 2)) + EPS))


@dataclass(frozen=True)
class SongScore:
    song_id: str
    vocals_sdr: float
    accomp_sdr: float
    #: the mixture itself taken as the estimate of each stem: what a separator must beat
    vocals_baseline: float
    accomp_baseline: float


def score_song(
    song_id: str, vocals: np.ndarray, accomp: np.ndarray, est_vocals: np.ndarray, est_accomp: np.ndarray
) -> SongScore:
    mix = vocals.astype(np.float64) + accomp
    return SongScore(song_id, round(sdr(vocals, est_vocals), 3), round(sdr(accomp, est_accomp), 3),
                     round(sdr(vocals, mix), 3), round(sdr(accomp, mix), 3))


def _read(path: Path) -> np.ndarray:
    return read_flac(path.read_bytes())[0]


def evaluate_root(root: str, truth_dir: Path) -> dict:
    """Score the latest separation of every song of ``root`` that has truth stems in ``truth_dir``.

    Truth is found through the manifest column ``truth_path`` (the synthetic corpus writes it).
    """
    storage = Storage(root)
    latest, records = Ledger(storage).latest_records("separate")
    if latest is None:
        raise ValueError(f"{root} has no separate outcomes: run a job with [stages.separate] first")
    scores, skipped = [], []
    for record in records:
        truth_rel = (record.get("extra") or {}).get("truth_path")
        if not truth_rel or not (truth_dir / truth_rel).exists():
            skipped.append(record["song_id"])
            continue
        paths = json.loads((truth_dir / truth_rel).read_text())["paths"]
        scale = record.get("stem_scale", 1.0)
        est_vocals = read_flac(storage.read_bytes(record["vocals"]))[0] / scale
        est_accomp = read_flac(storage.read_bytes(record["accomp"]))[0] / scale
        scores.append(score_song(record["song_id"], _read(truth_dir / paths["vocals"]),
                                 _read(truth_dir / paths["accomp"]), est_vocals, est_accomp))
    return summarize(scores, skipped, run_id=latest)


def summarize(scores: list[SongScore], skipped: list[str], run_id: str = "") -> dict:
    def stat(how: str, field: str) -> float | None:
        finite = [v for s in scores if math.isfinite(v := getattr(s, field))]
        return round(float(getattr(np, how)(finite)), 3) if finite else None

    fields = ("vocals_sdr", "accomp_sdr", "vocals_baseline", "accomp_baseline")
    return {
        "run_id": run_id,
        "songs": len(scores),
        "skipped_without_truth": skipped,
        **{f"{how}_{field}": stat(how, field) for how in ("mean", "median") for field in fields},
        "per_song": [asdict(s) for s in scores],
    }
