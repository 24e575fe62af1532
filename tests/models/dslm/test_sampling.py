"""Sampling: the KV-cache path gives exactly the tokens of the path that reruns the whole model; top-k 1 is
greedy; prompts are honoured."""

from __future__ import annotations

import pytest
import torch

from songcorpus.models.dslm import Dslm, config_for
from songcorpus.models.dslm.sampling import Sampling, generate, sample_logits


@pytest.fixture(scope="module")
def model() -> Dslm:
    torch.manual_seed(0)
    return Dslm(config_for("tiny", codes=32, lyrics_vocab=20)).eval()


def _lyrics() -> tuple[torch.Tensor, torch.Tensor]:
    lyrics = torch.randint(20, (2, 7), generator=torch.Generator().manual_seed(3))
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 5:] = True
    return lyrics, padding


@pytest.mark.parametrize("task", ["lyrics_to_song", "music_continuation", "vocals_editing"])
def test_the_kv_cache_samples_exactly_what_the_full_model_samples(model: Dslm, task: str) -> None:
    lyrics, padding = _lyrics()
    prompts = {"vocals": torch.randint(32, (2, 3)), "accompaniment": torch.randint(32, (2, 3))}
    runs = [generate(model, lyrics, padding, task, 10, generator=torch.Generator().manual_seed(7), prompts=prompts,
                     use_cache=cache) for cache in (True, False)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in ("vocals", "accompaniment", "song"))
    assert runs[0]["vocals"].shape == (2, 10) and int(runs[0]["song"].max()) < model.config.vocab


def test_top_k_one_is_greedy_and_the_temperature_sharpens() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.5]])
    greedy = sample_logits(logits, Sampling(top_k=1), torch.Generator().manual_seed(0))
    assert greedy.tolist() == [1, 0]
    draws = [int(sample_logits(logits[:1], Sampling(top_k=3, temperature=0.05), torch.Generator().manual_seed(s)))
             for s in range(20)]
    assert draws == [1] * 20


def test_a_given_track_is_refused(model: Dslm) -> None:
    lyrics, padding = _lyrics()
    with pytest.raises(ValueError, match="given track"):
        generate(model, lyrics, padding, "accompaniment_to_song", 4)
