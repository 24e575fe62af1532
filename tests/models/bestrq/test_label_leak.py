"""The label leak that an open BEST-RQ library has (REFERENCE.md): the encoder must see the masked features,
never the target labels and never the clean frames under the mask."""

from __future__ import annotations

import torch
from torch import Tensor

from songcorpus.models.bestrq import RandomProjectionQuantizer, sample_span_mask
from tests.models.bestrq.helpers import smooth_features, tiny_model

LENGTHS = torch.tensor([120, 90, 60])


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_other_targets_leave_the_logits_unchanged():
    features = smooth_features()
    model = tiny_model(features, LENGTHS)
    mask = sample_span_mask(3, 120, LENGTHS, 20, 0.05, seeded(0))
    logits, targets, loss = model(features, LENGTHS, mask, seeded(1)), model.targets(features), model.loss(
        features, LENGTHS, seeded(2)).loss

    model.quantizer = RandomProjectionQuantizer(80, 16, 1024, 1, seed=99)  # other projection, other codebook
    model.quantizer.codebook = model.quantizer.codebook[:, torch.randperm(1024)]  # and shuffled codes
    assert (model.targets(features) != targets).float().mean() > 0.9
    assert torch.equal(model(features, LENGTHS, mask, seeded(1)), logits)
    assert model.loss(features, LENGTHS, seeded(2)).loss != loss  # the labels enter the loss, and only there


def test_the_encoder_input_of_a_training_step_is_the_same_whatever_the_labels():
    features = smooth_features()
    model = tiny_model(features, LENGTHS)
    seen: list[Tensor] = []
    model.input_projection.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))

    model.loss(features, LENGTHS, seeded(5))
    model.quantizer = RandomProjectionQuantizer(80, 16, 1024, 1, seed=7)
    model.loss(features, LENGTHS, seeded(5))
    assert len(seen) == 2 and torch.equal(seen[0], seen[1])

    mask = sample_span_mask(3, 120, LENGTHS, 20, 0.02, seeded(5))  # the mask that step drew
    assert mask.any()
    clean = model.normalizer(features)
    assert torch.equal(seen[0][~mask], clean[~mask])
    assert seen[0][mask].std() < 0.2 < clean[mask].std()  # N(0, 0.1) noise where masked, not the clean frames


def test_clean_features_under_the_mask_never_reach_the_logits():
    features = smooth_features()
    model = tiny_model(features, LENGTHS)
    mask = sample_span_mask(3, 120, LENGTHS, 20, 0.05, seeded(0))
    assert mask.sum() > 30
    altered = features.clone()
    altered[mask] = torch.randn(int(mask.sum()), 80) * 10  # change the clean frames only where masked
    logits = model(features, LENGTHS, mask, seeded(1))
    assert torch.equal(model(altered, LENGTHS, mask, seeded(1)), logits)
    assert not torch.equal(model(altered, LENGTHS, None), model(features, LENGTHS, None))  # unmasked, they do
