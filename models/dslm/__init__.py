"""SongCreator's dual-sequence language model (DSLM): lyrics encoder, vocals and accompaniment decoders joined by
bidirectional cross-attention, and a non-autoregressive song decoder. Pure torch."""

from songcorpus.models.dslm.masks import (
    BCA_MASKS,
    SA_MASKS,
    TASKS,
    TaskMasks,
    bidirectional_cross_attention_masks,
    self_attention_mask,
)

__all__ = [
    "BCA_MASKS",
    "SA_MASKS",
    "TASKS",
    "TaskMasks",
    "bidirectional_cross_attention_masks",
    "self_attention_mask",
]
