"""Parse lyrics, plain text or real-world LRC, into the typed lines the align stage consumes.

Choices a reader should know (each repair or drop is counted in ``ParsedLyrics.notes``):

- ``[offset:+250]`` follows the LRC convention: a positive offset (ms) shows lyrics *earlier*, so every
  time becomes ``t - offset / 1000``, clamped at 0. Returned times already include it.
- Mixed LRC files: an untimed sung line after a timed one continues it (it is sung before the next
  stamp) and is appended to it; untimed lines before the first stamp are a header (title, credits) and
  are dropped.
- Square-bracket groups (and ``【】``) other than timestamps and ``[key:value]`` tags are labels or
  notes, never sung.
- Several entries at the same time keep the first sung one in file order; later ones are usually
  translations. A timed entry with nothing sung (blank, ``♪``, ``(Instrumental)``, a credit line such as
  ``作词 : …``) is a marker: it ends the line before it and is not a line itself.
- Repeat marks (``x2``, ``(repeat)``) are removed; the repeated lines are not written out again.

Everything is one pass over the lines plus a sort, so a 10 MB input costs seconds, not minutes.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import dataclass
from operator import itemgetter
from typing import Literal

from ..schemas.lyrics import LyricLine, LyricsError, LyricWord, ParsedLyrics

__all__ = ["LyricsError", "parse_lyrics", "split_words"]

MAX_LINE_CHARS = 500
MAX_RAW_LINE_CHARS = 10 * MAX_LINE_CHARS
#: Real songs have hundreds of lines; a file past this is not one song's lyrics (and would be slow).
MAX_INPUT_LINES = 20_000
MAX_CONTROL_FRACTION = 0.01
DURATION_SLACK_SECONDS = 1.0
#: Languages written without spaces between words: each of their characters is a word.
CHAR_LANGUAGES = frozenset({"zh", "cmn", "yue", "ja", "th"})

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # category Cc except \t \n \r
_TAG = re.compile(r"\s*\[([^\[\]\n]*)\]")
# A tag "looks like" a timestamp when it starts with a digit and has a colon. The part before the first
# colon excludes ':' so that the pattern cannot backtrack quadratically on hostile input.
_TIME_LIKE = re.compile(r"\d[\w.]*:[\w.:]*")
_TIME = re.compile(r"(\d{1,4}):(\d{1,2})(?:[.:](\d{1,3}))?")
_WORD_STAMP = re.compile(r"<(\s*\d[^<>\s:]*:[^<>\s]*\s*)>")
_META = re.compile(r"([A-Za-z#][\w-]{0,15})\s*:(.*)", re.DOTALL)
_OFFSET = re.compile(r"[+-]?\d{1,7}(?:\.\d+)?")
_BRACKETS = re.compile(r"\[[^\[\]]*\]|【[^【】]*】")
_MUSIC = re.compile("[♪♫♬♩🎵🎶🎼]")
_REPEAT = re.compile(r"(?<!\S)[(\[]?(?:[x×]\s?\d{1,2}|\d{1,2}\s?[x×]|repeat(?:\s+[x×]?\d{1,2}[x×]?)?)[)\]]?(?!\S)",
                     re.IGNORECASE)
_DIGIT = re.compile(r"\d")
# Section words that are never sung alone may stand bare ("Chorus"); the ambiguous ones ("Bridge",
# "Music") count as labels only in parentheses or with a colon or a number.
_STRONG = (r"pre-?chorus|post-?chorus|chorus|verse|refrain|intro|outro|interlude|instrumental|breakdown"
           r"|副歌|主歌|前奏|间奏|間奏|尾奏|纯音乐|純音樂")
_WEAK = r"bridge|hook|break|drop|rap|music|solo|coda|spoken|ad-?libs?|guitar|piano"
_WORDS = rf"(?:{_STRONG}|{_WEAK})(?:\s+(?:{_STRONG}|{_WEAK}))*"
_NUM = r"(?:\s*\d{1,2}|\s+[ivx]{1,4})?"
_LABEL = re.compile(
    rf"[(（]\s*{_WORDS}{_NUM}(?:\s*[:：-][^()（）]*)?\s*[)）]"  # (Chorus), (Verse 2: Jay-Z), （间奏）
    rf"|{_WORDS}{_NUM}\s*[:：]"  # Chorus:, Bridge 2:
    rf"|(?:{_STRONG}){_NUM}",  # Chorus, Verse 2
    re.IGNORECASE,
)
_MAX_LABEL_CHARS = 60
_CREDIT = re.compile(
    r"(?:作词|作詞|作曲|编曲|編曲|词|詞|曲|制作人|製作人|监制|監製|混音|母带|录音|和声"
    r"|lyrics|lyricist|composer|written by|composed by|music by|produced by|arranged by)\s*[:：]",
    re.IGNORECASE,
)
# Scripts written without spaces (Han, kana, Thai). Marks that belong to the character before them
# (Thai vowel signs and tones, the kana length mark and voicing marks) stay attached to it.
_SCRIPT = ("\u0e00-\u0e7f\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
           "\U00020000-\U0003134f")
_MARK = "\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u3099\u309a\u30fc"
_SCRIPT_CHARS = re.compile(f"[{_SCRIPT}]")
_CHAR_TOKEN = re.compile(f"[{_SCRIPT}][{_MARK}]*|[^\\W_{_SCRIPT}]+(?:['’-][^\\W_{_SCRIPT}]+)*")
_HAS_ALNUM = re.compile(r"[^\W_]")
_NO_ALNUM_TOKEN = re.compile(r"(?<!\S)(?:_|[^\w\s])+(?!\S)")


@dataclass(slots=True)
class _Line:
    """One input line with its timestamps (may be empty) and what is sung on it (empty: a marker).

    The copies of a line with several timestamps share this object, so an untimed continuation line is
    appended once, whatever the number of copies.
    """

    number: int
    times: list[float]
    text: str
    words: tuple[LyricWord, ...]


def parse_lyrics(text: str, *, language: str | None = None, duration: float | None = None) -> ParsedLyrics:
    """Parse ``text`` as LRC when any line starts with a timestamp tag, else as plain text.

    ``language`` (ISO code, e.g. ``zh`` or ``ja-JP``) decides how lines split into words; ``duration``
    (seconds of audio), when given, bounds every LRC time. Raises ``LyricsError``.
    """
    stats: Counter[str] = Counter()
    text = _strip_control(text.replace("\ufeff", ""), stats)
    reader = _LineReader(_is_char_language(language), stats)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if (count := text.count("\n") + 1) > MAX_INPUT_LINES:
        raise LyricsError("lyrics_too_many_lines", f"{count} lines (limit {MAX_INPUT_LINES}): "
                          "this is not the lyrics of one song")
    raw_lines = text.split("\n")
    numbered = ((number, raw) for number, raw in enumerate(raw_lines, 1) if raw and not raw.isspace())
    parsed = [p for p in (reader.read(raw, number) for number, raw in numbered) if p is not None]
    fmt: Literal["lrc", "text"]
    if any(p.times for p in parsed):
        offset = float(reader.tags.get("offset", "0")) / 1000
        lines = _assemble_lrc(parsed, offset, duration, stats)
        fmt, offset_seconds = "lrc", offset
    else:
        lines = tuple(LyricLine(p.text, None, None, p.words, p.number) for p in parsed if p.text)
        fmt, offset_seconds = "text", 0.0
    if not lines:
        raise LyricsError("lyrics_no_lines", "nothing sung is left once tags, labels and blank lines are removed")
    return ParsedLyrics(fmt, lines, reader.tags, offset_seconds, _notes(stats))


def split_words(text: str, language: str | None) -> tuple[str, ...]:
    """Split a cleaned line into words.

    Languages without spaces (zh, ja, th), and text that is mostly Han/kana/Thai, give one word per
    character of those scripts (what character-level CTC alignment needs; Thai vowel and tone marks stay
    on their consonant); runs of other letters stay whole words, without punctuation. Everything else
    splits on whitespace. Tokens with no letter or digit are dropped.
    """
    return tuple(_tokens(text, _char_mode(text, _is_char_language(language))))


def _is_char_language(language: str | None) -> bool:
    if not language:
        return False
    return re.split(r"[-_]", language.lower(), maxsplit=1)[0] in CHAR_LANGUAGES


def _char_mode(text: str, char_language: bool) -> bool:
    if char_language:
        return True
    if text.isascii():
        return False
    script = len(_SCRIPT_CHARS.findall(text))
    return 2 * script > len(text) - text.count(" ")


def _tokens(text: str, char_mode: bool) -> list[str]:
    if char_mode:
        return [t for t in _CHAR_TOKEN.findall(text) if _HAS_ALNUM.search(t)]
    if _NO_ALNUM_TOKEN.search(text) is None:  # the common case, checked in one pass
        return text.split()
    return [t for t in text.split() if _HAS_ALNUM.search(t)]


def _strip_control(text: str, stats: Counter[str]) -> str:
    """Remove stray control characters; too many of them means the file is not text at all."""
    first = _CONTROL.search(text)
    if first is None:
        return text
    cleaned, count = _CONTROL.subn("", text)
    if count > MAX_CONTROL_FRACTION * len(text):
        line = text.count("\n", 0, first.start()) + 1
        raise LyricsError("lyrics_binary", f"{count} of {len(text)} characters are control characters: "
                          "this is binary data, not a lyrics text file", line)
    stats["control"] += count
    return cleaned


class _LineReader:
    """Reads one input line at a time, collecting metadata tags and counts for the notes."""

    def __init__(self, char_language: bool, stats: Counter[str]) -> None:
        self.char_language = char_language
        self.stats = stats
        self.tags: dict[str, str] = {}
        # Untimed words are frozen, so one object per distinct word serves the whole file.
        self._untimed_word = functools.cache(LyricWord)

    def read(self, raw: str, number: int) -> _Line | None:
        """Read the leading ``[..]`` tags (timestamps, metadata), then clean what follows.

        None when the line has neither a timestamp nor anything sung (a tag, a label, a blank).
        """
        if len(raw) > MAX_RAW_LINE_CHARS:  # bounds the work per line, timestamps and word stamps included
            raise LyricsError("lyrics_line_too_long", f"{len(raw)} characters in one line (limit "
                              f"{MAX_RAW_LINE_CHARS} with its timestamps)", number)
        pos, times = 0, []
        while (m := _TAG.match(raw, pos)) is not None:
            content = m.group(1).strip()
            if _TIME_LIKE.fullmatch(content):
                times.append(_parse_time(content, number))
            elif not times and (meta := _META.fullmatch(content)) and not _LABEL.fullmatch(f"{meta.group(1)}:"):
                self._tag(meta.group(1).lower(), meta.group(2).strip(), number)
            else:
                break
            pos = m.end()
        rest = raw[pos:]
        text, words = self._clean(rest, number) if rest and not rest.isspace() else ("", ())
        return _Line(number, times, text, words) if times or text else None

    def _tag(self, key: str, value: str, number: int) -> None:
        if key == "offset" and not _OFFSET.fullmatch(value):
            raise LyricsError("lrc_bad_offset", f"[offset:{value[:40]}] is not a number of milliseconds; "
                              "write e.g. [offset:+250]", number)
        self.tags[key] = value

    def _clean(self, rest: str, number: int) -> tuple[str, tuple[LyricWord, ...]]:
        """The sung text of a line and its words (timed by ``<mm:ss.xx>`` stamps where present)."""
        if "[" in rest or "【" in rest:
            rest = _BRACKETS.sub(" ", rest)
        rest = _MUSIC.sub(" ", rest)
        parts = _WORD_STAMP.split(rest) if "<" in rest else [rest]  # text, stamp, text, stamp, text, ...
        for i in range(0, len(parts), 2):
            if _DIGIT.search(parts[i]) or "repeat" in parts[i].lower():  # cheap test: most lines have neither
                parts[i], repeats = _REPEAT.subn(" ", parts[i])
                self.stats["repeat"] += repeats
        text = " ".join("".join(parts[::2]).split())
        if len(text) > MAX_LINE_CHARS:
            raise LyricsError("lyrics_line_too_long", f"{len(text)} characters in one line (limit "
                              f"{MAX_LINE_CHARS}): put one sung line per line", number)
        if len(text) <= _MAX_LABEL_CHARS and _LABEL.fullmatch(text):
            return "", ()
        if _CREDIT.match(text):
            self.stats["credit"] += 1
            return "", ()
        char_mode = _char_mode(text, self.char_language)
        words: list[LyricWord] = []
        for i in range(0, len(parts), 2):
            tokens = _tokens(parts[i], char_mode)
            start = _parse_time(parts[i - 1], number, "<>") if i else None
            if start is not None and tokens:  # a stamp times only the word right after it
                words.append(LyricWord(tokens.pop(0), start))
            words.extend(map(self._untimed_word, tokens))
        return text, tuple(words)


def _parse_time(stamp: str, line: int, brackets: str = "[]") -> float:
    """``mm:ss``, ``mm:ss.x``/``.xx``/``.xxx`` or ``mm:ss:xx`` to seconds; minutes may exceed 59."""
    m = _TIME.fullmatch(stamp.strip())
    if m is None or int(m.group(2)) >= 60:
        raise LyricsError("lrc_bad_timestamp", f"{brackets[0]}{stamp.strip()[:40]}{brackets[1]} is not a "
                          "timestamp; write [mm:ss.xx] with seconds below 60", line)
    fraction = m.group(3) or ""
    return int(m.group(1)) * 60 + int(m.group(2)) + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def _assemble_lrc(parsed: list[_Line], offset: float, duration: float | None,
                  stats: Counter[str]) -> tuple[LyricLine, ...]:
    """Timed entries in time order, the offset applied, each line ended by the next entry."""
    entries = _first_at_each_time(sorted(_timed_entries(parsed, stats), key=itemgetter(0)), stats)
    starts = [_shift(t, offset, stats) for t, _ in entries]
    limit = math.inf if duration is None else duration + DURATION_SLACK_SECONDS
    lines: list[LyricLine] = []
    late: list[tuple[int, float]] = []  # (input line, time) of every time past the end of the audio
    for i, (start, line) in enumerate(entries):
        words = _place_words(line, start - line.times[0] - offset, stats)
        late.extend((line.number, t) for t in (starts[i], *(w.start for w in words)) if t is not None and t > limit)
        if line.text:
            lines.append(LyricLine(line.text, starts[i], starts[i + 1] if i + 1 < len(starts) else None,
                                   words, line.number))
    if late:
        number, t = min(late)
        raise LyricsError("lrc_time_beyond_audio", f"time {t:.2f} s is past the end of the audio "
                          f"({duration:.2f} s): these lyrics belong to another recording or edit", number)
    return tuple(lines)


def _timed_entries(parsed: list[_Line], stats: Counter[str]) -> list[tuple[float, _Line]]:
    """One (time, line) per timestamp; untimed sung lines join the timed line before them."""
    entries: list[tuple[float, _Line]] = []
    current: _Line | None = None
    latest = -math.inf
    for p in parsed:
        if p.times:
            stats["unsorted"] += int(p.times[0] < latest)
            latest = max(latest, p.times[0])
            entries.extend((t, p) for t in p.times)
            if len(entries) > MAX_INPUT_LINES:
                raise LyricsError("lyrics_too_many_lines", f"more than {MAX_INPUT_LINES} timed entries: "
                                  "this is not the lyrics of one song", p.number)
            current = p
        elif current is None:
            stats["header"] += 1
        else:
            stats["attached"] += 1
            current.text = f"{current.text} {p.text}".strip()
            if len(current.text) > MAX_LINE_CHARS:  # also keeps appending linear
                raise LyricsError("lyrics_line_too_long", f"untimed lines joined to line {current.number} "
                                  f"make it longer than {MAX_LINE_CHARS} characters", p.number)
            current.words += p.words  # bounded by the length check above
    return entries


def _first_at_each_time(entries: list[tuple[float, _Line]], stats: Counter[str]) -> list[tuple[float, _Line]]:
    """Of entries sharing a start time keep the first sung one (a marker only when nothing is sung)."""
    kept: list[tuple[float, _Line]] = []
    for entry in entries:
        if kept and kept[-1][0] == entry[0]:
            if entry[1].text and not kept[-1][1].text:
                kept[-1] = entry
            elif entry[1].text:
                stats["same_time"] += 1
            continue
        kept.append(entry)
    return kept


def _place_words(line: _Line, delta: float, stats: Counter[str]) -> tuple[LyricWord, ...]:
    """Word stamps are written for the line's first timestamp; a repeat of the line moves them along."""
    if not delta:
        return line.words
    return tuple(w if w.start is None else LyricWord(w.text, _shift(w.start, -delta, stats)) for w in line.words)


def _shift(t: float, offset: float, stats: Counter[str]) -> float:
    if t - offset < 0:
        stats["clamped"] += 1
        return 0.0
    return t - offset


_NOTES = {
    "control": "{} control characters were removed",
    "repeat": "{} repeat marks (x2, (repeat)) were removed; the repeated lines are not written out again",
    "credit": "{} credit lines (作词 : …, Written by: …) were removed",
    "header": "{} untimed lines before the first timestamp were dropped as a header",
    "attached": "{} untimed lines were appended to the timed line before them",
    "unsorted": "{} lines were out of time order and were sorted",
    "same_time": "{} lines had the same time as an earlier line and were dropped (usually translations)",
    "clamped": "{} times fell before 0 s once the offset was applied and were set to 0",
}


def _notes(stats: Counter[str]) -> tuple[str, ...]:
    return tuple(template.format(stats[key]) for key, template in _NOTES.items() if stats[key])
