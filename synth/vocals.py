"""A singing-ish voice from espeak-ng, with the true start and end time of every word.

espeak-ng's C library (shipped in the ``espeakng_loader`` wheel) is driven through ctypes in
synchronous mode: the synth callback hands over int16 samples at 22050 Hz together with WORD
events that carry each word's position in the audio. A line is rendered in one call, trimmed of
its leading and trailing silence, given a light vibrato and resampled to 44100 Hz.

espeak-ng keeps state in C statics that carry from one utterance to the next (the phase of its
pitch "flutter", among others), so the same line sounds slightly different depending on what was
spoken before it in the process. To make a line a pure function of its text and voice, each
render loads the library afresh and unloads it (``dlclose``) afterwards, which costs ~4 ms. The
library is not thread-safe and every load of one path shares those statics, so every render holds
``_LOCK``.
"""

from __future__ import annotations

import _ctypes
import ctypes
import functools
import itertools
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

logger = logging.getLogger(__name__)

SAMPLE_RATE = 44100
ESPEAK_RATE = 22050

# espeak_AUDIO_OUTPUT, espeak_EVENT_TYPE, espeak_PARAMETER and flag values from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4

_BASE_VOICES: dict[str, tuple[str, ...]] = {"en": ("en-us", "en"), "es": ("es", "es-419"), "de": ("de",)}
# Variants whose files set neither ``breath`` nor ``klatt``. Those two draw noise from espeak-ng's own
# generator, which espeak_Initialize seeds from the clock (``espeak_srand(time(NULL))``, a symbol the
# library does not export): a breathy +f2 or +f3 line came out different in every process.
_VARIANTS = ("", "+f1", "+f4", "+linda", "+m1", "+m2", "+m3", "+m4")
# Samples quieter than this (int16) count as silence when trimming a line (-40 dBFS).
_SILENCE_THRESHOLD = 328
# Vibrato depth is kept small enough that no sample moves by more than ~1.5 ms.
_MAX_VIBRATO_CENTS = 60.0

_LOCK = threading.Lock()


@dataclass(frozen=True)
class VoiceSpec:
    """An espeak-ng voice name (``en-us+f3``) and its speaking parameters.

    ``pitch`` is espeak's base pitch 0..99, ``pitch_range`` its intonation range 0..99 (low values
    sound more like a held note), ``rate`` words per minute.
    """

    name: str
    pitch: int = 50
    pitch_range: int = 20
    rate: int = 140


@dataclass(frozen=True)
class WordTiming:
    """A word and its time span in seconds, relative to the start of its line's audio."""

    word: str
    start: float
    end: float


@dataclass(frozen=True)
class RenderedLine:
    """Mono float32 audio at ``SAMPLE_RATE`` holding exactly the audible part of one line."""

    text: str
    audio: np.ndarray
    words: tuple[WordTiming, ...]

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Espeak:
    """One freshly loaded copy of the library plus the buffers its callback fills; ``close`` unloads it."""

    def __init__(self) -> None:
        library_path, self.data_path = _espeak_paths()
        lib = ctypes.CDLL(library_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        self.lib = lib
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(), _INITIALIZE_DONT_EXIT
        )
        if rate != ESPEAK_RATE:
            self.close()
            raise RuntimeError(f"espeak-ng failed to initialise from {self.data_path} (returned {rate})")
        self.chunks: list[np.ndarray] = []
        self.word_events: list[tuple[int, int]] = []
        self.callback = _SynthCallback(self._on_audio)  # kept referenced: the library holds it
        lib.espeak_SetSynthCallback(self.callback)

    def close(self) -> None:
        """Terminate and unload, so that the next load starts from the library's initial state."""
        self.lib.espeak_Terminate()
        handle = self.lib._handle
        del self.lib
        _ctypes.dlclose(handle)

    def _on_audio(self, wav: Any, count: int, events: Any) -> int:
        if wav and count > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:
                self.word_events.append((events[i].text_position, events[i].audio_position))
            i += 1
        return 0

    def synth(self, text: str, voice: VoiceSpec) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Int16 samples and (1-based character position, milliseconds) of each WORD event."""
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice.name!r} in {self.data_path}")
        for parameter, value in (
            (_PARAM_RATE, voice.rate),
            (_PARAM_VOLUME, 100),
            (_PARAM_PITCH, voice.pitch),
            (_PARAM_RANGE, voice.pitch_range),
        ):
            self.lib.espeak_SetParameter(parameter, int(value), 0)
        data = text.encode("utf-8") + b"\0"
        status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        return samples, list(self.word_events)


@functools.cache
def _espeak_paths() -> tuple[str, Path]:
    """The library file and data directory shipped in the ``espeakng_loader`` wheel."""
    try:
        import espeakng_loader
    except ImportError as exc:
        raise ImportError("espeak-ng is missing: install the `espeakng-loader` package") from exc
    return espeakng_loader.get_library_path(), Path(espeakng_loader.get_data_path())


def _synthesise(text: str, voice: VoiceSpec) -> tuple[np.ndarray, list[tuple[int, int]]]:
    with _LOCK:
        engine = _Espeak()
        try:
            return engine.synth(text, voice)
        finally:
            engine.close()


def available_voices(language: str) -> tuple[str, ...]:
    """espeak-ng voice names for ``language``, each base voice with the variants in the data dir."""
    if language not in _BASE_VOICES:
        raise ValueError(
            f"no espeak-ng voices configured for {language!r}: use one of {', '.join(_BASE_VOICES)}"
        )
    variants_dir = _espeak_paths()[1] / "voices" / "!v"
    present = [v for v in _VARIANTS if not v or (variants_dir / v[1:]).is_file()]
    return tuple(base + variant for base in _BASE_VOICES[language] for variant in present)


def _word_starts(text: str, words: list[str], events: list[tuple[int, int]]) -> list[int]:
    """Start sample (at ``ESPEAK_RATE``) of each word, from the first WORD event inside it."""
    char_starts, position = [], 1
    for word in words:
        position = text.index(word, position - 1) + 1
        char_starts.append(position)
        position += len(word)
    starts: list[int | None] = [None] * len(words)
    for text_position, milliseconds in events:
        index = int(np.searchsorted(char_starts, text_position, side="right")) - 1
        if index >= 0 and starts[index] is None:
            starts[index] = round(milliseconds * ESPEAK_RATE / 1000)
    missing = [word for word, start in zip(words, starts, strict=True) if start is None]
    if missing:
        raise RuntimeError(f"espeak-ng gave no word event for {missing} in {text!r}")
    return [int(start) for start in starts]  # type: ignore[arg-type]


def _vibrato(audio: np.ndarray, rate_hz: float, depth_cents: float) -> np.ndarray:
    """Periodic pitch modulation through a modulated delay of at most ~1.5 ms.

    The delay starts at zero and never exceeds ``depth``, so word times move by less than that:
    far below what any aligner resolves, which keeps the recorded truth exact for our purposes.
    """
    if depth_cents <= 0 or len(audio) == 0:
        return audio
    depth_cents = min(depth_cents, _MAX_VIBRATO_CENTS)
    ratio = 2 ** (depth_cents / 1200) - 1
    depth = ratio * SAMPLE_RATE / (np.pi * rate_hz)  # peak delay in samples
    n = np.arange(len(audio), dtype=np.float64)
    delay = depth * (1 - np.cos(2 * np.pi * rate_hz * n / SAMPLE_RATE)) / 2
    return np.interp(n - delay, n, audio).astype(np.float32)


def render_line(
    text: str, voice: VoiceSpec, *, vibrato_hz: float = 5.5, vibrato_cents: float = 40.0
) -> RenderedLine:
    """Sing ``text`` with ``voice``; word times are relative to the first audible sample.

    Each word starts at its WORD event and ends where the next word starts; the last word ends at
    the last audible sample. The returned audio is exactly the audible span, so a caller that
    places it at a known offset knows the vocal's true start and end.
    """
    words = text.split()
    if not words:
        raise ValueError("cannot sing an empty line")
    samples, events = _synthesise(text, voice)
    audible = np.flatnonzero(np.abs(samples.astype(np.int32)) > _SILENCE_THRESHOLD)
    if len(audible) == 0:
        raise RuntimeError(f"espeak-ng rendered silence for {text!r} with voice {voice.name!r}")
    first, last = int(audible[0]), int(audible[-1]) + 1
    starts = [min(max(start - first, 0), last - first) for start in _word_starts(text, words, events)]
    bounds = [*starts, last - first]
    if any(b <= a for a, b in itertools.pairwise(bounds)):
        raise RuntimeError(f"espeak-ng word events are not increasing for {text!r}: {bounds}")

    factor = SAMPLE_RATE // ESPEAK_RATE
    audio = resample_poly(samples[first:last].astype(np.float64) / 32768.0, factor, 1).astype(np.float32)
    audio = _vibrato(audio, vibrato_hz, vibrato_cents)
    timings = tuple(
        WordTiming(word, bounds[i] * factor / SAMPLE_RATE, bounds[i + 1] * factor / SAMPLE_RATE)
        for i, word in enumerate(words)
    )
    logger.debug("sang %r with %s: %.2f s, %d words", text, voice, len(audio) / SAMPLE_RATE, len(words))
    return RenderedLine(text=text, audio=audio, words=timings)
