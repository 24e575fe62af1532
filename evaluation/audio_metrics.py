"""Audio metrics of SongCreator's tables: FAD (with FAD∞) and MCD with DTW.

FAD is the Fréchet distance between Gaussians fitted to frame embeddings of two sets of clips, and is named after
its embedder (``FAD[<embedder>]``): numbers from different embedders are not comparable. FAD∞ (Chong & Forsyth,
2020) removes FAD's bias towards small sample counts: FAD is computed on random subsets of several sizes ``N``,
a line ``FAD = FAD∞ + slope / N`` is fitted, and its intercept is reported.

MCD here is the mel-cepstral distortion over coefficients ``c1 .. c13`` (``c0``, the frame energy, is left out) of
an orthonormal DCT-II of the natural-log 80-band mel power spectrum (25 ms windows, 10 ms hop), the two sequences
aligned by DTW (Euclidean cost on the coefficients), ``MCD = (10 / ln 10) · mean over the path of
sqrt(2 · Σ_d (c_d - ĉ_d)²)`` dB. It is the MFCC-style definition (no all-pass warping as in SPTK's ``mcep``), so
its absolute values sit near, not on, the paper's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as taf
from torch import Tensor

from ..models.bestrq import Tokenizer

MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)  # dB per unit of cepstral Euclidean distance


@dataclass(frozen=True)
class Embedder:
    """Frame embeddings ``(frames, dim)`` of a mono clip at ``sample_rate``; ``name`` goes into ``FAD[name]``."""

    name: str
    sample_rate: int
    embed: Callable[[Tensor], Tensor]

    def frames(self, clips: Sequence[tuple[Tensor, int]]) -> np.ndarray:
        """Every frame embedding of ``clips`` (mono audio, its rate), stacked ``(n, dim)`` as float64."""
        rows = [self.embed(taf.resample(audio.float(), rate, self.sample_rate)) for audio, rate in clips]
        return torch.cat(rows).double().numpy()


def tokenizer_embedder(tokenizer: Tokenizer, name: str) -> Embedder:
    """FAD's default embedder: the frozen layer ``tokenizer.layer`` of the project's own BEST-RQ encoder."""

    @torch.no_grad()
    def embed(audio: Tensor) -> Tensor:
        hidden, _ = tokenizer.hidden_states(audio[None], torch.tensor([audio.numel()]))
        return hidden[0]

    return Embedder(f"bestrq-{name}-L{tokenizer.layer}", tokenizer.bestrq.config.sample_rate, embed)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b``:
    ``|μa - μb|² + Tr(Σa + Σb - 2 (Σa^½ Σb Σa^½)^½)`` (the trace term through symmetric square roots, which is
    stable where Σa Σb is not symmetric)."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _sqrt_psd(cov_a)
    cross = np.trace(_sqrt_psd(root_a @ cov_b @ root_a))
    return float(max(0.0, ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross))


@dataclass(frozen=True)
class Fad:
    embedder: str
    fad: float
    fad_infinity: float
    reference_frames: int
    test_frames: int

    @property
    def label(self) -> str:
        return f"FAD[{self.embedder}]"


def fad(embedder: Embedder, reference: Sequence[tuple[Tensor, int]], test: Sequence[tuple[Tensor, int]],
        sizes: int = 8, seed: int = 0) -> Fad:
    """FAD of ``test`` clips against ``reference`` clips, and FAD∞ from ``sizes`` subset sizes of the test frames
    (from half of them to all)."""
    ref, tst = embedder.frames(reference), embedder.frames(test)
    rng = np.random.default_rng(seed)
    smallest = min(max(tst.shape[1] + 2, tst.shape[0] // 2), tst.shape[0])  # fewer frames than dimensions: no fit
    counts = np.unique(np.linspace(smallest, tst.shape[0], sizes).astype(int))
    values = [frechet_distance(ref, tst[rng.choice(tst.shape[0], n, replace=False)]) for n in counts]
    _, intercept = np.polyfit(1.0 / counts, values, 1) if len(counts) > 1 else (0.0, values[-1])
    return Fad(embedder.name, round(frechet_distance(ref, tst), 4), round(float(intercept), 4), ref.shape[0],
               tst.shape[0])


def mel_cepstrum(audio: Tensor, sample_rate: int, coefficients: int = 13, bands: int = 80) -> np.ndarray:
    """``(frames, coefficients)``: c1 .. c_n of a mono clip (see the module docstring)."""
    window, hop = round(0.025 * sample_rate), round(0.010 * sample_rate)
    spectrum = torch.stft(audio.float(), n_fft=window, hop_length=hop, window=torch.hann_window(window),
                          center=True, return_complex=True).abs() ** 2
    banks = taf.melscale_fbanks(window // 2 + 1, 0.0, sample_rate / 2, bands, sample_rate, norm="slaney",
                                mel_scale="slaney")
    log_mel = torch.log(spectrum.T @ banks + 1e-10)
    dct = taf.create_dct(coefficients + 1, bands, norm="ortho")
    return (log_mel @ dct)[:, 1:].double().numpy()


def dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """The cheapest monotone path from (0, 0) to the last cell of ``cost`` (steps right, down, diagonal)."""
    rows, cols = cost.shape
    total = np.full((rows + 1, cols + 1), np.inf)
    total[0, 0] = 0.0
    for diagonal in range(2, rows + cols + 1):  # a cell needs only the two diagonals before its own
        i = np.arange(max(1, diagonal - cols), min(rows, diagonal - 1) + 1)
        j = diagonal - i
        best = np.minimum(np.minimum(total[i - 1, j - 1], total[i - 1, j]), total[i, j - 1])
        total[i, j] = cost[i - 1, j - 1] + best
    path, r, c = [], rows, cols
    while (r, c) != (0, 0):
        path.append((r - 1, c - 1))
        moves = {(r - 1, c - 1): total[r - 1, c - 1], (r - 1, c): total[r - 1, c], (r, c - 1): total[r, c - 1]}
        r, c = min(moves, key=lambda k: moves[k])
    return path[::-1]


def mcd_from_cepstra(a: np.ndarray, b: np.ndarray) -> float:
    """MCD (dB) of two mel-cepstrum sequences ``(frames, d)``, DTW-aligned."""
    distance = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))
    return float(MCD_CONSTANT * np.mean([distance[i, j] for i, j in dtw_path(distance)]))


def mcd(reference: Tensor, test: Tensor, sample_rate: int) -> float:
    """MCD (dB) of a mono ``test`` clip against ``reference``, both at ``sample_rate``."""
    return mcd_from_cepstra(mel_cepstrum(reference, sample_rate), mel_cepstrum(test, sample_rate))
