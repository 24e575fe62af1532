"""Semantic tokens -> audio: the latent diffusion model samples VAE latents, the VAE's decoder turns them into a
waveform. Sequences of any lengths go in one batch, padded, and come out cut to their own lengths."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .diffusion import Ldm
from .vae import Vae


class TokenDecoder:
    def __init__(self, vae: Vae, ldm: Ldm) -> None:
        if vae.config.latent != ldm.config.latent:
            raise ValueError(f"the LDM makes {ldm.config.latent}-d latents, the VAE reads {vae.config.latent}-d")
        if not math.isclose(vae.config.latent_rate, ldm.config.latent_rate):
            raise ValueError(f"the LDM was trained on {ldm.config.latent_rate} Hz latents, the VAE makes "
                             f"{vae.config.latent_rate} Hz")
        self.vae, self.ldm = vae.eval(), ldm.eval()

    @property
    def sample_rate(self) -> int:
        return self.vae.config.sample_rate

    def frames(self, tokens: int) -> int:
        """Latent frames for ``tokens`` semantic tokens."""
        return math.ceil(tokens * self.ldm.config.latent_rate / self.ldm.config.token_rate)

    @torch.no_grad()
    def latents(self, sequences: Sequence[np.ndarray | Tensor], steps: int = 20, guidance: float = 2.0,
                seed: int = 0, batch_size: int = 8) -> list[Tensor]:
        """The sampled VAE latents ``(frames, latent)`` of each token sequence.

        Each sequence's noise comes from ``seed`` and its position in ``sequences``, and padded frames are
        masked out of attention, so a sequence gets the same latents whatever else shares its batch."""
        device = next(self.ldm.parameters()).device
        out: list[Tensor] = []
        for start in range(0, len(sequences), batch_size):
            chunk = [torch.as_tensor(np.asarray(s, dtype=np.int64)) for s in sequences[start : start + batch_size]]
            lengths = [self.frames(len(s)) for s in chunk]
            longest_tokens, longest = max(len(s) for s in chunk), max(lengths)
            tokens = torch.full((len(chunk), longest_tokens), self.ldm.no_condition, dtype=torch.long)
            padding = torch.ones(len(chunk), longest, dtype=torch.bool)
            noise = torch.zeros(len(chunk), longest, self.ldm.config.latent)
            for row, (sequence, frames) in enumerate(zip(chunk, lengths, strict=True)):
                tokens[row, : len(sequence)] = sequence
                padding[row, :frames] = False
                generator = torch.Generator().manual_seed(seed * 1_000_003 + start + row)
                noise[row, :frames] = torch.randn(frames, self.ldm.config.latent, generator=generator)
            sampled = self.ldm.sample(tokens.to(device), noise.to(device), steps, guidance, padding.to(device))
            out += [sampled[row, :frames] for row, frames in enumerate(lengths)]
        return out

    @torch.no_grad()
    def decode(self, sequences: Sequence[np.ndarray | Tensor], steps: int = 20, guidance: float = 2.0,
               seed: int = 0, batch_size: int = 8) -> list[Tensor]:
        """One mono waveform at :attr:`sample_rate` per token sequence (``len × hop`` samples at equal rates),
        from :meth:`latents`. The VAE decodes one sequence at a time: its convolutions would otherwise reach
        into a longer neighbour's padding."""
        return [self.vae.decode(latent.T[None])[0].float().cpu()
                for latent in self.latents(sequences, steps, guidance, seed, batch_size)]
