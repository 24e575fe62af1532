"""Span masking as in BEST-RQ (§3.2, §4): every valid frame starts a span of ``span`` frames with probability
``start_prob``; spans may overlap and are clipped at the clip's end; the masked frames of the (normalised)
features are replaced by N(0, noise_std) noise before the encoder sees them.

A frame ``t`` of a long clip is masked unless none of the ``span`` frames up to it started a span, so the expected
masked fraction far from the start is ``1 - (1 - start_prob) ** span``; the first ``span - 1`` frames have fewer
possible starts and are masked less often.

Random numbers are drawn on the generator's device (the default generator on ``lengths``' or ``features``' device
when none is given) and moved to the data's device: a CPU generator gives the same masks on a CPU and a GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from songcorpus.models.bestrq.features import padding_mask


def sample_span_mask(batch: int, frames: int, lengths: Tensor, span: int, start_prob: float,
                     generator: torch.Generator | None = None) -> Tensor:
    """A ``(batch, frames)`` bool mask, True on masked frames; frames at or past ``lengths`` are never masked."""
    if span < 1 or not 0.0 <= start_prob <= 1.0:
        raise ValueError(f"span must be >= 1 and start_prob in [0, 1], got {span} and {start_prob}")
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must be shaped ({batch},), got {tuple(lengths.shape)}")
    device = generator.device if generator is not None else lengths.device
    draws = torch.rand(batch, frames, generator=generator, device=device).to(lengths.device)
    valid = ~padding_mask(lengths, frames)
    starts = (draws < start_prob) & valid
    # spans started in the window (t - span, t]: the running count of starts minus the count `span` frames back
    started = starts.long().cumsum(dim=1)
    started_before_window = F.pad(started, (span, 0))[:, :frames]
    return (started > started_before_window) & valid


def apply_mask(features: Tensor, mask: Tensor, noise_std: float, generator: torch.Generator | None = None) -> Tensor:
    """``features`` ``(batch, frames, dims)`` with the frames where ``mask`` is True replaced by N(0, noise_std)."""
    device = generator.device if generator is not None else features.device
    noise = torch.randn(features.shape, generator=generator, device=device).to(features) * noise_std
    return torch.where(mask[..., None], noise, features)
