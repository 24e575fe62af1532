"""Artists: each sings a run of consecutive songs in one language, voice and genre.

Songs of one artist share a group key (the artist name), which is what a group-aware train/test
split needs to see; the names are distinct across the artists of one seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from songcorpus.synth import accompaniment, vocals

SONGS_PER_ARTIST = 3
_FIRST_NAMES = ("Mara", "Jonah", "Lucia", "Theo", "Ines", "Oskar", "Nadia", "Felix")
_LAST_NAMES = ("Ellison", "Vega", "Hartmann", "Reyes", "Calloway", "Brandt", "Moreno", "Sterling",
               "Okafor", "Lindqvist", "Navarro", "Whitlock", "Fischer", "Serrano", "Ashby", "Keller")  # fmt: skip


@dataclass(frozen=True)
class Artist:
    """An artist's name, lyric language, espeak-ng voice and its parameters, and genre."""

    name: str
    language: str
    voice: str
    pitch: int
    pitch_range: int
    rate: int
    genre: str


def artist_name(seed: int, artist_index: int) -> str:
    """A first and last name, distinct for every artist index of one seed."""
    combos = len(_FIRST_NAMES) * len(_LAST_NAMES)
    code = (artist_index * 7919 + seed) % combos  # 7919 is coprime with combos: a bijection per seed
    name = f"{_FIRST_NAMES[code // len(_LAST_NAMES)]} {_LAST_NAMES[code % len(_LAST_NAMES)]}"
    return name if artist_index < combos else f"{name} {artist_index // combos + 1}"


def make_artist(seed: int, artist_index: int, languages: tuple[str, ...]) -> Artist:
    """Artist ``artist_index`` of ``seed``; languages are dealt to artists in turn."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, artist_index)))
    language = languages[artist_index % len(languages)]
    voices = vocals.available_voices(language)
    return Artist(
        name=artist_name(seed, artist_index),
        language=language,
        voice=voices[int(rng.integers(len(voices)))],
        pitch=int(rng.integers(35, 66)),
        pitch_range=int(rng.integers(5, 26)),
        rate=int(rng.integers(115, 161)),
        genre=str(rng.choice(list(accompaniment.GENRES))),
    )
