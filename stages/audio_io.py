"""Audio probing and decoding through FFmpeg's libraries (PyAV), plus FLAC encoding.

PyAV ships FFmpeg inside its wheel, so every format FFmpeg reads decodes without a system FFmpeg.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import av
import numpy as np
import soundfile as sf

from ..pipeline.stage import Reject


@dataclass(frozen=True)
class Probe:
    codec: str
    container: str
    sample_rate: int
    channels: int
    duration: float | None
    bit_depth: str


def wav_declared_seconds(data: bytes) -> float | None:
    """Duration a RIFF/WAVE header declares in its ``data`` chunk.

    FFmpeg derives a WAV's duration from the bytes present, so a cut-off WAV looks complete to it;
    the header still says how long the file was meant to be.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, rate, align = 12, 0, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"fmt " and pos + 20 <= len(data):
            rate = struct.unpack("<I", data[pos + 12 : pos + 16])[0]
            align = struct.unpack("<H", data[pos + 20 : pos + 22])[0]
        elif chunk == b"data":
            return size / (rate * align) if rate and align and size < 0xFFFFFFFF else None
        pos += 8 + size + (size & 1)
    return None


def probe_audio(data: bytes) -> Probe:
    """Read container headers; raise :class:`Reject` if FFmpeg cannot open it or it has no audio."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            streams = container.streams.audio
            if not streams:
                raise Reject("no_audio_stream", "the file has no audio stream")
            stream = streams[0]
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            if container.format.name == "wav":
                duration = wav_declared_seconds(data) or duration
            return Probe(
                codec=stream.codec_context.name,
                container=container.format.name,
                sample_rate=int(stream.codec_context.sample_rate or 0),
                channels=int(stream.codec_context.channels or 0),
                duration=duration,
                bit_depth=str(stream.codec_context.format.name if stream.codec_context.format else ""),
            )
    except av.FFmpegError as exc:
        raise Reject("unreadable_audio", f"FFmpeg cannot open the file: {exc}") from None


def decode_audio(data: bytes, sample_rate: int, channels: int, max_seconds: float) -> np.ndarray:
    """Decode to float32 ``(channels, samples)`` at ``sample_rate``, resampled by libswresample.

    Stops with a :class:`Reject` as soon as the decoded length passes ``max_seconds`` so an
    hour-long file never fills memory.
    """
    layout = "mono" if channels == 1 else "stereo"
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
    limit = int(max_seconds * sample_rate) + 1
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise Reject("no_audio_stream", "the file has no audio stream")
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
                    total += chunks[-1].shape[1]
                if total > limit:
                    raise Reject("too_long", f"longer than the configured maximum of {max_seconds:g} s")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except av.FFmpegError as exc:
        raise Reject("decode_error", f"FFmpeg failed while decoding: {exc}") from None
    if not chunks:
        return np.zeros((channels, 0), dtype=np.float32)
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False)


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """FLAC bytes (24-bit) of float ``(channels, samples)`` audio, clipped to [-1, 1]."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio.T, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def read_flac(data: bytes) -> tuple[np.ndarray, int]:
    """Float32 ``(channels, samples)`` audio and its rate from FLAC (or WAV) bytes."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio.T.copy(), int(rate)
