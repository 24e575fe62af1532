"""SongCreator's dual-sequence language model (DSLM): lyrics encoder, vocals and accompaniment decoders joined by
bidirectional cross-attention, and a non-autoregressive song decoder. Pure torch."""

from songcorpus.models.dslm.config import SIZES, SPECIAL_TOKENS, DslmConfig, config_for
from songcorpus.models.dslm.masks import (
    BCA_MASKS,
    SA_MASKS,
    TASKS,
    StreamMasks,
    TaskMasks,
    batch_masks,
    bidirectional_cross_attention_masks,
    self_attention_mask,
)
from songcorpus.models.dslm.model import Dslm, DslmOutput, dslm_loss, parameter_count

__all__ = [
    "BCA_MASKS",
    "SA_MASKS",
    "SIZES",
    "SPECIAL_TOKENS",
    "TASKS",
    "Dslm",
    "DslmConfig",
    "DslmOutput",
    "StreamMasks",
    "TaskMasks",
    "batch_masks",
    "bidirectional_cross_attention_masks",
    "config_for",
    "dslm_loss",
    "parameter_count",
    "self_attention_mask",
]
