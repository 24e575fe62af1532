"""Generated lyric text: verses and a repeated chorus, from small built-in word lists.

The words are ordinary lowercase dictionary words that espeak-ng reads as exactly one word each
(no digits, hyphens or apostrophes), so every word gets its own timing event when sung.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


WORDS: dict[str, tuple[str, ...]] = {
    "en": _words(
        """
        love heart night light dream fire rain road home sky river golden morning shadow silver summer
        ocean window city dance hold fall run sing shine burn wait fly stay find remember forever
        tonight never always slowly again together the my your we you and in under over through with
        little wild blue bright cold sweet lonely broken open free stars eyes hands voices waves
        """
    ),
    "es": _words(
        """
        amor corazón noche luz sueño fuego lluvia camino casa cielo río dorado mañana sombra plata
        verano mar ventana ciudad bailar sentir caer correr cantar brillar esperar volar quedar siempre
        nunca juntos despacio otra vez el la mi tu nosotros y en bajo sobre con pequeño salvaje azul
        frío dulce solo libre estrellas ojos manos voces olas luna alma
        """
    ),
    "de": _words(
        """
        liebe herz nacht licht traum feuer regen straße haus himmel fluss golden morgen schatten silber
        sommer meer fenster stadt tanzen halten fallen laufen singen leuchten warten fliegen bleiben
        immer niemals heute langsam wieder zusammen die der mein dein wir du und unter über durch mit
        klein wild blau hell kalt süß allein frei sterne augen hände stimmen wellen
        """
    ),
}

SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(WORDS)


@dataclass(frozen=True)
class LyricLine:
    """One line of a song. Lines with the same ``phrase`` are the same sung phrase (a chorus repeat)."""

    text: str
    section: str
    phrase: int

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.text.split())


def check_language(language: str) -> None:
    """Raise ``ValueError`` naming the supported languages when ``language`` is not one of them."""
    if language not in WORDS:
        raise ValueError(
            f"unsupported lyrics language {language!r}: use one of {', '.join(SUPPORTED_LANGUAGES)}"
        )


def make_line(rng: np.random.Generator, language: str, *, min_words: int = 3, max_words: int = 8) -> str:
    """A line of ``min_words``..``max_words`` words; no word repeats twice in a row."""
    check_language(language)
    vocabulary = WORDS[language]
    count = int(rng.integers(min_words, max_words + 1))
    words: list[str] = []
    while len(words) < count:
        word = vocabulary[int(rng.integers(len(vocabulary)))]
        if not words or word != words[-1]:
            words.append(word)
    return " ".join(words)


def make_lyrics(rng: np.random.Generator, language: str, *, max_lines: int = 12) -> list[LyricLine]:
    """Lines in song order: verse, chorus, verse, chorus, and a bridge plus last chorus if room.

    The chorus is written once and repeated verbatim; the caller may use fewer lines than returned
    (a short song stops early), so the order matters more than the count.
    """
    check_language(language)
    chorus = [make_line(rng, language) for _ in range(int(rng.integers(2, 4)))]
    sections: list[tuple[str, list[str]]] = []
    for verse in range(2):
        sections.append(
            (f"verse{verse + 1}", [make_line(rng, language) for _ in range(int(rng.integers(2, 4)))])
        )
        sections.append(("chorus", chorus))
    sections.append(("bridge", [make_line(rng, language) for _ in range(int(rng.integers(1, 3)))]))
    sections.append(("chorus", chorus))

    lines: list[LyricLine] = []
    phrases: dict[str, int] = {}
    for section, texts in sections:
        for text in texts:
            phrase = phrases.setdefault(f"{section}:{text}", len(phrases))
            lines.append(LyricLine(text=text, section=section, phrase=phrase))
    return lines[:max_lines]


def make_title(rng: np.random.Generator, lines: list[LyricLine]) -> str:
    """A title taken from the start of the chorus (or the first line), in title case."""
    if not lines:
        raise ValueError("cannot title a song without lyric lines")
    source = next((line for line in lines if line.section == "chorus"), lines[0])
    words = source.words[: int(rng.integers(2, 5))]
    return " ".join(word.capitalize() for word in words)
