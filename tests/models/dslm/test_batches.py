"""The training mix's batches: the layout every recipe feeds the model, checked position by position."""

from __future__ import annotations

import numpy as np
import torch

from songcorpus.models.dslm import config_for
from songcorpus.models.dslm.batches import IGNORE, RECIPES, Batch, Example, Masking, draw_recipes, make_batch
from songcorpus.models.dslm.lyrics import MASK
from songcorpus.schemas.train_configs import DEFAULT_MIX

CONFIG = config_for("tiny", codes=32)
BOS, EDIT, HIDDEN, PAD = (CONFIG.special(n) for n in ("<bos>", "<EDIT>", "<mask>", "<pad>"))


def _example(steps: int = 10, lyrics: int = 50) -> Example:
    """Vocals 0, 1, 2, ...; accompaniment 10, 11, ...; song 20, 21, ... (all modulo 32 codes)."""
    r = np.arange(steps)
    return Example("c", tuple(range(3, 3 + lyrics)), vocals=r % 32, accompaniment=(r + 10) % 32, song=(r + 20) % 32)


def _one(recipe: str, example: Example | None = None, masking: Masking | None = None) -> Batch:
    return make_batch([example or _example()], [recipe], CONFIG, masking or Masking(), torch.Generator().manual_seed(0))


def test_every_recipe_of_the_mix_is_defined_and_only_those() -> None:
    assert set(RECIPES) == set(DEFAULT_MIX)


def test_a_generated_stream_is_shifted_behind_bos_and_predicted_everywhere() -> None:
    batch = _one("lyrics_to_song")
    assert batch.vocals[0].tolist() == [BOS, *range(9)]
    assert batch.targets["vocals"][0].tolist() == list(range(10))
    assert batch.targets["accompaniment"][0].tolist() == list(range(10, 20))
    assert batch.targets["song"][0].tolist() == list(range(20, 30))


def test_a_given_stream_is_predicted_exactly_where_it_is_hidden() -> None:
    batch = _one("accompaniment_to_song", _example(steps=400), masking=Masking(given=0.2))
    inputs, targets = batch.accompaniment[0], batch.targets["accompaniment"][0]
    hidden = inputs[1:] == HIDDEN  # x_j sits at input j + 1 and is predicted at j
    assert 0.12 < hidden.float().mean() < 0.28
    assert torch.equal(targets[:-1] != IGNORE, hidden) and targets[-1] == (399 + 10) % 32
    assert (batch.targets["vocals"][0] != IGNORE).all()  # the vocals are generated from it


def test_a_stream_that_takes_no_part_is_padding_and_the_song_is_not_predicted() -> None:
    batch = _one("music_continuation")
    assert (batch.vocals[0] == PAD).all() and (batch.targets["vocals"][0] == IGNORE).all()
    assert (batch.targets["song"][0] == IGNORE).all() and (batch.targets["accompaniment"][0] != IGNORE).all()


def test_editing_prompts_with_the_end_of_the_clip_and_edit() -> None:
    batch = _one("song_editing", masking=Masking(edit_span=(0.3, 0.3)))
    assert batch.vocals[0].tolist() == [7, 8, 9, EDIT, BOS, *range(9)]
    assert batch.targets["vocals"][0].tolist() == [IGNORE] * 4 + list(range(10))
    assert batch.accompaniment[0, :4].tolist() == [17, 18, 19, EDIT]


def test_a_fifth_of_the_lyrics_is_masked_in_training_and_none_in_evaluation() -> None:
    example = _example(lyrics=1000)
    trained = make_batch([example], ["lyrics_to_song"], CONFIG, Masking(), torch.Generator().manual_seed(0))
    assert 0.17 < (trained.lyrics == MASK).float().mean() < 0.23
    judged = make_batch([example], ["lyrics_to_song"], CONFIG, Masking(), torch.Generator(), train=False)
    assert judged.lyrics[0].tolist() == list(example.lyrics)


def test_examples_of_different_lengths_are_padded_and_rows_keep_their_recipe() -> None:
    batch = make_batch([_example(4), _example(9)], ["vocals_editing", "lyrics_to_song"], CONFIG, Masking(),
                       torch.Generator().manual_seed(1))
    assert batch.padding[0].sum() > 0 and not batch.padding[1].any()
    assert (batch.targets["song"][0][batch.padding[0]] == IGNORE).all()
    second = batch.rows([1])
    assert second.masks == [RECIPES["lyrics_to_song"].masks] and torch.equal(second.vocals[0], batch.vocals[1])


def test_recipes_are_drawn_by_their_weights() -> None:
    drawn = draw_recipes(4000, {"lyrics_to_song": 0.8, "song_editing": 0.2}, torch.Generator().manual_seed(0))
    assert 0.77 < drawn.count("lyrics_to_song") / 4000 < 0.83
