"""Byte-reproducible, atomic file writers for the synthetic corpus.

Every file goes to a temp file beside its target and is moved into place with ``os.replace``, so
a crashed run never leaves a half-written file under a final name. Encoders are pinned to a
subtype and, for Ogg, to a stream serial number, so the same signal always gives the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

# Mixture formats: (libsndfile format, subtype). 16-bit like most real releases.
AUDIO_FORMATS: dict[str, tuple[str, str | None]] = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "ogg": ("OGG", "VORBIS"),
}


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


WRITE_BLOCK_FRAMES = 65536


def encode_audio(
    audio: np.ndarray, sample_rate: int, fmt: str, *, subtype: str | None = None, stream_serial: int = 1
) -> bytes:
    """Encode float audio ``(samples, channels)`` as ``fmt`` (a key of ``AUDIO_FORMATS``).

    libsndfile picks a random Ogg stream serial number on every write; it is overwritten with
    ``stream_serial`` so that Ogg files are reproducible too.
    """
    if fmt not in AUDIO_FORMATS:
        raise ValueError(f"unsupported audio format {fmt!r}: use one of {', '.join(AUDIO_FORMATS)}")
    container, default_subtype = AUDIO_FORMATS[fmt]
    buffer = io.BytesIO()
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    with sf.SoundFile(
        buffer, "w", sample_rate, channels, format=container, subtype=subtype or default_subtype
    ) as out:
        # libsndfile's Vorbis encoder crashes on one long write (~50 s and up); blocks are safe.
        for start in range(0, len(audio), WRITE_BLOCK_FRAMES):
            out.write(audio[start : start + WRITE_BLOCK_FRAMES])
    data = buffer.getvalue()
    return set_ogg_serial(data, stream_serial) if container == "OGG" else data


@functools.cache
def _ogg_crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


def _ogg_crc(page: bytes) -> int:
    """CRC-32 of an Ogg page (polynomial 0x04C11DB7, not reflected, zero init)."""
    table, crc = _ogg_crc_table(), 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def set_ogg_serial(data: bytes, serial: int) -> bytes:
    """Rewrite the stream serial number of every page of a single-stream Ogg file, fixing CRCs."""
    out = bytearray(data)
    offset = 0
    while offset < len(out):
        if out[offset : offset + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {offset}")
        segments = out[offset + 26]
        body = sum(out[offset + 27 : offset + 27 + segments])
        end = offset + 27 + segments + body
        out[offset + 14 : offset + 18] = (serial & 0xFFFFFFFF).to_bytes(4, "little")
        out[offset + 22 : offset + 26] = b"\0\0\0\0"
        out[offset + 22 : offset + 26] = _ogg_crc(bytes(out[offset:end])).to_bytes(4, "little")
        offset = end
    return bytes(out)


def format_lrc_time(seconds: float) -> str:
    """``[mm:ss.xx]`` rounded to the nearest centisecond."""
    centis = round(seconds * 100)
    minutes, centis = divmod(centis, 6000)
    return f"[{minutes:02d}:{centis // 100:02d}.{centis % 100:02d}]"


def format_lrc(artist: str, title: str, lines: list[tuple[float, str]]) -> str:
    """An LRC file: ``[ar:]`` and ``[ti:]`` tags, then one timed line per (start seconds, text)."""
    rows = [f"[ar:{artist}]", f"[ti:{title}]", "[by:songcorpus synth]"]
    rows += [f"{format_lrc_time(start)}{text}" for start, text in lines]
    return "\n".join(rows) + "\n"
