"""Span masking: span lengths, the realised masked ratio, padding, determinism, and the noise."""

from __future__ import annotations

import pytest
import torch

from songcorpus.models.bestrq import apply_mask, sample_span_mask


def expected_ratio(length: int, span: int, start_prob: float) -> float:
    """Expected masked fraction of a clip of ``length`` frames: frame t is masked unless none of the
    min(t + 1, span) frames that could start a span covering it did."""
    return sum(1 - (1 - start_prob) ** min(t + 1, span) for t in range(length)) / length


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_spans_start_where_the_draws_say_and_are_clipped_at_the_end():
    """Rebuild the mask by hand from the same random draws: each start masks [start, min(start + span, length))."""
    span, start_prob, lengths = 20, 0.03, torch.tensor([300, 250, 37, 0])
    mask = sample_span_mask(4, 300, lengths, span, start_prob, seeded(8))
    draws = torch.rand(4, 300, generator=seeded(8))
    expected = torch.zeros(4, 300, dtype=torch.bool)
    for row, length in enumerate(lengths.tolist()):
        for start in (draws[row, :length] < start_prob).nonzero().flatten().tolist():
            expected[row, start:min(start + span, length)] = True
    assert torch.equal(mask, expected)
    # seed 8 starts spans at frames 27 and 36 of the 37-frame clip and at 249 of the 250-frame one: clipped
    assert expected[2].nonzero().flatten().tolist() == list(range(27, 37))
    assert expected[1, 249] and not expected[1, 250:].any()


def test_an_isolated_span_has_the_configured_length():
    mask = sample_span_mask(1, 100, torch.tensor([100]), 20, 1e-9, seeded(0))
    assert not mask.any()
    # start_prob 1 on a 5-frame clip: the span from frame 0 alone would cover 20 frames, clipped to 5
    assert sample_span_mask(1, 8, torch.tensor([5]), 20, 1.0, seeded(0)).tolist() == [[True] * 5 + [False] * 3]
    runs = []
    for seed in range(200):
        row = sample_span_mask(1, 200, torch.tensor([200]), 20, 0.002, seeded(seed))[0].tolist()
        starts = [t for t in range(200) if row[t] and (t == 0 or not row[t - 1])]
        runs += [next((t for t in range(start, 200) if not row[t]), 200) - start for start in starts
                 if start + 40 <= 200]  # runs far from the end
    assert runs and all(length >= 20 for length in runs)
    assert sum(length == 20 for length in runs) / len(runs) > 0.9  # overlaps (longer runs) are rare at p = 0.002


@pytest.mark.parametrize(("span", "start_prob"), [(20, 0.02), (20, 0.045), (4, 0.15)])
def test_masked_ratio_matches_its_expectation(span: int, start_prob: float):
    lengths = torch.tensor([500, 300, 100, 50] * 200)
    mask = sample_span_mask(len(lengths), 500, lengths, span, start_prob, seeded(7))
    expected = sum(expected_ratio(length, span, start_prob) * length for length in lengths.tolist()) / lengths.sum()
    assert float(mask.sum() / lengths.sum()) == pytest.approx(float(expected), abs=0.015)


def test_padding_is_never_masked_and_masks_are_seeded():
    lengths = torch.tensor([50, 10, 0, 64])
    everything = sample_span_mask(4, 64, lengths, 20, 1.0, seeded(0))
    assert torch.equal(everything, torch.arange(64)[None, :] < lengths[:, None])
    first, again = (sample_span_mask(4, 64, lengths, 5, 0.1, seeded(3)) for _ in range(2))
    assert torch.equal(first, again)
    assert not torch.equal(first, sample_span_mask(4, 64, lengths, 5, 0.1, seeded(4)))
    with pytest.raises(ValueError, match="lengths must be shaped"):
        sample_span_mask(3, 64, lengths, 5, 0.1)


def test_masked_frames_become_noise_and_the_rest_is_untouched():
    features = torch.randn(8, 400, 80) * 5 + 100
    mask = sample_span_mask(8, 400, torch.full((8,), 400), 20, 0.02, seeded(0))
    masked = apply_mask(features, mask, 0.1, seeded(1))
    assert torch.equal(masked[~mask], features[~mask])
    noise = masked[mask]
    assert noise.numel() > 10_000
    assert float(noise.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(noise.std()) == pytest.approx(0.1, rel=0.03)
    assert torch.equal(masked, apply_mask(features, mask, 0.1, seeded(1)))
    assert torch.equal(apply_mask(features, mask, 0.0), torch.where(mask[..., None], 0.0, features))
