"""BEST-RQ's random-projection quantizer (Chiu et al. 2022, §3.1), which turns clean features into target labels.

A frozen Xavier-initialised projection maps each frame to ``codebook_dim`` dims; the label is the nearest entry
(by cosine, i.e. after L2-normalising both) of a frozen standard-normal codebook. Nothing here is trained. Both
tensors come from a private CPU ``torch.Generator`` seeded with ``seed``, so a seed names the same labels on any
machine, and they are buffers, so a checkpoint carries them too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RandomProjectionQuantizer(nn.Module):
    """``(batch, frames, input_dim)`` normalised features -> labels ``(batch, frames, num_codebooks)``.

    With several codebooks (the recipe's "16 × 1024" option), each has its own projection and codebook, drawn one
    after the other from the same generator.
    """

    projection: Tensor
    codebook: Tensor

    def __init__(self, input_dim: int, codebook_dim: int, codebook_size: int, num_codebooks: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator(device="cpu").manual_seed(seed)
        # device="cpu" explicitly: the same draws even when built under a `torch.device(...)` context
        projection = torch.empty(num_codebooks, input_dim, codebook_dim, device="cpu")
        codebook = torch.empty(num_codebooks, codebook_size, codebook_dim, device="cpu")
        for index in range(num_codebooks):
            nn.init.xavier_normal_(projection[index], generator=generator)
            codebook[index].normal_(generator=generator)
        self.register_buffer("projection", projection)
        self.register_buffer("codebook", F.normalize(codebook, dim=-1))

    @torch.no_grad()
    def forward(self, features: Tensor) -> Tensor:
        # float32 with autocast off: labels must not change with the precision the encoder trains in
        with torch.autocast(device_type=features.device.type, enabled=False):
            projected = F.normalize(torch.einsum("btd,cde->btce", features.float(), self.projection), dim=-1)
            similarity = torch.einsum("btce,cke->btck", projected, self.codebook)
        return similarity.argmax(dim=-1)


@dataclass(frozen=True)
class CodebookUsage:
    """How a codebook is used over some frames: a collapsed target set shows as low perplexity, many dead codes."""

    frames: int
    used: int  # codes seen at least once
    dead: int  # codes never seen
    perplexity: float  # exp(entropy of the label histogram): 1 = one code, codebook_size = all codes equally

    def to_dict(self) -> dict[str, int | float]:
        return {"frames": self.frames, "used": self.used, "dead": self.dead, "perplexity": self.perplexity}


def codebook_usage(labels: Tensor, codebook_size: int) -> CodebookUsage:
    """Usage of one codebook by ``labels`` (any shape; pass ``labels[..., i]`` of valid frames for codebook i)."""
    labels = labels.flatten().long()
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < codebook_size:
        raise ValueError(f"labels must lie in [0, {codebook_size}), got [{int(labels.min())}, {int(labels.max())}]")
    counts = torch.bincount(labels, minlength=codebook_size).double()
    frames = int(counts.sum())
    if frames == 0:
        return CodebookUsage(frames=0, used=0, dead=codebook_size, perplexity=0.0)
    probabilities = counts[counts > 0] / frames
    entropy = float(-(probabilities * probabilities.log()).sum())
    used = int((counts > 0).sum())
    return CodebookUsage(frames=frames, used=used, dead=codebook_size - used, perplexity=math.exp(entropy))
