"""A hostile input set, written by the tests: every case and the outcome it must get."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
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


def _sine(seconds: float, freq: float, rate: int, levels: tuple[float, ...]) -> np.ndarray:
    """``(samples, channels)`` sine, one peak level per channel."""
    t = np.arange(int(seconds * rate)) / rate
    wave = np.sin(2 * np.pi * freq * t)
    return np.stack([level * wave for level in levels], axis=1).astype(np.float32)


#: The chained Ogg of issue 15: 8 s at 44.1 kHz stereo (left louder than right), then 8 s at 22.05 kHz mono.
CHAINED_OGG_LINKS = ((8.0, 440.0, 44100, (0.4, 0.2)), (8.0, 660.0, 22050, (0.3,)))


def chained_ogg() -> tuple[bytes, list[bytes]]:
    """Two Ogg Vorbis files back to back (``cat a.ogg b.ogg``), and the two files."""
    links = [_encode(_sine(sec, freq, rate, levels), rate, "OGG") for sec, freq, rate, levels in CHAINED_OGG_LINKS]
    return b"".join(links), links


_MP3_KBPS = {3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3_frames(data: bytes) -> list[int]:
    """Offsets of the MPEG layer III frames of ``data``, walked header to header from the first one."""
    pos = 0
    if data[:3] == b"ID3":
        pos = 10 + ((data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F))
    frames = []
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] & 0xE0 == 0xE0:
        version, layer = (data[pos + 1] >> 3) & 3, (data[pos + 1] >> 1) & 3
        kbps_index, rate_index = data[pos + 2] >> 4, (data[pos + 2] >> 2) & 3
        if layer != 1 or version == 1 or rate_index == 3 or kbps_index in (0, 15):
            break
        kbps = _MP3_KBPS[3 if version == 3 else 2][kbps_index]
        rate = _MP3_RATES[version][rate_index]
        frames.append(pos)
        pos += (144000 if version == 3 else 72000) * kbps // rate + ((data[pos + 2] >> 1) & 1)
    return frames


def encode_mp3(audio: np.ndarray, rate: int, kbps: int = 128, reservoir: bool = True) -> bytes:
    """Constant-bitrate MP3 of ``(samples, channels)`` audio through PyAV's LAME, with no ID3 tag.

    (libsndfile's MP3s are variable-bitrate; these have frames of one length, so frames can be swapped.)
    """
    buf = io.BytesIO()
    layout = "mono" if audio.shape[1] == 1 else "stereo"
    with av.open(buf, "w", format="mp3", options={"id3v2_version": "0"}) as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout=layout,
                                      options={"reservoir": "1" if reservoir else "0"})
        stream.bit_rate = kbps * 1000
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio.T), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buf.getvalue()


#: The MP3 with a mid-stream format change: 6 s at 48 kHz stereo, then 6 s at 24 kHz mono (``cat a.mp3 b.mp3``).
MP3_PARTS = ((6.0, 440.0, 48000, (0.4, 0.2), 128), (6.0, 660.0, 24000, (0.3,), 64))


def joined_mp3(parts: tuple = MP3_PARTS) -> tuple[bytes, list[bytes]]:
    """MP3 files of different rates and layouts back to back, and the files."""
    files = [encode_mp3(_sine(sec, freq, rate, levels), rate, kbps) for sec, freq, rate, levels, kbps in parts]
    return b"".join(files), files


def mp3_with_spliced_frames(count: int = 3) -> bytes:
    """8 s of 48 kHz stereo MP3 with ``count`` frames in the middle replaced by 48 kHz mono frames.

    What a bad edit or a damaged header leaves: a few frames whose format differs from the stream's.
    Both encodings are 128 kbit/s at 48 kHz, so every frame is 384 bytes and the stream stays in sync;
    the mono frames use no bit reservoir, so each decodes on its own (to the wrong sound).
    """
    stereo = encode_mp3(_sine(8, 440, 48000, (0.3, 0.2)), 48000)
    mono = encode_mp3(_sine(8, 880, 48000, (0.3,)), 48000, reservoir=False)
    at, donor = mp3_frames(stereo), mp3_frames(mono)
    middle = len(at) // 2
    assert set(np.diff(at).tolist()) == {384}, "expected constant 384-byte frames"
    out = bytearray(stereo)
    out[at[middle] : at[middle] + 384 * count] = mono[donor[middle] : donor[middle] + 384 * count]
    return bytes(out)


def wav_with_lying_header(data: bytes, declared_seconds: float) -> bytes:
    """A WAV whose data chunk size claims ``declared_seconds`` (the samples present stay as they are)."""
    rate, align = struct.unpack("<I", data[24:28])[0], struct.unpack("<H", data[32:34])[0]
    at = data.index(b"data")
    return data[: at + 4] + struct.pack("<I", int(declared_seconds * rate * align)) + data[at + 8 :]


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
    # issue 15: format changes mid-stream decode in full; what still cannot be converted is named
    add("chained.ogg", chained_ogg()[0], ("standardize", "ok"))
    add("rate_change.mp3", joined_mp3()[0], ("standardize", "ok"))
    add("spliced_frames.mp3", mp3_with_spliced_frames(), ("standardize", "corrupt_frames"))
    add("nine_channel.wav", _encode(_song(6, next(freq), channels=9), RATE, "WAV"),
        ("standardize", "unconvertible_audio_format"))
    # issue 9: a WAV header claiming 6.7 h over 1 s of samples is truncated, not too long
    add("lying_header.wav", wav_with_lying_header(_encode(_song(1, next(freq)), RATE, "WAV"), 6.7 * 3600),
        ("standardize", "truncated_audio"))
    long_wav = np.zeros((8000 * 610, 1), dtype=np.float32)
    long_wav[::400] = 0.2
    add("long.wav", _encode(long_wav, 8000, "WAV", "PCM_U8"), ("standardize", "too_long"))
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
