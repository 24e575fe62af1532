"""The random-projection quantizer: a seed names its labels; state-dict round trip; usage statistics."""

from __future__ import annotations

import math

import pytest
import torch

from songcorpus.models.bestrq import RandomProjectionQuantizer, codebook_usage


def quantizer(seed: int, num_codebooks: int = 1) -> RandomProjectionQuantizer:
    return RandomProjectionQuantizer(input_dim=80, codebook_dim=16, codebook_size=1024, num_codebooks=num_codebooks,
                                     seed=seed)


def test_a_seed_names_the_same_projection_codebook_and_labels():
    features = torch.randn(2, 50, 80)
    first, again, other = quantizer(0), quantizer(0), quantizer(1)
    assert torch.equal(first.projection, again.projection) and torch.equal(first.codebook, again.codebook)
    assert torch.equal(first(features), again(features))
    assert not torch.equal(first.projection, other.projection)
    assert (first(features) != other(features)).float().mean() > 0.9


def test_draws_do_not_depend_on_the_global_rng_or_this_machine():
    """Pinned values (torch 2.8, CPU Mersenne Twister): a change here silently changes every label's meaning."""
    torch.manual_seed(12345)
    q = quantizer(0)
    assert q.projection[0, 0, :3].tolist() == pytest.approx([-0.1625010, -0.1663289, -0.0361679], abs=1e-6)
    assert q.codebook[0, 0, :3].tolist() == pytest.approx([-0.0906999, 0.1626180, 0.1815091], abs=1e-6)
    assert q(torch.linspace(-3, 3, 400).reshape(1, 5, 80)).flatten().tolist() == [354, 354, 639, 419, 469]


def test_vectors_are_unit_length_and_the_label_is_the_nearest_by_cosine():
    q = quantizer(3, num_codebooks=2)
    assert torch.allclose(q.codebook.norm(dim=-1), torch.ones(2, 1024))
    assert q.projection.std().item() == pytest.approx(math.sqrt(2 / (80 + 16)), rel=0.1)  # Xavier normal
    features = torch.randn(1, 30, 80)
    labels = q(features)
    assert labels.shape == (1, 30, 2)
    for book in range(2):
        projected = features[0] @ q.projection[book]
        # the nearest code in Euclidean distance after L2-normalising both sides is the most cosine-similar one
        distances = torch.cdist(projected / projected.norm(dim=-1, keepdim=True), q.codebook[book])
        assert torch.equal(labels[0, :, book], distances.argmin(dim=-1))
    assert torch.equal(q(features * 7.5), labels)  # scale-free: only the direction of the projection counts


def test_labels_survive_a_state_dict_round_trip_and_ignore_autocast():
    q = quantizer(5, num_codebooks=4)
    restored = quantizer(6, num_codebooks=4)
    restored.load_state_dict(q.state_dict())
    features = torch.randn(3, 40, 80)
    assert torch.equal(restored(features), q(features))
    labels = q(features)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert torch.equal(q(features), labels)


def test_usage_of_a_known_histogram():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    usage = codebook_usage(labels, codebook_size=8)
    assert (usage.frames, usage.used, usage.dead) == (8, 4, 4)
    assert usage.perplexity == pytest.approx(4.0)
    skewed = codebook_usage(torch.tensor([5] * 3 + [6]), codebook_size=8)
    assert skewed.perplexity == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    assert codebook_usage(torch.tensor([], dtype=torch.long), 8).to_dict() == {
        "frames": 0, "used": 0, "dead": 8, "perplexity": 0.0}
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 8\)"):
        codebook_usage(torch.tensor([8]), 8)
