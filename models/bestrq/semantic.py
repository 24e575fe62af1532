"""Semantic tokens: a k-means codebook on one intermediate encoder layer, and the tokenizer that applies it.

SongCreator takes its semantic tokens from a quantizer on a middle layer of BEST-RQ (layer 14 of 24, a learned VQ
of 16384 × 32); LeVo uses MusicFM's layer 7 with a VQ. The recipe here fits k-means centroids (K = 1024 small) on
the chosen layer's outputs; a frame's token is its nearest centroid in squared Euclidean distance, with the same
(no) normalisation when fitting and assigning.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from songcorpus.models.bestrq.config import BestRqConfig
from songcorpus.models.bestrq.model import BestRq


class SemanticQuantizer(nn.Module):
    """``num_codes`` centroids (buffers: fitted outside, saved with the tokenizer).

    Without ``projection_dim`` the centroids live in the layer's own space (k-means). With it, frames are first
    projected to ``projection_dim`` by a learned linear map and matched there: the paper's learned VQ (16384 codes
    of dimension 32).
    """

    def __init__(self, num_codes: int, dim: int, projection_dim: int | None = None) -> None:
        super().__init__()
        self.projection = nn.Linear(dim, projection_dim) if projection_dim else None
        self.centroids: Tensor
        self.register_buffer("centroids", torch.zeros(num_codes, projection_dim or dim))

    def set_centroids(self, centroids: Tensor) -> None:
        if centroids.shape != self.centroids.shape:
            raise ValueError(f"expected centroids shaped {tuple(self.centroids.shape)}, got {tuple(centroids.shape)}")
        self.centroids.copy_(centroids)

    def forward(self, hidden: Tensor) -> Tensor:
        """Token ids ``(batch, frames)`` of hidden states ``(batch, frames, dim)``: the nearest centroid."""
        centroids, hidden = self.centroids.float(), hidden.float()
        if self.projection is not None:
            hidden = self.projection.float()(hidden)
        # argmin |h - c|^2 = argmax (2 h.c - |c|^2); |h|^2 is the same for every centroid
        scores = 2 * hidden @ centroids.T - (centroids * centroids).sum(dim=1)
        return scores.argmax(dim=-1)


class Tokenizer(nn.Module):
    """24 kHz mono audio → semantic tokens at the front end's frame rate (50 Hz): BEST-RQ up to ``layer``, then
    the semantic quantizer. Always in ``eval()`` mode: tokens must not depend on batch statistics."""

    def __init__(self, config: BestRqConfig, layer: int, num_codes: int, projection_dim: int | None = None) -> None:
        super().__init__()
        if not 1 <= layer <= config.num_layers:
            raise ValueError(f"layer must be in [1, {config.num_layers}], got {layer}")
        self.layer = layer
        self.bestrq = BestRq(config)
        self.semantic = SemanticQuantizer(num_codes, config.d_model, projection_dim)
        self.eval()

    def train(self, mode: bool = True) -> Tokenizer:
        return super().train(False)  # a tokenizer never trains: the BEST-RQ trainer trains BestRq itself

    def hidden_states(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The chosen layer's outputs ``(batch, frames, d_model)`` and the frame lengths."""
        features, frames = self.bestrq.front_end(audio, lengths)
        return self.bestrq.hidden_states(features, frames, self.layer), frames

    @torch.no_grad()
    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Tokens ``(batch, frames)`` (frames past a clip's length are padding) and the frame lengths."""
        hidden, frames = self.hidden_states(audio, lengths)
        return self.semantic(hidden), frames
