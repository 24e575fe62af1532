"""Sampling, every task of the table: the KV-cache path gives exactly the tokens of the path that reruns the
whole model; a given track steers the generated one; top-k 1 is greedy."""

from __future__ import annotations

import pytest
import torch

from songcorpus.models.dslm import TASKS, Dslm, config_for
from songcorpus.models.dslm.sampling import Sampling, generate, roles, sample_logits


@pytest.fixture(scope="module")
def model() -> Dslm:
    torch.manual_seed(0)
    return Dslm(config_for("tiny", codes=32, lyrics_vocab=20)).eval()


def _lyrics() -> tuple[torch.Tensor, torch.Tensor]:
    lyrics = torch.randint(20, (2, 7), generator=torch.Generator().manual_seed(3))
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 5:] = True
    return lyrics, padding


Tokens = dict[str, torch.Tensor]


def _inputs(task: str, seed: int = 0) -> tuple[Tokens, Tokens]:
    """Prompts for the streams that take part, and the given track's tokens, as ``generate`` wants them."""
    g = torch.Generator().manual_seed(seed)
    role = roles(TASKS[task])
    return ({n: torch.randint(32, (2, 3), generator=g) for n, r in role.items() if r != "none"},
            {n: torch.randint(32, (2, 10), generator=g) for n, r in role.items() if r == "given"})


@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_kv_cache_samples_exactly_what_the_full_model_samples(model: Dslm, task: str) -> None:
    lyrics, padding = _lyrics()
    prompts, given = _inputs(task)
    runs = [generate(model, lyrics, padding, task, 10, generator=torch.Generator().manual_seed(7), use_cache=cache,
                     prompts=prompts, given=given) for cache in (True, False)]
    role = roles(TASKS[task])
    expected = {n for n, r in role.items() if r == "generated"} | ({"song"} if "none" not in role.values() else set())
    assert set(runs[0]) == set(runs[1]) == expected
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in expected)
    # every sampled id is a semantic code: the special tokens (an untrained model gives them as much mass as any
    # code) never fill a position of a fixed-length stream, so the LDM can decode every stream as it is
    assert all(v.shape == (2, 10) and int(v.max()) < model.config.codes for v in runs[0].values())


def test_the_given_track_steers_the_generated_one(model: Dslm) -> None:
    lyrics, padding = _lyrics()
    prompts, given = _inputs("accompaniment_to_song")
    tracks = (given["accompaniment"], (given["accompaniment"] + 5) % 32)
    runs = [generate(model, lyrics, padding, "accompaniment_to_song", 10, sampling=Sampling(top_k=1), prompts=prompts,
                     given={"accompaniment": track}) for track in tracks]
    assert not torch.equal(runs[0]["vocals"], runs[1]["vocals"])


def test_top_k_one_is_greedy_and_the_temperature_sharpens() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.5]])
    greedy = sample_logits(logits, Sampling(top_k=1), torch.Generator().manual_seed(0), codes=3)
    assert greedy.tolist() == [1, 0]
    draws = [int(sample_logits(logits[:1], Sampling(top_k=3, temperature=0.05), torch.Generator().manual_seed(s),
                               codes=3)) for s in range(20)]
    assert draws == [1] * 20
    # ids from ``codes`` up are special tokens and are never drawn, however likely
    assert sample_logits(logits, Sampling(top_k=1), None, codes=1).tolist() == [0, 0]


def test_a_missing_given_track_or_prompt_is_refused(model: Dslm) -> None:
    lyrics, padding = _lyrics()
    with pytest.raises(ValueError, match=r"given= for exactly its non-causal stream\(s\): \['accompaniment'\]"):
        generate(model, lyrics, padding, "accompaniment_to_song", 4)
    with pytest.raises(ValueError, match="needs a prompt of the same length"):
        generate(model, lyrics, padding, "lyrics_to_song", 4, prompts={"vocals": torch.zeros(2, 3, dtype=torch.long)})
