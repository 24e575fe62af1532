"""The attention masks of the DSLM, and the one table that says which masks each task uses (the paper's Table 2).

Masks here are boolean "may attend" matrices ``(queries, keys)``: True where a query position sees a key.

Self-attention (SA) of one decoder over its own stream:
  - ``causal``: position t sees positions <= t (the stream is generated left to right);
  - ``noncausal``: every position sees every position (the stream is given whole, e.g. accompaniment-to-song);
  - ``none``: the stream takes no part in the task (music continuation has no vocals stream, vocals editing no
    accompaniment); each position sees only itself so the attention stays defined, and the stream is neither
    predicted nor seen by the other decoder (its BCA is ``None`` in every such task).

Bidirectional cross-attention (BCA) between the two decoders, at the same layer and the same time axis:
  - ``BR``: each side sees the other only up to its own step: vocals position t sees accompaniment positions
    <= t and the reverse, the two streams are generated together in lockstep (lyrics-to-song);
  - ``A2V``: information flows from accompaniment to vocals only: vocals positions see every accompaniment
    position (the accompaniment is given whole), accompaniment positions see no vocals;
  - ``V2A``: the reverse;
  - ``None``: neither side sees the other.
The offset convention: position t holds the input token at t (the stream shifted right behind ``<bos>``) and
predicts the token at t + 1, so seeing the other stream's inputs at <= t never reveals a token being predicted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

SelfAttention = Literal["causal", "noncausal", "none"]
CrossAttention = Literal["BR", "A2V", "V2A", "None"]
SA_MASKS: tuple[SelfAttention, ...] = ("causal", "noncausal", "none")
BCA_MASKS: tuple[CrossAttention, ...] = ("BR", "A2V", "V2A", "None")


@dataclass(frozen=True)
class TaskMasks:
    """The masks one task trains and samples with."""

    vocals: SelfAttention
    accompaniment: SelfAttention
    bca: CrossAttention


#: SongCreator, Table 2: (SA vocals, SA accompaniment, BCA) per task. The one place a task picks its masks.
TASKS: dict[str, TaskMasks] = {
    "lyrics_to_song": TaskMasks("causal", "causal", "BR"),
    "lyrics_to_vocals": TaskMasks("causal", "causal", "BR"),
    "accompaniment_to_song": TaskMasks("causal", "noncausal", "A2V"),
    "vocals_to_song": TaskMasks("noncausal", "causal", "V2A"),
    "music_continuation": TaskMasks("none", "causal", "None"),
    "song_editing": TaskMasks("causal", "causal", "BR"),
    "vocals_editing": TaskMasks("causal", "none", "None"),
    "vocals_editing_in_song": TaskMasks("causal", "noncausal", "A2V"),
}


def self_attention_mask(kind: SelfAttention, length: int, device: torch.device | None = None) -> Tensor:
    """``(length, length)`` may-attend matrix of a stream over itself."""
    if kind == "causal":
        return torch.ones(length, length, dtype=torch.bool, device=device).tril()
    if kind == "noncausal":
        return torch.ones(length, length, dtype=torch.bool, device=device)
    if kind == "none":
        return torch.eye(length, dtype=torch.bool, device=device)
    raise ValueError(f"unknown self-attention mask {kind!r}; choose one of {SA_MASKS}")


def bidirectional_cross_attention_masks(kind: CrossAttention, length: int,
                                        device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """``(vocals_see_accompaniment, accompaniment_sees_vocals)``, each ``(length, length)``, both streams on one
    time axis of ``length`` steps."""
    all_steps = torch.ones(length, length, dtype=torch.bool, device=device)
    up_to_own_step, nothing = all_steps.tril(), torch.zeros_like(all_steps)
    masks = {"BR": (up_to_own_step, up_to_own_step), "A2V": (all_steps, nothing), "V2A": (nothing, all_steps),
             "None": (nothing, nothing)}
    if kind not in masks:
        raise ValueError(f"unknown bidirectional cross-attention mask {kind!r}; choose one of {BCA_MASKS}")
    return masks[kind]


@dataclass(frozen=True)
class StreamMasks:
    """The four may-attend tensors of one batch, each ``(B, T, T)``: one task's masks per example, with padded
    key positions hidden from every query."""

    vocals: Tensor
    accompaniment: Tensor
    vocals_see_accompaniment: Tensor
    accompaniment_sees_vocals: Tensor


def batch_masks(tasks: TaskMasks | Sequence[TaskMasks], steps: int, padding: Tensor | None = None,
                device: torch.device | None = None) -> StreamMasks:
    """The masks of a batch whose examples may train different tasks (``tasks``: one, or one per example);
    ``padding`` ``(B, T)`` is True at the padded steps after an example's end."""
    per_example = [tasks] if isinstance(tasks, TaskMasks) else list(tasks)
    built = [(self_attention_mask(t.vocals, steps, device), self_attention_mask(t.accompaniment, steps, device),
              *bidirectional_cross_attention_masks(t.bca, steps, device)) for t in per_example]
    stacked = [torch.stack(column) for column in zip(*built, strict=True)]
    if padding is not None:
        keys = ~padding.to(device)[:, None, :]
        stacked = [m & keys for m in stacked]
    return StreamMasks(*stacked)
