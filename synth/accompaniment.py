"""Accompaniment: a drums + bass + chords arrangement written as MIDI and rendered with FluidSynth.

The General MIDI soundfont that ships inside the ``pretty_midi`` wheel is used, so nothing is
downloaded. FluidSynth's fast-render mode with reverb and chorus off renders the same MIDI file to
the same bytes every time.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf

logger = logging.getLogger(__name__)

SAMPLE_RATE = 44100
FLUIDSYNTH_MISSING = (
    "fluidsynth was not found on PATH: install the Debian package `fluidsynth` (`apt-get install fluidsynth`)"
)


class MissingToolError(RuntimeError):
    """A program the synthesiser needs is not installed; the message says how to install it."""


_NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Chord progressions as 0-based scale degrees, one chord per bar.
_PROGRESSIONS = (
    (0, 4, 5, 3),
    (0, 5, 3, 4),
    (5, 3, 0, 4),
    (0, 3, 4, 3),
    (0, 3, 0, 4),
    (0, 5, 2, 6),
    (0, 6, 5, 6),
)
_KICK, _SNARE, _CLOSED_HAT, _RIDE, _CRASH = 36, 38, 42, 51, 49


@dataclass(frozen=True)
class GenreStyle:
    """What a genre changes: tempo range, General MIDI programs, and how busy the parts are."""

    tempo: tuple[float, float]
    chord_programs: tuple[int, ...]
    bass_programs: tuple[int, ...]
    strum: bool  # chords struck on every beat (True) or held for the bar
    hats_per_beat: int


GENRES: dict[str, GenreStyle] = {
    "pop": GenreStyle((96, 124), (0, 4, 5), (33, 38), strum=True, hats_per_beat=2),
    "rock": GenreStyle((110, 140), (29, 30, 27), (34, 33), strum=True, hats_per_beat=2),
    "ballad": GenreStyle((66, 84), (0, 48, 89), (32, 33), strum=False, hats_per_beat=1),
    "funk": GenreStyle((98, 116), (4, 16, 27), (36, 37), strum=True, hats_per_beat=4),
    "folk": GenreStyle((84, 110), (25, 24, 21), (32, 43), strum=True, hats_per_beat=1),
}


@dataclass(frozen=True)
class Arrangement:
    """The musical choices of one song; all of it goes into the truth record."""

    genre: str
    tempo: float
    key_root: int  # pitch class, 0 = C
    mode: str
    progression: tuple[int, ...]
    chord_program: int
    bass_program: int

    @property
    def key_name(self) -> str:
        return f"{_NOTE_NAMES[self.key_root]} {self.mode}"

    def chord_pitches(self, degree: int) -> tuple[int, int, int]:
        """MIDI pitch classes offsets (root, third, fifth) of the diatonic triad on ``degree``."""
        scale = _SCALES[self.mode]
        notes = []
        for step in (0, 2, 4):
            index = degree + step
            notes.append(self.key_root + scale[index % 7] + 12 * (index // 7))
        return notes[0], notes[1], notes[2]

    def chord_names(self) -> list[str]:
        names = []
        for degree in self.progression:
            root, third, fifth = self.chord_pitches(degree)
            quality = {(4, 7): "", (3, 7): "m", (3, 6): "dim"}.get((third - root, fifth - root), "?")
            names.append(_NOTE_NAMES[root % 12] + quality)
        return names


def make_arrangement(rng: np.random.Generator, genre: str) -> Arrangement:
    """Draw tempo, key, mode, progression and instruments for ``genre``."""
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}: use one of {', '.join(GENRES)}")
    style = GENRES[genre]
    return Arrangement(
        genre=genre,
        tempo=round(float(rng.uniform(*style.tempo)), 1),
        key_root=int(rng.integers(12)),
        mode=str(rng.choice(list(_SCALES))),
        progression=_PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))],
        chord_program=int(rng.choice(style.chord_programs)),
        bass_program=int(rng.choice(style.bass_programs)),
    )


def build_midi(arrangement: Arrangement, duration: float, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """Four-four bars covering ``duration`` seconds (plus one bar), velocities humanised by ``rng``."""
    style = GENRES[arrangement.genre]
    beat = 60.0 / arrangement.tempo
    bars = int(np.ceil(duration / (4 * beat))) + 1
    midi = pretty_midi.PrettyMIDI(initial_tempo=arrangement.tempo)
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    bass = pretty_midi.Instrument(program=arrangement.bass_program, name="bass")
    chords = pretty_midi.Instrument(program=arrangement.chord_program, name="chords")

    def velocity(base: int) -> int:
        return int(np.clip(base + rng.integers(-8, 9), 1, 127))

    for bar in range(bars):
        bar_start = bar * 4 * beat
        root, third, fifth = arrangement.chord_pitches(
            arrangement.progression[bar % len(arrangement.progression)]
        )
        if bar % 8 == 0:
            drums.notes.append(pretty_midi.Note(velocity(96), _CRASH, bar_start, bar_start + beat))
        for b in range(4):
            t = bar_start + b * beat
            drums.notes.append(
                pretty_midi.Note(
                    velocity(100 if b in (0, 2) else 70), _KICK if b in (0, 2) else _SNARE, t, t + 0.1
                )
            )
            for h in range(style.hats_per_beat):
                th = t + h * beat / style.hats_per_beat
                drums.notes.append(
                    pretty_midi.Note(
                        velocity(62), _CLOSED_HAT if style.hats_per_beat > 1 else _RIDE, th, th + 0.05
                    )
                )
            bass_pitch = 36 + root % 12 + (7 if b == 2 else 0)
            bass.notes.append(pretty_midi.Note(velocity(88), bass_pitch, t, t + 0.9 * beat))
            if style.strum or b == 0:
                length = 0.9 * beat if style.strum else 3.95 * beat
                for pitch in (root, third, fifth):
                    chords.notes.append(pretty_midi.Note(velocity(68), 55 + pitch, t, t + length))
    midi.instruments.extend([drums, bass, chords])
    return midi


def fluidsynth_executable() -> str:
    """Path of the ``fluidsynth`` program; raises ``MissingToolError`` with the install command if absent."""
    path = shutil.which("fluidsynth")
    if path is None:
        raise MissingToolError(FLUIDSYNTH_MISSING)
    return path


def soundfont_path() -> Path:
    """The General MIDI soundfont bundled with ``pretty_midi``."""
    path = Path(os.path.dirname(pretty_midi.__file__)) / "TimGM6mb.sf2"
    if not path.is_file():
        raise MissingToolError(f"the soundfont {path} is missing: reinstall the `pretty-midi` package")
    return path


def render_midi(midi_path: Path, num_samples: int, *, gain: float = 0.6) -> np.ndarray:
    """Render ``midi_path`` to float32 stereo ``(num_samples, 2)`` at 44.1 kHz, cut or padded to length."""
    executable = fluidsynth_executable()
    with tempfile.TemporaryDirectory(prefix="songcorpus-fluidsynth-") as tmp:
        wav_path = os.path.join(tmp, "render.wav")
        command = [
            executable,
            "-ni",
            "-q",
            "-R",
            "0",
            "-C",
            "0",
            "-g",
            str(gain),
            "-r",
            str(SAMPLE_RATE),
            "-O",
            "float",
            "-T",
            "wav",
            "-F",
            wav_path,
            str(soundfont_path()),
            str(midi_path),
        ]
        logger.debug("rendering %s: %s", midi_path, " ".join(command))
        result = subprocess.run(command, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"fluidsynth failed ({result.returncode}) on {midi_path}: {result.stderr.strip()}"
            )
        audio, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise RuntimeError(f"fluidsynth rendered {rate} Hz instead of {SAMPLE_RATE} Hz")
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    out = np.zeros((num_samples, 2), dtype=np.float32)
    n = min(num_samples, len(audio))
    out[:n] = audio[:n, :2]
    return out
