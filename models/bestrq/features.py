"""The log-mel front end and the global feature normaliser.

Frame-count rule: frame ``t`` is centred on sample ``t * hop_length`` (STFT with ``center=True``), and a clip of
``n`` samples has one frame per centre inside it: ``ceil(n / hop_length)`` frames. For ``s`` seconds at 24 kHz
and hop 480 that is ``ceil(50 s)``, within one frame of ``round(50 s)`` and exactly ``50 s`` for whole seconds.
(The STFT's extra frame centred on sample ``n`` itself, which only exists when ``hop`` divides ``n``, is dropped,
as MusicFM does.) The STFT pads the ends with zeros and samples past a clip's length are zeroed first, so a clip
gets the same frames alone and in a padded batch.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import Tensor, nn


def frame_count(samples: Tensor, hop_length: int) -> Tensor:
    """Frames of clips of ``samples`` samples each: ``ceil(samples / hop_length)``."""
    return torch.div(samples + hop_length - 1, hop_length, rounding_mode="floor")


def padding_mask(lengths: Tensor, frames: int) -> Tensor:
    """``(batch, frames)``, True where a frame lies past its clip's length."""
    return torch.arange(frames, device=lengths.device)[None, :] >= lengths[:, None]


class LogMel(nn.Module):
    """Mono waveforms ``(batch, samples)`` at ``sample_rate`` -> natural-log mel power ``(batch, frames, n_mels)``.

    Always computed in float32 (autocast is switched off here): the quantizer's targets must not depend on the
    precision the encoder trains in.
    """

    def __init__(self, sample_rate: int, n_mels: int, n_fft: int, hop_length: int, f_min: float,
                 f_max: float | None, log_floor: float) -> None:
        super().__init__()
        self.hop_length = hop_length
        self.log_floor = log_floor
        # built on the CPU even inside a `torch.device("meta")` context (parameter_count): torchaudio checks the
        # filterbank with .item(); `.to(device)` moves it with the model afterwards
        with torch.device("cpu"):
            self.mel = torchaudio.transforms.MelSpectrogram(
                sample_rate=sample_rate, n_fft=n_fft, win_length=n_fft, hop_length=hop_length, f_min=f_min,
                f_max=f_max, n_mels=n_mels, power=2.0, center=True, pad_mode="constant",
            )

    def forward(self, audio: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Features and frame lengths; ``lengths`` are the clips' sample counts (default: all of ``audio``)."""
        if audio.dim() != 2:
            raise ValueError(f"LogMel takes mono audio shaped (batch, samples), got {tuple(audio.shape)}")
        if lengths is None:
            lengths = torch.full((audio.shape[0],), audio.shape[1], dtype=torch.long, device=audio.device)
        frames = int(frame_count(torch.tensor(audio.shape[1]), self.hop_length))
        audio = audio.masked_fill(padding_mask(lengths, audio.shape[1]), 0.0)
        with torch.autocast(device_type=audio.device.type, enabled=False):
            power = self.mel(audio.float())[..., :frames]  # (batch, n_mels, frames)
        features = torch.log(power.clamp(min=self.log_floor)).transpose(1, 2)
        return features, frame_count(lengths, self.hop_length)


class FeatureNormalizer(nn.Module):
    """Per-mel-bin mean and standard deviation over every valid frame of the training data (global, not per
    utterance: an utterance's loudness is information the tokens should keep).

    The running sums are float64 buffers, saved with the model's state dict; a distributed trainer sums them
    across workers (all-reduce) before training starts. BEST-RQ (§3.1) normalises the quantizer's input the same
    way; MusicFM ships such statistics as a file.
    """

    count: Tensor
    total: Tensor
    total_squares: Tensor

    def __init__(self, n_mels: int, min_std: float = 1e-5) -> None:
        super().__init__()
        self.min_std = min_std
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("total", torch.zeros(n_mels, dtype=torch.float64))
        self.register_buffer("total_squares", torch.zeros(n_mels, dtype=torch.float64))

    @torch.no_grad()
    def update(self, features: Tensor, lengths: Tensor) -> None:
        """Add the valid frames of a batch ``(batch, frames, n_mels)`` to the statistics."""
        valid = features[~padding_mask(lengths, features.shape[1])].double()
        self.count += valid.shape[0]
        self.total += valid.sum(0)
        self.total_squares += valid.square().sum(0)

    @property
    def mean(self) -> Tensor:
        return self.total / self.count

    @property
    def std(self) -> Tensor:
        variance = self.total_squares / self.count - self.mean.square()
        return variance.clamp(min=0).sqrt().clamp(min=self.min_std)

    def forward(self, features: Tensor) -> Tensor:
        if self.count.item() == 0:
            raise ValueError("FeatureNormalizer has seen no frames: fit it with update(features, lengths) on "
                             "training batches, or load a checkpoint's state dict, before using the model")
        return ((features - self.mean) / self.std).to(features.dtype)
