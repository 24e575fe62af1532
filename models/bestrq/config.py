"""Every number of the BEST-RQ tokenizer network, in one frozen dataclass, and the three named sizes.

Sources of the defaults: SongCreator (arXiv 2409.06029, Appendix A) for the front end, the 1024-code quantizer
and the ~0.6B ``paper`` size; BEST-RQ (Chiu et al. 2022, arXiv 2202.01855, §3-4) for the 16-d projection,
400 ms mask spans, the start probability and the N(0, 0.1) mask noise. Numbers are in frames of the front end
(``hop_length`` samples), which are also the token frames: the encoder neither stacks nor subsamples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..saved_config import SavedConfig, sized


@dataclass(frozen=True)
class BestRqConfig(SavedConfig):
    """One BEST-RQ network; the defaults are the ``small`` size.

    The front end's window is 4 hops (80 ms): each 20 ms frame already sees the span that BEST-RQ's stack of
    four 10 ms frames sees, so one mel frame is one token frame and the token rate is ``sample_rate / hop_length``
    = 50 Hz, the rate SongCreator's tokens have.
    """

    # front end: 24 kHz mono, 80-bin log-mel, hop 480 -> 50 Hz (SongCreator, App. A)
    sample_rate: int = 24000
    n_mels: int = 80
    hop_length: int = 480
    n_fft: int = 1920  # the window length too: 80 ms, 4 hops (see the class docstring)
    f_min: float = 0.0
    f_max: float | None = None  # None: sample_rate / 2
    log_floor: float = 1e-5  # mel power is clamped here before the log: digital silence is log(1e-5) = -11.5
    # conformer encoder (torchaudio.models.Conformer)
    d_model: int = 512
    num_layers: int = 12
    num_heads: int = 8
    ffn_dim: int = 2048
    conv_kernel: int = 31  # depthwise convolution kernel, as in the Conformer paper
    dropout: float = 0.1
    # random-projection quantizer (BEST-RQ §3.1; SongCreator: codebook 1024)
    codebook_dim: int = 16
    codebook_size: int = 1024
    num_codebooks: int = 1
    quantizer_seed: int = 0
    # span masking (BEST-RQ §4: 400 ms spans, start probability 0.01 per 10 ms frame, noise N(0, 0.1))
    mask_span: int = 20  # 400 ms at 50 Hz
    # 0.02 per 20 ms frame keeps BEST-RQ's one span start per second: 1 - 0.98**20 = 33 % of frames masked
    mask_start_prob: float = 0.02
    mask_noise_std: float = 0.1

    def __post_init__(self) -> None:
        positive = ("sample_rate", "n_mels", "hop_length", "n_fft", "d_model", "num_layers", "num_heads",
                    "ffn_dim", "conv_kernel", "codebook_dim", "codebook_size", "num_codebooks", "mask_span")
        problems = [f"{name} must be positive, got {getattr(self, name)}" for name in positive
                    if getattr(self, name) <= 0]
        if self.d_model % self.num_heads:
            problems.append(f"d_model ({self.d_model}) must be a multiple of num_heads ({self.num_heads})")
        if self.conv_kernel % 2 == 0:
            problems.append(f"conv_kernel must be odd (to keep the length), got {self.conv_kernel}")
        if self.n_fft < self.hop_length:
            problems.append(f"n_fft ({self.n_fft}) shorter than hop_length ({self.hop_length}) skips samples")
        if not 0.0 < self.mask_start_prob <= 1.0:
            problems.append(f"mask_start_prob must be in (0, 1], got {self.mask_start_prob}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.log_floor <= 0 or self.mask_noise_std < 0:
            problems.append(f"log_floor must be > 0 and mask_noise_std >= 0, got {self.log_floor}, "
                            f"{self.mask_noise_std}")
        if problems:
            raise ValueError("invalid BestRqConfig: " + "; ".join(problems))

    @property
    def frame_rate(self) -> float:
        """Frames (= tokens) per second: 50.0 for the defaults."""
        return self.sample_rate / self.hop_length



SIZES: Mapping[str, BestRqConfig] = {
    # tests and the offline demo: a few seconds of CPU to train
    "tiny": BestRqConfig(d_model=64, num_layers=2, num_heads=4, ffn_dim=256, conv_kernel=15, dropout=0.0),
    # MusicFM-like depth (12 layers) at half its width: what one GPU trains in a day
    "small": BestRqConfig(),
    # SongCreator's BEST-RQ, ~0.6B parameters: 24 conformer layers at d = 1024 (BEST-RQ's 0.6B conformer)
    "paper": BestRqConfig(d_model=1024, num_layers=24, num_heads=16, ffn_dim=4096),
}


def config_for(size: str, **overrides: Any) -> BestRqConfig:
    """The named size with some fields replaced, e.g. ``config_for("tiny", num_codebooks=16)``."""
    return sized(SIZES, "BEST-RQ", size, **overrides)
