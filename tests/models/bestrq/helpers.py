"""A tiny BEST-RQ and a batch of features for it, shared by the tests."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from songcorpus.models.bestrq import BestRq, config_for


def smooth_features(batch: int = 3, frames: int = 120, n_mels: int = 80, seed: int = 0) -> Tensor:
    """Log-mel-like features whose neighbouring frames are alike (a random walk in time)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, frames, n_mels, generator=generator) * 0.3).cumsum(dim=1)


def tiny_model(features: Tensor, lengths: Tensor, seed: int = 0, **overrides: Any) -> BestRq:
    """A tiny model (eval mode, weights from ``seed``) whose normaliser is fitted on ``features``."""
    torch.manual_seed(seed)
    model = BestRq(config_for("tiny", **overrides))
    model.normalizer.update(features, lengths)
    return model.eval()
