"""The latent diffusion model: semantic tokens -> VAE latents, by rectified flow.

- **Objective: rectified flow** (as LeVo's decoder; Stable Audio uses v-prediction). A clean latent ``x0`` and
  Gaussian noise ``n`` are joined on a straight line, ``x_t = (1 - t) x0 + t n`` with ``t ~ U(0, 1)``; the
  network predicts the velocity ``n - x0``, mean-squared error on the frames that are not padding.
- **Network**: a 1-D diffusion transformer over latent frames. Each frame's input is its noisy latent
  concatenated on channels with the embedding of its semantic token (tokens resampled to the latent rate;
  with the VAE's 50 Hz and the tokenizer's 50 Hz that is one token per frame), plus a sinusoidal position.
  The time ``t`` enters every block through adaptive layer norm (scale, shift and a zero-initialised gate, as in
  DiT), so the untrained network is the identity on its input stream.
- **Classifier-free guidance**: in training a whole clip's tokens are replaced by the "no condition" token
  (index ``codes``) with probability ``condition_dropout`` (10 %); sampling mixes the two predictions,
  ``v = v_uncond + guidance (v_cond - v_uncond)``.
- **Sampler**: Euler steps from ``t = 1`` (noise) to ``t = 0`` (``steps``, 20 by default as in LeVo).

Latents are standardised per channel with the train split's mean and deviation, which the trainer measures
and the model keeps as buffers, so the noise and the data have the same scale.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..saved_config import SavedConfig, sized


@dataclass(frozen=True)
class LdmConfig(SavedConfig):
    codes: int = 1024  # semantic token vocabulary; index ``codes`` means "no condition"
    latent: int = 32  # VAE latent channels
    token_rate: float = 50.0
    latent_rate: float = 50.0
    dim: int = 256
    layers: int = 6
    heads: int = 4
    condition_dim: int = 128  # token embedding width, concatenated to the noisy latent
    condition_dropout: float = 0.1


SIZES = {"tiny": LdmConfig(dim=64, layers=2, heads=2, condition_dim=32),
         "small": LdmConfig(dim=512, layers=8, heads=8, condition_dim=256)}


def config_for(size: str, **overrides: Any) -> LdmConfig:
    return sized(SIZES, "LDM", size, **overrides)


def sinusoid(values: Tensor, dim: int) -> Tensor:
    """Sinusoidal features ``(*values.shape, dim)`` of real ``values`` (positions, or times scaled by 1000)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=values.device) / half)
    angles = values[..., None].float() * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Block(nn.Module):
    """Self-attention and feed-forward, each behind a layer norm modulated by the time and a gate."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.modulation = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: Tensor, time: Tensor, keep: Tensor) -> Tensor:
        """``x`` (B, T, dim); ``time`` (B, dim); ``keep`` (B, 1, 1, T): the keys a frame may attend to."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(time)[:, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        b, t, d = h.shape
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(b, t, d)
        x = x + gate1 * self.out(attended)
        return x + gate2 * self.ffn(self.norm2(x) * (1 + scale2) + shift2)


@dataclass(frozen=True)
class FlowInputs:
    noisy: Tensor
    t: Tensor
    tokens: Tensor
    velocity: Tensor  # the target


def flow_loss(predicted: Tensor, target: Tensor, padding: Tensor) -> Tensor:
    """Mean squared velocity error over the frames that are not padding."""
    keep = (~padding).float()
    return ((predicted - target).pow(2).mean(dim=-1) * keep).sum() / keep.sum().clamp(min=1)


class Ldm(nn.Module):
    latent_mean: Tensor
    latent_std: Tensor

    def __init__(self, config: LdmConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.codes + 1, config.condition_dim)
        self.embed_input = nn.Linear(config.latent + config.condition_dim, config.dim)
        self.embed_time = nn.Sequential(nn.Linear(config.dim, config.dim), nn.SiLU(), nn.Linear(config.dim, config.dim))
        self.blocks = nn.ModuleList(Block(config.dim, config.heads) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.dim, elementwise_affine=False)
        self.velocity = nn.Linear(config.dim, config.latent)
        self.register_buffer("latent_mean", torch.zeros(config.latent))
        self.register_buffer("latent_std", torch.ones(config.latent))

    @property
    def no_condition(self) -> int:
        return self.config.codes

    def standardize(self, latents: Tensor) -> Tensor:
        """VAE latents ``(B, frames, latent)`` -> the unit scale the flow runs in."""
        return (latents - self.latent_mean) / self.latent_std

    def condition(self, tokens: Tensor, frames: int) -> Tensor:
        """Token embeddings ``(B, frames, condition_dim)`` at the latent rate (nearest token per frame)."""
        embedded = self.embed_tokens(tokens)
        if tokens.shape[1] == frames:
            return embedded
        return F.interpolate(embedded.transpose(1, 2), size=frames, mode="nearest").transpose(1, 2)

    def forward(self, noisy: Tensor, t: Tensor, tokens: Tensor, padding: Tensor | None = None) -> Tensor:
        """Velocity ``(B, frames, latent)`` at ``noisy`` (standardised latents at time ``t`` (B,)), conditioned
        on ``tokens`` (B, token frames); ``padding`` (B, frames) is True on frames that are not there."""
        b, frames, _ = noisy.shape
        positions = sinusoid(torch.arange(frames, device=noisy.device), self.config.dim)
        x = self.embed_input(torch.cat([noisy, self.condition(tokens, frames)], dim=-1)) + positions
        time = self.embed_time(sinusoid(t * 1000, self.config.dim))
        keep = (torch.ones(b, frames, dtype=torch.bool, device=noisy.device) if padding is None
                else ~padding)[:, None, None, :]
        for block in self.blocks:
            x = block(x, time, keep)
        return self.velocity(self.norm(x))

    def training_inputs(self, latents: Tensor, tokens: Tensor, generator: torch.Generator,
                        dropout: float | None = None) -> FlowInputs:
        """A point on each crop's line from its standardised VAE ``latents`` (B, frames, latent) to noise, at a
        uniform time, with a ``dropout`` share (default: the config's 10 %) of the crops' ``tokens`` dropped; the
        velocity to learn is ``noise - x0``. The draws do not depend on ``dropout``."""
        x0 = self.standardize(latents)
        b, on = x0.shape[0], generator.device
        t = torch.rand(b, generator=generator, device=on).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=on).to(x0.device)
        share = self.config.condition_dropout if dropout is None else dropout
        dropped = (torch.rand(b, generator=generator, device=on) < share).to(x0.device)
        tokens = torch.where(dropped[:, None], torch.full_like(tokens, self.no_condition), tokens)
        return FlowInputs((1 - t[:, None, None]) * x0 + t[:, None, None] * noise, t, tokens, noise - x0)

    @torch.no_grad()
    def sample(self, tokens: Tensor, noise: Tensor, steps: int = 20, guidance: float = 2.0,
               padding: Tensor | None = None) -> Tensor:
        """VAE latents ``(B, frames, latent)`` for ``tokens`` by ``steps`` Euler steps from ``noise`` (standard
        normal, ``(B, frames, latent)``); ``guidance`` 1 is the conditional model alone, 0 the unconditional."""
        b, x = tokens.shape[0], noise
        unconditional = torch.full_like(tokens, self.no_condition)
        times = torch.linspace(1.0, 0.0, steps + 1, device=noise.device)
        for now, after in itertools.pairwise(times):
            t = now.expand(b)
            velocity = self(x, t, tokens if guidance != 0 else unconditional, padding)
            if guidance not in (0.0, 1.0):
                free = self(x, t, unconditional, padding)
                velocity = free + guidance * (velocity - free)
            x = x + (after - now) * velocity
        return x * self.latent_std + self.latent_mean
