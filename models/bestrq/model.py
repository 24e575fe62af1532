"""The BEST-RQ network: log-mel front end, global normaliser, frozen quantizer, conformer encoder, one linear head
per codebook.

The objective (BEST-RQ, Chiu et al. 2022): the quantizer labels the clean normalised frames; the encoder sees the
same frames with spans replaced by noise and predicts the labels of the masked frames. The labels enter only the
loss, never the encoder: an open BEST-RQ library (lucasnewman/best-rq-pytorch, issues #7 and #11) feeds them to
the encoder and learns nothing useful. ``tests/models/bestrq/test_label_leak.py`` guards this.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from songcorpus.models.bestrq.config import BestRqConfig
from songcorpus.models.bestrq.encoder import Encoder
from songcorpus.models.bestrq.features import FeatureNormalizer, LogMel
from songcorpus.models.bestrq.masking import apply_mask, sample_span_mask
from songcorpus.models.bestrq.quantizer import RandomProjectionQuantizer


@dataclass(frozen=True)
class BestRqLoss:
    """What one batch gives the trainer: the loss to step on and what to log beside it."""

    loss: Tensor  # cross-entropy over masked frames and codebooks
    accuracy: Tensor  # of the argmax on the same frames, detached
    masked_frames: Tensor  # how many frames the loss averaged over (0: the loss is 0 and has no gradient signal)


def masked_cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits`` ``(batch, frames, codebooks, codes)`` against ``targets``
    ``(batch, frames, codebooks)`` over the frames where ``mask`` ``(batch, frames)`` is True; 0 when none is."""
    picked_logits, picked_targets = logits[mask], targets[mask]  # (masked, codebooks, codes), (masked, codebooks)
    summed = F.cross_entropy(picked_logits.flatten(0, 1).float(), picked_targets.flatten(), reduction="sum")
    return summed / max(picked_targets.numel(), 1)


class BestRq(nn.Module):
    """Takes raw log-mel features ``(batch, frames, n_mels)`` from ``self.front_end`` and their frame lengths.

    The normaliser must be fitted (``self.normalizer.update`` over training batches) before the first step; the
    quantizer is fixed by ``config.quantizer_seed``. Dropout and the conformer's batch norm follow ``train()`` /
    ``eval()``; tokenizing uses ``eval()``.
    """

    def __init__(self, config: BestRqConfig) -> None:
        super().__init__()
        self.config = config
        self.front_end = LogMel(sample_rate=config.sample_rate, n_mels=config.n_mels, n_fft=config.n_fft,
                                hop_length=config.hop_length, f_min=config.f_min, f_max=config.f_max,
                                log_floor=config.log_floor)
        self.normalizer = FeatureNormalizer(config.n_mels)
        self.quantizer = RandomProjectionQuantizer(input_dim=config.n_mels, codebook_dim=config.codebook_dim,
                                                   codebook_size=config.codebook_size,
                                                   num_codebooks=config.num_codebooks, seed=config.quantizer_seed)
        self.input_projection = nn.Sequential(nn.Linear(config.n_mels, config.d_model), nn.Dropout(config.dropout))
        self.encoder = Encoder(d_model=config.d_model, num_layers=config.num_layers, num_heads=config.num_heads,
                               ffn_dim=config.ffn_dim, conv_kernel=config.conv_kernel, dropout=config.dropout)
        self.heads = nn.ModuleList(nn.Linear(config.d_model, config.codebook_size)
                                   for _ in range(config.num_codebooks))

    def forward(self, features: Tensor, lengths: Tensor, mask: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """Logits ``(batch, frames, codebooks, codes)``. Where ``mask`` is True the encoder sees noise drawn from
        ``generator`` instead of the normalised features."""
        encoder_input = self.normalizer(features)
        if mask is not None:
            encoder_input = apply_mask(encoder_input, mask, self.config.mask_noise_std, generator)
        hidden = self.encoder(self.input_projection(encoder_input), lengths)
        return torch.stack([head(hidden) for head in self.heads], dim=2)

    def targets(self, features: Tensor) -> Tensor:
        """The quantizer's labels ``(batch, frames, codebooks)`` of the clean, unmasked, normalised features."""
        return self.quantizer(self.normalizer(features))

    def loss(self, features: Tensor, lengths: Tensor, generator: torch.Generator | None = None) -> BestRqLoss:
        """One BEST-RQ step's loss: sample span masks, predict the labels of the masked frames.

        ``generator`` draws the masks and the noise (a CPU generator gives the same ones on any device); the
        trainer keeps it in its checkpoint for an exact resume.
        """
        config = self.config
        mask = sample_span_mask(features.shape[0], features.shape[1], lengths, config.mask_span,
                                config.mask_start_prob, generator)
        logits = self(features, lengths, mask, generator)
        targets = self.targets(features)
        with torch.no_grad():
            correct = (logits.argmax(dim=-1) == targets)[mask]
            accuracy = correct.float().sum() / max(correct.numel(), 1)
        return BestRqLoss(loss=masked_cross_entropy(logits, targets, mask), accuracy=accuracy,
                          masked_frames=mask.sum())

    def hidden_states(self, features: Tensor, lengths: Tensor, layer: int) -> Tensor:
        """The output ``(batch, frames, d_model)`` of conformer layer ``layer`` (1-based, as in "layer 14" of
        SongCreator; 0 is the input projection) for clean features: what the semantic quantizer is fitted on."""
        if not 0 <= layer <= self.config.num_layers:
            raise ValueError(f"layer must be in [0, {self.config.num_layers}], got {layer}")
        return self.encoder(self.input_projection(self.normalizer(features)), lengths, layers=layer)


def parameter_count(config: BestRqConfig) -> int:
    """Trainable parameters of ``BestRq(config)``, counted on the meta device (no memory for the weights)."""
    with torch.device("meta"):
        model = BestRq(config)
    return sum(parameter.numel() for parameter in model.parameters())
