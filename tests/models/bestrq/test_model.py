"""The network: loss on masked frames only, a tiny model that learns, sizes, intermediate layers, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from songcorpus.models.bestrq import SIZES, BestRq, BestRqConfig, masked_cross_entropy, parameter_count
from tests.models.bestrq.helpers import smooth_features, tiny_model

LENGTHS = torch.tensor([120, 90, 60])


def test_loss_counts_masked_frames_only():
    logits, targets = torch.randn(2, 50, 3, 16), torch.randint(0, 16, (2, 50, 3))
    mask = torch.zeros(2, 50, dtype=torch.bool)
    mask[0, 5:25], mask[1, 40:45] = True, True
    loss = masked_cross_entropy(logits, targets, mask)
    assert loss == pytest.approx(float(F.cross_entropy(logits[mask].reshape(-1, 16), targets[mask].flatten())))

    changed = torch.where(mask[..., None, None], logits, torch.randn_like(logits) * 100)
    assert torch.equal(masked_cross_entropy(changed, targets, mask), loss)
    changed[1, 42] += 100 * torch.randn(3, 16)
    assert masked_cross_entropy(changed, targets, mask) != loss

    nothing = masked_cross_entropy(logits.requires_grad_(), targets, torch.zeros(2, 50, dtype=torch.bool))
    nothing.backward()
    assert nothing == 0 and logits.grad is not None and not logits.grad.any()


def test_shapes_and_step_outputs():
    features = smooth_features()
    model = tiny_model(features, LENGTHS, num_codebooks=2, codebook_size=64)
    assert model(features, LENGTHS).shape == (3, 120, 2, 64)
    assert model.targets(features).shape == (3, 120, 2)
    step = model.loss(features, LENGTHS, torch.Generator().manual_seed(0))
    assert step.loss.shape == () and 0 <= step.accuracy <= 1 and 0 < step.masked_frames < LENGTHS.sum()
    assert step.loss.item() == pytest.approx(math.log(64), abs=0.5)  # untrained: about uniform over the codes


def test_a_tiny_model_overfits_a_few_batches():
    """Two batches, each with its own fixed masks: the model memorises the masked labels (7.1 -> 0.04 here)."""
    batches = [(smooth_features(batch=2, seed=seed), torch.tensor([120, 90])) for seed in range(2)]
    model = tiny_model(torch.cat([batches[0][0], batches[1][0]]), torch.tensor([120, 90, 120, 90])).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        features, lengths = batches[step % 2]
        result = model.loss(features, lengths, torch.Generator().manual_seed(step % 2))
        optimizer.zero_grad()
        result.loss.backward()
        optimizer.step()
        losses.append(result.loss.item())
    print(f"tiny BEST-RQ, 60 steps: loss {losses[0]:.2f} -> {sum(losses[-10:]) / 10:.3f} (mean of the last 10)")
    assert losses[0] == pytest.approx(math.log(1024), abs=0.5)
    assert sum(losses[-10:]) / 10 < 0.5, losses


def test_parameter_counts_of_the_sizes():
    counts = {size: parameter_count(config) for size, config in SIZES.items()}
    print("\n".join(f"BEST-RQ {size}: {count / 1e6:.1f}M parameters" for size, count in counts.items()))
    assert counts["tiny"] < 1e6 < counts["small"] < counts["paper"]
    assert 0.4e9 <= counts["paper"] <= 0.8e9  # SongCreator: ~0.6B
    features = smooth_features()
    assert parameter_count(SIZES["tiny"]) == sum(p.numel() for p in tiny_model(features, LENGTHS).parameters())


def test_hidden_states_are_the_outputs_of_the_first_layers():
    features = smooth_features()
    full = torch.full((3,), 120)  # no padding: torchaudio's own layers, called directly, see none either
    model = tiny_model(features, full, num_layers=3)
    with torch.no_grad():
        expected = model.input_projection(model.normalizer(features))
        assert torch.equal(model.hidden_states(features, full, 0), expected)
        expected = expected.transpose(0, 1)
        for layer in range(1, 4):
            expected = model.encoder.conformer.conformer_layers[layer - 1](expected, None)
            assert torch.equal(model.hidden_states(features, full, layer), expected.transpose(0, 1))
        whole, _ = model.encoder.conformer(model.input_projection(model.normalizer(features)), full)
        assert torch.allclose(model.hidden_states(features, full, 3), whole)
    with pytest.raises(ValueError, match=r"layer must be in \[0, 3\]"):
        model.hidden_states(features, full, 4)


def test_a_clip_gets_the_same_states_whatever_pads_it():
    """torchaudio masks padding in attention only; the encoder keeps it out of the depthwise convolutions too."""
    features = smooth_features(frames=300)
    model = tiny_model(features, torch.full((3,), 300), num_layers=4)
    with torch.no_grad():
        alone = model(features[:1, :200], torch.tensor([200]))
        padded = model(features, torch.tensor([200, 300, 120]))[:1, :200]  # other data after frame 200
        assert torch.allclose(padded, alone, atol=1e-5)
        assert torch.allclose(model.hidden_states(features, torch.tensor([200, 300, 120]), 2)[:1, :200],
                              model.hidden_states(features[:1, :200], torch.tensor([200]), 2), atol=1e-5)


def test_a_checkpoint_restores_the_same_model():
    features = smooth_features()
    model = tiny_model(features, LENGTHS, quantizer_seed=3)
    restored = BestRq(BestRqConfig.from_dict(model.config.to_dict())).eval()
    restored.load_state_dict(model.state_dict())
    assert torch.equal(restored.targets(features), model.targets(features))
    assert torch.equal(restored(features, LENGTHS), model(features, LENGTHS))


def test_audio_to_loss():
    model = BestRq(SIZES["tiny"])
    audio = torch.randn(2, 24000) * 0.1
    features, lengths = model.front_end(audio, torch.tensor([24000, 12000]))
    assert features.shape == (2, 50, 80) and lengths.tolist() == [50, 25]
    model.normalizer.update(features, lengths)
    assert torch.isfinite(model.loss(features, lengths).loss)
