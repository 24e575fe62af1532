"""The config: JSON round trip, strict loading, validation, named sizes."""

from __future__ import annotations

import json

import pytest

from songcorpus.models.bestrq import SIZES, BestRqConfig, config_for


def test_defaults_follow_the_paper():
    config = BestRqConfig()
    assert (config.sample_rate, config.n_mels, config.hop_length, config.frame_rate) == (24000, 80, 480, 50.0)
    assert (config.codebook_dim, config.codebook_size, config.mask_noise_std) == (16, 1024, 0.1)
    assert config.mask_span / config.frame_rate == pytest.approx(0.4)  # 400 ms spans
    assert config_for("small") == config


@pytest.mark.parametrize("size", sorted(SIZES))
def test_json_round_trip(size: str):
    config = config_for(size, num_codebooks=16, f_max=11000.0)
    assert BestRqConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_from_dict_names_unknown_and_missing_keys():
    data = BestRqConfig().to_dict()
    del data["n_mels"]
    data["n_mel"] = 80
    with pytest.raises(ValueError, match=r"unknown keys \['n_mel'\], missing keys \['n_mels'\]"):
        BestRqConfig.from_dict(data)


def test_invalid_values_are_all_reported():
    with pytest.raises(ValueError, match=r"d_model .* multiple of num_heads.*; conv_kernel must be odd"):
        BestRqConfig(d_model=100, num_heads=8, conv_kernel=30)
    with pytest.raises(ValueError, match="mask_start_prob"):
        config_for("tiny", mask_start_prob=0.0)


def test_config_for_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown BEST-RQ size 'huge'"):
        config_for("huge")
    with pytest.raises(ValueError, match=r"unknown BestRqConfig fields \['layers'\]"):
        config_for("tiny", layers=3)
