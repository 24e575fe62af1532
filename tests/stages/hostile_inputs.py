"""A hostile input set, written by the tests: every case and the outcome it must get."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 44100


def _song(seconds: float, freq: float, rate: int = RATE, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.2 * np.sin(2 * np.pi * 0.5 * t))
    return np.repeat(mono[:, None].astype(np.float32), channels, axis=1)


def _encode(audio: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _corrupt(data: bytes, seed: int) -> bytes:
    """Overwrite a stretch in the middle with noise, leaving the header intact."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    start = len(data) // 3
    out[start : start + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    return bytes(out)


def write_hostile_set(folder: Path) -> tuple[list[dict], dict[str, tuple[str, str]]]:
    """Write the files; return manifest rows and, per item id, the expected (stage, reason or 'ok')."""
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    expected: dict[str, tuple[str, str]] = {}
    lyrics = folder / "lyrics.txt"
    lyrics.write_text("a line\nanother line\n", encoding="utf-8")

    def add(name: str, data: bytes | None, outcome: tuple[str, str], lyrics_path: str = "lyrics.txt",
            audio_path: str | None = None) -> None:
        if data is not None:
            (folder / name).write_bytes(data)
        rows.append({"audio_path": audio_path or name, "lyrics_path": lyrics_path, "song_id": name.replace(".", "_")})
        expected[name.replace(".", "_")] = outcome

    freq = iter(range(200, 2000, 37))
    for fmt, ext in (("WAV", "wav"), ("FLAC", "flac"), ("MP3", "mp3"), ("OGG", "ogg")):
        good = _encode(_song(8, next(freq)), RATE, fmt)
        add(f"good.{ext}", good, ("standardize", "ok"))
        add(f"garbage.{ext}", np.random.default_rng(1).integers(0, 256, 6000, dtype=np.uint8).tobytes(),
            ("ingest", "unreadable_audio"))
    # Truncated files: the header still declares the full length (WAV data chunk, FLAC STREAMINFO,
    # MP3 Xing frame count), so the short decode is caught.
    def cut(data: bytes) -> bytes:
        return data[: len(data) * 4 // 10]

    add("truncated.wav", cut(_encode(_song(8, next(freq)), RATE, "WAV")), ("standardize", "truncated_audio"))
    add("truncated.flac", cut(_encode(_song(8, next(freq)), RATE, "FLAC")), ("standardize", "decode_error"))
    add("truncated.mp3", cut(_encode(_song(8, next(freq)), RATE, "MP3")), ("standardize", "truncated_audio"))
    # Ogg declares no length; a cut Ogg is a shorter, valid song.
    add("truncated.ogg", cut(_encode(_song(20, next(freq)), RATE, "OGG")), ("standardize", "ok"))
    add("corrupt.mp3", _corrupt(_encode(_song(8, next(freq)), RATE, "MP3"), 2), ("standardize", "decode_error"))
    add("corrupt.flac", _corrupt(_encode(_song(8, next(freq)), RATE, "FLAC"), 3), ("standardize", "truncated_audio"))
    add("zero.wav", b"", ("ingest", "empty_audio_file"))
    add("six_channel.wav", _encode(_song(6, next(freq), channels=6), RATE, "WAV"), ("standardize", "ok"))
    add("hires_96k_24bit.wav", _encode(_song(6, next(freq), rate=96000), 96000, "WAV", "PCM_24"),
        ("standardize", "ok"))
    add("mono_8k.wav", _encode(_song(6, next(freq), rate=8000, channels=1), 8000, "WAV"), ("standardize", "ok"))
    hour = np.zeros((8000 * 3600, 1), dtype=np.float32)
    hour[::400] = 0.2  # not digital silence, so it is "long", not "silent"
    add("one_hour.flac", _encode(hour, 8000, "FLAC"), ("standardize", "too_long"))
    nan = _song(6, next(freq))
    nan[1000:1100] = np.nan
    add("nan.wav", _encode(nan, RATE, "WAV", "FLOAT"), ("standardize", "non_finite_samples"))
    add("silent.wav", _encode(np.zeros((RATE * 6, 2), np.float32), RATE, "WAV"), ("standardize", "silent_audio"))
    add("short.wav", _encode(_song(0.5, next(freq)), RATE, "WAV"), ("standardize", "too_short"))
    (folder / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    add("bad_lyrics.wav", _encode(_song(6, next(freq)), RATE, "WAV"), ("ingest", "lyrics_not_utf8"),
        lyrics_path="latin1.txt")
    (folder / "empty.txt").write_text("  \n\n", encoding="utf-8")
    add("empty_lyrics.wav", _encode(_song(6, next(freq)), RATE, "WAV"), ("ingest", "empty_lyrics"),
        lyrics_path="empty.txt")
    add("no_lyrics_file.wav", _encode(_song(6, next(freq)), RATE, "WAV"), ("ingest", "missing_lyrics_file"),
        lyrics_path="nope.txt")
    add("missing.wav", None, ("ingest", "missing_audio_file"))
    add("escape.wav", None, ("ingest", "audio_outside_input_root"), audio_path="../../etc/hostname")
    add("escape_lyrics.wav", _encode(_song(6, next(freq)), RATE, "WAV"), ("ingest", "lyrics_outside_input_root"),
        lyrics_path="../outside.txt")
    # the same file listed twice under another id: the first row wins
    rows.append({"audio_path": "good.wav", "lyrics_path": "lyrics.txt", "song_id": "good_wav_again"})
    expected["good_wav_again"] = ("ingest", "duplicate_audio")
    return rows, expected
