"""What the DSLM trains and is evaluated on: examples (a clip's lyric tokens and token streams), the recipes of
the paper's multi-task mix, and padded batches with per-example masks and targets.

Layout of one example on the shared time axis (``P`` prompt steps, ``L`` tokens of the clip)::

    input   [prompt (P) ..., <bos>, x_0, ..., x_{L-2}]      length P + L
    target  [-100 (P) ...,   x_0,   x_1, ..., x_{L-1}]      position P + j predicts x_j

which is what ``models.dslm.sampling.generate`` feeds. Per recipe of the mix (SongCreator §3.3):

- a generated stream (causal self-attention) is predicted at every step of the clip;
- a given stream (non-causal: accompaniment-to-song gives the accompaniment, vocals-to-song the vocals) has 20 %
  of its tokens replaced by ``<mask>`` and is predicted only there (elsewhere a non-causal position already sees
  the token it would predict);
- a stream that takes no part (``none``) is all ``<pad>``, predicts nothing and nothing predicts the song;
- editing puts a span from the end of the clip before it as the prompt, closed by ``<EDIT>``;
- 20 % of the lyric characters are replaced by ``<mask>``.
The song stream is predicted at every step from both decoders when both streams take part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from songcorpus.models.dslm.config import DslmConfig
from songcorpus.models.dslm.lyrics import MASK, PAD
from songcorpus.models.dslm.masks import TASKS, TaskMasks

IGNORE = -100  # cross-entropy's ignore_index: nothing predicted here
PAD_TOKEN = -1  # a stream's padding before make_batch knows the config's <pad> id
STREAMS = ("vocals", "accompaniment", "song")


@dataclass(frozen=True)
class Example:
    """One clip: its lyric tokens and its three token streams (equal lengths)."""

    clip_id: str
    lyrics: tuple[int, ...]
    vocals: np.ndarray
    accompaniment: np.ndarray
    song: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.song)


@dataclass(frozen=True)
class Recipe:
    """One entry of the training mix: the masks, which stream is given whole, and whether it is editing."""

    masks: TaskMasks
    given: str | None = None
    edit: bool = False


#: what each recipe of the training mix feeds the model (the job's weights: ``schemas.train_configs.DEFAULT_MIX``)
RECIPES: dict[str, Recipe] = {
    "lyrics_to_song": Recipe(TASKS["lyrics_to_song"]),
    "lyrics_to_song_independent": Recipe(TaskMasks("causal", "causal", "None")),
    "accompaniment_to_song": Recipe(TASKS["accompaniment_to_song"], given="accompaniment"),
    "vocals_to_song": Recipe(TASKS["vocals_to_song"], given="vocals"),
    "song_editing": Recipe(TASKS["song_editing"], edit=True),
    "vocals_editing": Recipe(TASKS["vocals_editing"], edit=True),
    "vocals_editing_in_song": Recipe(TASKS["vocals_editing_in_song"], given="accompaniment", edit=True),
    "music_continuation": Recipe(TASKS["music_continuation"]),
}


@dataclass(frozen=True)
class Masking:
    """The mix's random choices (SongCreator: 20 % of a given track, 20 % of the lyrics)."""

    given: float = 0.2
    lyrics: float = 0.2
    edit_span: tuple[float, float] = (0.1, 0.3)  # fraction of the clip used as the editing prompt


@dataclass
class Batch:
    """Padded model inputs and targets of a batch (``padding`` True past an example's end)."""

    lyrics: Tensor
    lyrics_padding: Tensor
    vocals: Tensor
    accompaniment: Tensor
    padding: Tensor
    masks: list[TaskMasks]
    targets: dict[str, Tensor]  # vocals, accompaniment, song: IGNORE where nothing is predicted

    def to(self, device: torch.device) -> Batch:
        return Batch(self.lyrics.to(device), self.lyrics_padding.to(device), self.vocals.to(device),
                     self.accompaniment.to(device), self.padding.to(device), self.masks,
                     {k: v.to(device) for k, v in self.targets.items()})

    def rows(self, index: Sequence[int]) -> Batch:
        """The examples at ``index`` (keeping the batch's padded width)."""
        pick = torch.tensor(list(index), dtype=torch.long)
        return Batch(self.lyrics[pick], self.lyrics_padding[pick], self.vocals[pick], self.accompaniment[pick],
                     self.padding[pick], [self.masks[i] for i in index], {k: v[pick] for k, v in self.targets.items()})

    def counts(self) -> dict[str, int]:
        """Predicted tokens per stream."""
        return {name: int((target != IGNORE).sum()) for name, target in self.targets.items()}


def _stream(tokens: np.ndarray, prompt: list[int], bos: int, mask_id: int, role: str, hide: float,
            generator: torch.Generator) -> tuple[list[int], list[int]]:
    """Input and target ids of one decoder stream; ``role`` is generated, given or none."""
    steps = len(tokens)
    values = tokens.tolist()
    if role == "none":
        return [PAD_TOKEN] * (len(prompt) + steps), [IGNORE] * (len(prompt) + steps)
    inputs = [*prompt, bos, *values[:-1]]
    targets = [IGNORE] * len(prompt) + values
    if role == "given":
        hidden = (torch.rand(steps - 1, generator=generator) < hide).tolist()
        for j, masked in enumerate(hidden):  # x_j sits at input position P + 1 + j, and is predicted at P + j
            if masked:
                inputs[len(prompt) + 1 + j] = mask_id
            else:
                targets[len(prompt) + j] = IGNORE
    return inputs, targets


def make_batch(examples: Sequence[Example], recipes: Sequence[str], config: DslmConfig, masking: Masking,
               generator: torch.Generator, train: bool = True) -> Batch:
    """Inputs, masks and targets for ``examples`` under ``recipes`` (one each); ``train`` hides lyric characters."""
    bos, edit, mask_id, pad = (config.special(n) for n in ("<bos>", "<EDIT>", "<mask>", "<pad>"))
    rows: list[dict[str, list[int]]] = []
    for example, name in zip(examples, recipes, strict=True):
        recipe = RECIPES[name]
        roles = {stream: ("none" if kind == "none" else "given" if recipe.given == stream else "generated")
                 for stream, kind in (("vocals", recipe.masks.vocals), ("accompaniment", recipe.masks.accompaniment))}
        span = 0
        if recipe.edit:
            low, high = masking.edit_span
            fraction = low + (high - low) * float(torch.rand(1, generator=generator))
            span = max(1, min(example.steps - 1, round(fraction * example.steps)))
        row: dict[str, list[int]] = {}
        for stream, tokens in (("vocals", example.vocals), ("accompaniment", example.accompaniment)):
            prompt = [*tokens[example.steps - span :].tolist(), edit] if span else []
            row[stream], row[f"{stream}_target"] = _stream(tokens, prompt, bos, mask_id, roles[stream],
                                                           masking.given, generator)
        prompt_steps = len(row["vocals"]) - example.steps
        both = "none" not in roles.values()
        row["song_target"] = [IGNORE] * prompt_steps + (example.song.tolist() if both else [IGNORE] * example.steps)
        lyrics = list(example.lyrics)
        if train:
            hidden = (torch.rand(len(lyrics), generator=generator) < masking.lyrics).tolist()
            lyrics = [MASK if h else t for t, h in zip(lyrics, hidden, strict=True)]
        row["lyrics"] = lyrics
        rows.append(row)
    steps, letters = max(len(r["vocals"]) for r in rows), max(len(r["lyrics"]) for r in rows)

    def padded(key: str, length: int, fill: int) -> Tensor:
        return torch.tensor([[fill if t == PAD_TOKEN else t for t in r[key]] + [fill] * (length - len(r[key]))
                             for r in rows], dtype=torch.long)

    return Batch(
        lyrics=padded("lyrics", letters, PAD),
        lyrics_padding=torch.tensor([[False] * len(r["lyrics"]) + [True] * (letters - len(r["lyrics"])) for r in rows]),
        vocals=padded("vocals", steps, pad),
        accompaniment=padded("accompaniment", steps, pad),
        padding=torch.tensor([[False] * len(r["vocals"]) + [True] * (steps - len(r["vocals"])) for r in rows]),
        masks=[RECIPES[name].masks for name in recipes],
        targets={s: padded(f"{s}_target", steps, IGNORE) for s in STREAMS},
    )


def draw_recipes(count: int, mix: dict[str, float], generator: torch.Generator) -> list[str]:
    """``count`` recipe names drawn from ``mix`` (weights, normalised here)."""
    names = sorted(mix)
    weights = torch.tensor([mix[n] for n in names], dtype=torch.float64)
    return [names[int(i)] for i in torch.multinomial(weights, count, replacement=True, generator=generator)]
