"""The mask table mirrors the paper's Table 2, and each mask lets a position see exactly what it should."""

from __future__ import annotations

import pytest
import torch

from songcorpus.models.dslm import TASKS, bidirectional_cross_attention_masks, self_attention_mask

#: REFERENCE.md "Mask strategy per task (paper Table 2)", transcribed independently of models/dslm/masks.py
PAPER_TABLE = {
    "lyrics-to-song": ("causal", "causal", "BR"),
    "lyrics-to-vocals": ("causal", "causal", "BR"),
    "accompaniment-to-song": ("causal", "non-causal", "A2V"),
    "vocals-to-song": ("non-causal", "causal", "V2A"),
    "music continuation": ("none", "causal", "None"),
    "song editing": ("causal", "causal", "BR"),
    "vocals editing": ("causal", "none", "None"),
    "vocals editing in song": ("causal", "non-causal", "A2V"),
}


@pytest.mark.parametrize("task", sorted(PAPER_TABLE))
def test_every_task_uses_the_papers_masks(task: str) -> None:
    masks = TASKS[task.replace("-", "_").replace(" ", "_")]
    assert (masks.vocals, masks.accompaniment, masks.bca) == tuple(m.replace("-", "") for m in PAPER_TABLE[task])


def test_self_attention_masks() -> None:
    causal, full, alone = (self_attention_mask(k, 5) for k in ("causal", "noncausal", "none"))
    assert all(bool(causal[t, s]) == (s <= t) for t in range(5) for s in range(5))
    assert bool(full.all()) and torch.equal(alone, torch.eye(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown self-attention mask"):
        self_attention_mask("sideways", 3)  # type: ignore[arg-type]


def test_bidirectional_cross_attention_masks() -> None:
    v_br, a_br = bidirectional_cross_attention_masks("BR", 6)
    assert all(bool(v_br[t, s]) == (s <= t) == bool(a_br[t, s]) for t in range(6) for s in range(6))
    v_a2v, a_a2v = bidirectional_cross_attention_masks("A2V", 6)
    assert bool(v_a2v.all()) and not bool(a_a2v.any())
    v_v2a, a_v2a = bidirectional_cross_attention_masks("V2A", 6)
    assert not bool(v_v2a.any()) and bool(a_v2a.all())
    assert not any(bool(m.any()) for m in bidirectional_cross_attention_masks("None", 6))
    with pytest.raises(ValueError, match="unknown bidirectional"):
        bidirectional_cross_attention_masks("A2B", 2)  # type: ignore[arg-type]
