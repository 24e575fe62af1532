"""The LDM's audio VAE: audio -> a diagonal Gaussian latent at the token rate -> audio, trained with a
multi-resolution STFT loss and a small KL weight (no adversarial loss here), in one of two styles:

- ``spectral`` (the default): the encoder reads log-magnitude STFT frames, one per latent frame (hop 480 at 24 kHz,
  window 4 hops); the decoder predicts each frame's magnitude and phase and inverts them (an iSTFT head, as in
  Vocos). Its latents follow the spectrum from the first steps, so the tokens explain most of their variance
  (65-75 % on the synthetic songs, against ~10 % for the waveform style after the same CPU minutes) and the LDM
  has something to learn from a tiny VAE.
- ``waveform``: the DAC / Stable Audio encoder and decoder, strided 1-D convolutions with dilated residual
  units. The paper's VAE runs at 44.1 kHz with strides 4, 4, 8, 8; this one at 24 kHz with strides 4, 4, 5, 6.
  It needs GPU-days before its latents carry the spectrum rather than phase detail.

Both have 480 samples per latent frame at 24 kHz, so the latent rate is 50 Hz, the semantic tokens' rate: the
LDM maps one token to one latent frame. Every number is a config field.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..saved_config import SavedConfig, sized


@dataclass(frozen=True)
class VaeConfig(SavedConfig):
    style: Literal["spectral", "waveform"] = "spectral"
    sample_rate: int = 24000
    channels: int = 32  # spectral: the width of every layer; waveform: after the first conv, doubled per stride
    strides: tuple[int, ...] = (4, 4, 5, 6)  # spectral: only their product, the hop, counts
    latent: int = 32
    kl_weight: float = 1e-4

    @property
    def hop(self) -> int:
        """Samples per latent frame."""
        return math.prod(self.strides)

    @property
    def latent_rate(self) -> float:
        return self.sample_rate / self.hop


SIZES = {"tiny": VaeConfig(channels=64), "small": VaeConfig(channels=256),
         "tiny-waveform": VaeConfig(style="waveform", channels=8),
         "small-waveform": VaeConfig(style="waveform", channels=32)}


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ELU(), nn.Conv1d(channels, channels, 7, dilation=dilation, padding=3 * dilation),
                                  nn.ELU(), nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _units(channels: int) -> list[nn.Module]:
    return [ResidualUnit(channels, d) for d in (1, 3, 9)]


def _waveform_codec(config: VaeConfig) -> tuple[nn.Module, nn.Module]:
    widths = [config.channels * 2**i for i in range(len(config.strides) + 1)]
    down: list[nn.Module] = [nn.Conv1d(1, widths[0], 7, padding=3)]
    for stride, (c_in, c_out) in zip(config.strides, itertools.pairwise(widths), strict=True):
        down += [*_units(c_in), nn.ELU(), nn.Conv1d(c_in, c_out, 2 * stride, stride=stride,
                                                     padding=math.ceil(stride / 2))]
    encoder = nn.Sequential(*down, nn.ELU(), nn.Conv1d(widths[-1], 2 * config.latent, 3, padding=1))
    up: list[nn.Module] = [nn.Conv1d(config.latent, widths[-1], 7, padding=3)]
    for stride, (c_in, c_out) in zip(reversed(config.strides), itertools.pairwise(widths[::-1]), strict=True):
        up += [nn.ELU(), nn.ConvTranspose1d(c_in, c_out, 2 * stride, stride=stride, padding=math.ceil(stride / 2),
                                            output_padding=stride % 2), *_units(c_out)]
    return encoder, nn.Sequential(*up, nn.ELU(), nn.Conv1d(widths[0], 1, 7, padding=3), nn.Tanh())


class _StftFrames(nn.Module):
    """One STFT frame per latent frame: hop = the VAE's hop, a Hann window of 4 hops."""

    window: Tensor

    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.hop, self.bins = config.hop, 2 * config.hop + 1
        self.register_buffer("window", torch.hann_window(4 * config.hop), persistent=False)


class SpectralEncoder(_StftFrames):
    """Audio ``(B, 1, frames × hop)`` -> ``(B, 2 × latent, frames)`` from log-magnitude STFT frames."""

    def __init__(self, config: VaeConfig) -> None:
        super().__init__(config)
        self.body = nn.Sequential(nn.Conv1d(self.bins, config.channels, 3, padding=1), *_units(config.channels),
                                  nn.ELU(), nn.Conv1d(config.channels, 2 * config.latent, 3, padding=1))

    def forward(self, audio: Tensor) -> Tensor:
        # in float32 whatever autocast runs the convolutions in: FFTs take no bfloat16
        spectrum = torch.stft(audio[:, 0].float(), 4 * self.hop, self.hop, window=self.window, pad_mode="constant",
                              return_complex=True)
        return self.body((spectrum.abs() + 1e-5).log())


class IstftDecoder(_StftFrames):
    """Latent ``(B, latent, frames)`` -> audio ``(B, 1, frames × hop)``: each frame's log-magnitude and phase,
    inverted by an inverse STFT (as Vocos does)."""

    def __init__(self, config: VaeConfig) -> None:
        super().__init__(config)
        self.body = nn.Sequential(nn.Conv1d(config.latent, config.channels, 3, padding=1), *_units(config.channels),
                                  nn.ELU(), nn.Conv1d(config.channels, 2 * self.bins, 1))

    def forward(self, latent: Tensor) -> Tensor:
        log_magnitude, phase = self.body(latent).float().chunk(2, dim=1)
        spectrum = torch.polar(log_magnitude.clamp(max=6.0).exp(), phase)
        return torch.istft(spectrum, 4 * self.hop, self.hop, window=self.window,
                           length=latent.shape[-1] * self.hop)[:, None]


class Vae(nn.Module):
    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder, self.decoder = (_waveform_codec(config) if config.style == "waveform"
                                      else (SpectralEncoder(config), IstftDecoder(config)))

    def encode(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance ``(B, latent, frames)`` of ``audio`` ``(B, samples)``; samples are padded to a
        whole number of frames."""
        frames = math.ceil(audio.shape[-1] / self.config.hop)
        padded = F.pad(audio, (0, frames * self.config.hop - audio.shape[-1]))
        mean, log_variance = self.encoder(padded[:, None]).chunk(2, dim=1)
        return mean[..., :frames], log_variance[..., :frames].clamp(-30.0, 20.0)

    def decode(self, latent: Tensor) -> Tensor:
        """Audio ``(B, frames × hop)`` of a latent ``(B, latent, frames)``."""
        return self.decoder(latent)[:, 0]

    def forward(self, audio: Tensor, generator: torch.Generator | None = None) -> VaeOutput:
        mean, log_variance = self.encode(audio)
        on = generator.device if generator is not None else mean.device
        noise = torch.randn(mean.shape, generator=generator, device=on).to(mean)
        latent = mean + (0.5 * log_variance).exp() * noise
        return VaeOutput(self.decode(latent)[:, : audio.shape[-1]], mean, log_variance)


@dataclass(frozen=True)
class VaeOutput:
    reconstruction: Tensor
    mean: Tensor
    log_variance: Tensor


def multi_resolution_stft_loss(estimate: Tensor, target: Tensor,
                               resolutions: tuple[tuple[int, int], ...] = ((256, 64), (1024, 256), (2048, 512))
                               ) -> Tensor:
    """Mean over resolutions (FFT size, hop) of spectral convergence + L1 of log magnitudes."""
    total = estimate.new_zeros(())
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, device=estimate.device)
        e, t = (torch.stft(x, n_fft, hop, window=window, return_complex=True).abs().clamp(min=1e-7)
                for x in (estimate, target))
        convergence = torch.linalg.norm(t - e) / torch.linalg.norm(t).clamp(min=1e-7)
        total = total + convergence + (t.log() - e.log()).abs().mean()
    return total / len(resolutions)


def vae_loss(output: VaeOutput, audio: Tensor, kl_weight: float) -> tuple[Tensor, dict[str, float]]:
    """Multi-resolution STFT loss + ``kl_weight`` × KL(q(z|x) || N(0, I)) per latent value."""
    spectral = multi_resolution_stft_loss(output.reconstruction, audio)
    kl = 0.5 * (output.mean**2 + output.log_variance.exp() - 1 - output.log_variance).mean()
    return spectral + kl_weight * kl, {"stft": float(spectral.detach()), "kl": float(kl.detach())}


def si_sdr(estimate: Tensor, target: Tensor) -> Tensor:
    """Scale-invariant SDR (dB) per row of ``(B, samples)``."""
    target = target - target.mean(dim=-1, keepdim=True)
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)
    scale = (estimate * target).sum(-1, keepdim=True) / target.pow(2).sum(-1, keepdim=True).clamp(min=1e-10)
    projection = scale * target
    return 10 * torch.log10(projection.pow(2).sum(-1).clamp(min=1e-10) / (estimate - projection).pow(2).sum(-1)
                            .clamp(min=1e-10))


def config_for(size: str, **overrides: Any) -> VaeConfig:
    return sized(SIZES, "VAE", size, **overrides)
