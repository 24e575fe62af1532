"""SECS ranks two takes of one espeak-ng voice above two different voices."""

from __future__ import annotations

import numpy as np

from songcorpus.evaluation.speaker_similarity import SpeakerEncoder
from songcorpus.synth.vocals import SAMPLE_RATE, VoiceSpec, render_line

TAKE_ONE = ("the river runs to the sea tonight", "we hold the lantern high")
TAKE_TWO = ("morning light upon a hill", "and every bird is singing now")


def _sing(lines: tuple[str, ...], voice: VoiceSpec) -> np.ndarray:
    return np.concatenate([render_line(line, voice).audio for line in lines])


def test_two_takes_of_one_voice_are_closer_than_two_voices() -> None:
    low, high = VoiceSpec("en-us+m3", pitch=35), VoiceSpec("en-us+f4", pitch=75)
    encoder = SpeakerEncoder()
    same = encoder.secs(_sing(TAKE_ONE, low), _sing(TAKE_TWO, low), SAMPLE_RATE)
    other = encoder.secs(_sing(TAKE_ONE, low), _sing(TAKE_TWO, high), SAMPLE_RATE)
    print(f"SECS one voice, two takes {same:.3f}; two voices {other:.3f}")
    assert same > other + 0.05 and same > 0.8
    assert encoder.secs(_sing(TAKE_ONE, low), _sing(TAKE_ONE, low), SAMPLE_RATE) > 0.999
