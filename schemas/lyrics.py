"""Typed records of parsed lyrics (the input of the align stage) and the error a bad lyrics file raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: The CTC vocabulary of the aligners this project builds (the small trained one and the random smoke one):
#: wav2vec2's specials (``<pad>`` is CTC's blank, ``|`` separates words), then the Latin letters, the accented
#: ones of the synthetic corpus' languages, and the apostrophe. A token's id is its place here.
ALIGNER_SPECIALS = ("<pad>", "<s>", "</s>", "<unk>", "|")
ALIGNER_VOCABULARY: tuple[str, ...] = (*ALIGNER_SPECIALS, *"abcdefghijklmnopqrstuvwxyz'áéíóúñüäöß")


@dataclass(frozen=True, slots=True)
class LyricWord:
    """One sung word; ``start`` (seconds) comes from an enhanced-LRC ``<mm:ss.xx>`` word stamp."""

    text: str
    start: float | None = None


@dataclass(frozen=True, slots=True)
class LyricLine:
    """One sung line, cleaned of timestamps, section labels and repeat marks."""

    text: str
    start: float | None  # seconds (LRC); None for plain text
    end: float | None  # LRC: start of the next timed entry (line or instrumental marker); None if unknown
    words: tuple[LyricWord, ...]
    source_line: int  # 1-based line number in the input


@dataclass(frozen=True)
class ParsedLyrics:
    """A whole lyrics file. Every time in ``lines`` already has ``offset_seconds`` applied."""

    format: Literal["lrc", "text"]
    lines: tuple[LyricLine, ...]  # time order for LRC, file order for text
    tags: dict[str, str]  # LRC metadata (ar, ti, al, by, length, offset, ...), lower-cased keys
    offset_seconds: float  # from [offset:+ms]; positive means lyrics were shown earlier
    notes: tuple[str, ...]  # what the parser repaired or dropped, for humans


class LyricsError(ValueError):
    """Lyrics that cannot be used: ``reason`` is machine-readable, ``message`` says what to fix.

    ``line`` is the 1-based input line at fault, or None when the problem is the whole file.
    """

    def __init__(self, reason: str, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.reason = reason
        self.message = message
        self.line = line
