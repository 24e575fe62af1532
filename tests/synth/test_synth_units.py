"""Unit checks of the synth parts: word lists vs espeak-ng, lyrics, arrangement, writers."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from songcorpus.synth import accompaniment, lyrics_text, vocals, writers


@pytest.mark.parametrize("language", lyrics_text.SUPPORTED_LANGUAGES)
def test_every_word_gets_its_own_timing(language: str) -> None:
    words = lyrics_text.WORDS[language]
    voice = vocals.VoiceSpec(vocals.available_voices(language)[0])
    for i in range(0, len(words), 8):
        text = " ".join(words[i : i + 8])
        sung = vocals.render_line(text, voice)
        assert [w.word for w in sung.words] == text.split()
        bounds = [w.start for w in sung.words] + [sung.words[-1].end]
        assert bounds[0] == 0.0 and bounds[-1] == pytest.approx(sung.duration)
        assert all(a < b for a, b in itertools.pairwise(bounds))
        assert sung.audio.dtype == np.float32 and np.abs(sung.audio[:10]).max() > 0


def test_render_is_repeatable_and_trimmed() -> None:
    voice = vocals.VoiceSpec("en-us+f4", pitch=60, pitch_range=10, rate=130)
    first = vocals.render_line("golden river of light", voice)
    vocals.render_line("el sol y la luna", vocals.VoiceSpec("es"))  # espeak-ng state must not leak
    second = vocals.render_line("golden river of light", voice)
    assert np.array_equal(first.audio, second.audio) and first.words == second.words
    assert np.abs(first.audio[:100]).max() > 0.002 and np.abs(first.audio[-100:]).max() > 0.002  # trimmed
    with pytest.raises(ValueError, match="no voice"):
        vocals.render_line("hello", vocals.VoiceSpec("xx-nope"))


_VOICE_DIGESTS = """
import hashlib, json
from songcorpus.synth import vocals
voices = [v for language in ("en", "es", "de") for v in vocals.available_voices(language)]
line = "the night is calling me home again"
print(json.dumps({v: hashlib.sha256(vocals.render_line(line, vocals.VoiceSpec(v)).audio.tobytes()).hexdigest()
                  for v in voices}))
"""


def test_every_voice_sings_the_same_bytes_in_every_process() -> None:
    """Two fresh processes a second apart: espeak-ng seeds its noise from the clock, so no voice may use it."""
    first = subprocess.run([sys.executable, "-c", _VOICE_DIGESTS], check=True, capture_output=True, text=True)
    time.sleep(1.0)
    second = subprocess.run([sys.executable, "-c", _VOICE_DIGESTS], check=True, capture_output=True, text=True)
    digests = json.loads(first.stdout)
    assert len(digests) >= 3 * 8
    assert digests == json.loads(second.stdout)


def test_lyrics_repeat_the_chorus_and_respect_word_counts() -> None:
    rng = np.random.default_rng(3)
    lines = lyrics_text.make_lyrics(rng, "en")
    assert 4 <= len(lines) <= 12
    assert all(3 <= len(line.words) <= 8 for line in lines)
    chorus = [line for line in lines if line.section == "chorus"]
    assert len({line.phrase for line in chorus}) < len(chorus)  # repeated phrases share an id
    assert lyrics_text.make_lyrics(np.random.default_rng(3), "en") == lines
    with pytest.raises(ValueError, match="unsupported lyrics language"):
        lyrics_text.make_lyrics(rng, "xx")


def test_arrangement_chords_are_diatonic_triads() -> None:
    arrangement = accompaniment.make_arrangement(np.random.default_rng(0), "pop")
    names = arrangement.chord_names()
    assert len(names) == len(arrangement.progression) and "?" not in "".join(names)
    c_major = accompaniment.Arrangement("pop", 120.0, 0, "major", (0, 4, 5, 3), 0, 33)
    assert c_major.chord_names() == ["C", "G", "Am", "F"]
    midi = accompaniment.build_midi(c_major, 10.0, np.random.default_rng(0))
    assert midi.get_end_time() >= 10.0 and any(inst.is_drum for inst in midi.instruments)


def test_fluidsynth_render_is_deterministic(tmp_path) -> None:
    c_major = accompaniment.Arrangement("rock", 120.0, 0, "major", (0, 4, 5, 3), 29, 34)
    midi_path = tmp_path / "x.mid"
    accompaniment.build_midi(c_major, 3.0, np.random.default_rng(0)).write(str(midi_path))
    first = accompaniment.render_midi(midi_path, 44100 * 3)
    second = accompaniment.render_midi(midi_path, 44100 * 3)
    assert first.shape == (44100 * 3, 2) and np.sqrt(np.mean(first**2)) > 1e-3
    assert first.tobytes() == second.tobytes()


def test_ogg_encoding_is_reproducible_and_decodes() -> None:
    audio = np.random.default_rng(0).uniform(-0.3, 0.3, (44100, 2)).astype(np.float32)
    first = writers.encode_audio(audio, 44100, "ogg", stream_serial=7)
    assert first == writers.encode_audio(audio, 44100, "ogg", stream_serial=7)
    assert first != writers.encode_audio(audio, 44100, "ogg", stream_serial=8)
    decoded, rate = sf.read(io.BytesIO(first))
    assert rate == 44100 and decoded.shape == audio.shape


def test_lrc_formatting_and_atomic_write(tmp_path) -> None:
    assert writers.format_lrc_time(59.996) == "[01:00.00]"
    assert writers.format_lrc_time(3.254) == "[00:03.25]"
    assert writers.format_lrc("A", "T", [(1.5, "la la")]).splitlines() == [
        "[ar:A]",
        "[ti:T]",
        "[by:songcorpus synth]",
        "[00:01.50]la la",
    ]
    target = tmp_path / "sub" / "x.txt"

    def crash_while_writing() -> None:
        with writers.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        crash_while_writing()
    assert list((tmp_path / "sub").iterdir()) == []
    writers.write_text(target, "done")
    assert target.read_text() == "done" and list((tmp_path / "sub").iterdir()) == [target]
