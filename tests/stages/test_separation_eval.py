"""The SDR evaluator against an oracle: true stems score very high, swapped or silent ones low."""

import math

import numpy as np

from songcorpus.stages.separation_eval import score_song, sdr


def stems(seconds: float = 3.0, rate: int = 8000):
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    vocals = np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2)
    accomp = 0.2 * rng.standard_normal((2, t.size))
    return vocals, accomp


def test_oracle_scores_very_high():
    vocals, accomp = stems()
    score = score_song("s", vocals, accomp, vocals.copy(), accomp.copy())
    assert score.vocals_sdr > 80 and score.accomp_sdr > 80


def test_small_error_gives_the_expected_sdr():
    vocals, _ = stems()
    assert math.isclose(sdr(vocals, vocals * 1.1), 20.0, abs_tol=1e-6)  # error is 10 % of the signal


def test_swapped_and_silent_estimates_score_low():
    vocals, accomp = stems()
    swapped = score_song("s", vocals, accomp, accomp, vocals)
    assert swapped.vocals_sdr < 0 and swapped.accomp_sdr < 0
    silent = score_song("s", vocals, accomp, np.zeros_like(vocals), np.zeros_like(accomp))
    assert abs(silent.vocals_sdr) < 1e-6 and abs(silent.accomp_sdr) < 1e-6


def test_silent_reference_is_undefined_not_infinite():
    assert math.isnan(sdr(np.zeros((2, 100)), np.ones((2, 100))))


def test_the_baseline_is_the_mixture_taken_as_each_stem():
    vocals, accomp = stems()
    score = score_song("s", vocals, accomp, vocals, accomp)
    assert math.isclose(score.vocals_baseline, sdr(vocals, vocals + accomp), abs_tol=1e-3)
    assert math.isclose(score.accomp_baseline, round(10 * math.log10((accomp**2).sum() / (vocals**2).sum()), 3),
                        abs_tol=1e-3)
