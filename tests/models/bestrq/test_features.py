"""The log-mel front end (frame-count rule, shapes) and the global normaliser."""

from __future__ import annotations

import pytest
import torch

from songcorpus.models.bestrq import BestRqConfig, FeatureNormalizer, LogMel, frame_count


def log_mel(config: BestRqConfig) -> LogMel:
    return LogMel(sample_rate=config.sample_rate, n_mels=config.n_mels, n_fft=config.n_fft,
                  hop_length=config.hop_length, f_min=config.f_min, f_max=config.f_max, log_floor=config.log_floor)


@pytest.mark.parametrize("seconds", [0.1, 1.0, 1.234, 2.99, 3.0])
def test_frames_are_fifty_per_second(seconds: float):
    config = BestRqConfig()
    samples = round(seconds * config.sample_rate)
    features, lengths = log_mel(config)(torch.randn(2, samples) * 0.1)
    assert features.shape == (2, lengths[0], 80)
    assert lengths.tolist() == [features.shape[1]] * 2
    assert abs(features.shape[1] - round(seconds * 50)) <= 1
    if seconds == int(seconds):
        assert features.shape[1] == seconds * 50


def test_frame_lengths_of_a_padded_batch():
    config = BestRqConfig()
    lengths = torch.tensor([24000, 24001, 480, 1])
    features, frames = log_mel(config)(torch.zeros(4, 24001), lengths)
    assert frames.tolist() == [50, 51, 1, 1]
    assert features.shape[1] == 51
    assert frame_count(torch.tensor(0), 480) == 0


def test_a_clip_gets_the_same_frames_alone_and_in_a_padded_batch():
    front_end = log_mel(BestRqConfig())
    audio = torch.randn(2, 24000) * 0.1
    alone, _ = front_end(audio[:1, :10000])
    batched, lengths = front_end(audio, torch.tensor([10000, 24000]))  # samples past 10000 are not zeros here
    assert lengths[0] == alone.shape[1] == 21
    assert torch.allclose(batched[:1, :21], alone, atol=1e-5)


def test_silence_sits_at_the_floor_and_a_tone_in_its_mel_bin():
    config = BestRqConfig()
    time = torch.arange(config.sample_rate) / config.sample_rate
    audio = torch.stack([torch.zeros(config.sample_rate), 0.5 * torch.sin(2 * torch.pi * 1000 * time)])
    features, _ = log_mel(config)(audio)
    assert torch.allclose(features[0], torch.tensor(config.log_floor).log())
    loudest = features[1, 10:-10].argmax(dim=-1)
    assert loudest.unique().numel() == 1  # a steady 1 kHz tone lights one mel bin in every inner frame
    with pytest.raises(ValueError, match=r"mono audio shaped \(batch, samples\)"):
        log_mel(config)(torch.zeros(2, 1, 480))


def test_normalizer_uses_only_valid_frames_and_round_trips():
    features = torch.randn(2, 100, 80) * 3 + 5
    features[1, 60:] = 1000.0  # padding: must not enter the statistics
    lengths = torch.tensor([100, 60])
    normalizer = FeatureNormalizer(80)
    with pytest.raises(ValueError, match="has seen no frames"):
        normalizer(features)
    normalizer.update(features[:1], lengths[:1])  # fitting in two batches equals fitting in one
    normalizer.update(features[1:], lengths[1:])
    valid = torch.cat([features[0], features[1, :60]])
    assert torch.allclose(normalizer.mean.float(), valid.mean(0), atol=1e-4)
    assert torch.allclose(normalizer.std.float(), valid.std(0, unbiased=False), atol=1e-4)
    normalized = normalizer(valid[None])
    assert normalized.dtype == torch.float32
    assert torch.allclose(normalized.mean(dim=(0, 1)), torch.zeros(80), atol=1e-4)

    restored = FeatureNormalizer(80)
    restored.load_state_dict(normalizer.state_dict())
    assert torch.equal(restored(features), normalizer(features))
