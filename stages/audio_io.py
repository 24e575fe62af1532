"""Audio probing and decoding through FFmpeg's libraries (PyAV), plus FLAC encoding.

PyAV ships FFmpeg inside its wheel, so every format FFmpeg reads decodes without a system FFmpeg.
"""

from __future__ import annotations

import dataclasses
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


#: WAVE format tags whose blocks hold one sample frame each (PCM, IEEE float, A-law, mu-law, extensible),
#: so bytes / (rate * block align) is seconds. ADPCM and other coded WAVs pack many samples in a block.
_WAV_FRAME_PER_BLOCK = frozenset({0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE})


@dataclass(frozen=True)
class WavData:
    """Where a RIFF/WAVE file's samples are and what its header says about them."""

    rate: int
    block_align: int
    offset: int  # of the first sample byte
    declared_bytes: int

    @property
    def declared_seconds(self) -> float:
        return self.declared_bytes / (self.rate * self.block_align)

    def held_seconds(self, file_size: int) -> float:
        """Seconds of samples the file really holds: the data chunk, cut at the end of the file."""
        return max(0, min(self.declared_bytes, file_size - self.offset)) / (self.rate * self.block_align)


def wav_data(data: bytes) -> WavData | None:
    """The ``data`` chunk of an uncompressed RIFF/WAVE file; None for anything else or a size left open."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, tag, rate, align = 12, 0, 0, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"fmt " and pos + 22 <= len(data):
            tag = struct.unpack("<H", data[pos + 8 : pos + 10])[0]
            rate = struct.unpack("<I", data[pos + 12 : pos + 16])[0]
            align = struct.unpack("<H", data[pos + 20 : pos + 22])[0]
        elif chunk == b"data":
            if tag in _WAV_FRAME_PER_BLOCK and rate and align and size < 0xFFFFFFFF:
                return WavData(rate, align, pos + 8, size)
            return None
        pos += 8 + size + (size & 1)
    return None


def wav_declared_seconds(data: bytes) -> float | None:
    """Duration a RIFF/WAVE header declares in its ``data`` chunk.

    FFmpeg derives a WAV's duration from the bytes present, so a cut-off WAV looks complete to it;
    the header still says how long the file was meant to be.
    """
    wav = wav_data(data)
    return wav.declared_seconds if wav else None


def probe_audio(data: bytes) -> Probe:
    """Read container headers; raise :class:`Reject` if FFmpeg cannot open it or it has no audio.

    A chained Ogg file's duration is the sum of its links' durations: FFmpeg reads the whole file's
    length from the last page's granule position, which counts only the last link's samples, in the
    first link's time base (a 8 s 44.1 kHz + 8 s 22.05 kHz chain reads as 4 s).
    """
    links = ogg_links(data)
    try:
        with av.open(io.BytesIO(links[0]), mode="r") as container:
            streams = container.streams.audio
            if not streams:
                raise Reject("no_audio_stream", "the file has no audio stream")
            stream = streams[0]
            duration = _declared_seconds(container, stream, links[0])
            probe = Probe(
                codec=stream.codec_context.name,
                container=container.format.name,
                sample_rate=int(stream.codec_context.sample_rate or 0),
                channels=int(stream.codec_context.channels or 0),
                duration=duration,
                bit_depth=str(stream.codec_context.format.name if stream.codec_context.format else ""),
            )
        if len(links) > 1 and duration is not None:
            total: float | None = duration
            for link in links[1:]:
                with av.open(io.BytesIO(link), mode="r") as container:
                    seconds = (_declared_seconds(container, container.streams.audio[0], link)
                               if container.streams.audio else 0.0)
                total = None if seconds is None or total is None else total + seconds
            probe = dataclasses.replace(probe, duration=total)
        return probe
    except av.FFmpegError as exc:
        raise Reject("unreadable_audio", f"FFmpeg cannot open the file: {exc}") from None


def _declared_seconds(container: av.container.InputContainer, stream: av.AudioStream, data: bytes) -> float | None:
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    if container.format.name == "wav":
        duration = wav_declared_seconds(data) or duration
    return duration


# --- chained Ogg ---------------------------------------------------------------------------------
#
# A chained Ogg file is several complete Ogg streams one after another (`cat a.ogg b.ogg`: radio rips,
# joined recordings). Measured with PyAV 18.1.0, which bundles libavformat 62.12 (FFmpeg 8.0): the Ogg
# demuxer keeps one AVStream for the whole chain, and when a later link's identification header has
# another channel count or sample rate, its Vorbis and Opus header parsers log "Channel change is not
# supported" / "Sample rate change is not supported" and return AVERROR_PATCHWELCOME, which PyAV raises
# from demux() as PatchWelcomeError ("Not yet implemented in FFmpeg, patches welcome") after the first
# link: 8 s of a 8 s 44.1 kHz stereo + 8 s 22.05 kHz mono Vorbis chain, the rest lost. Links with the same
# rate and channels demux in one pass. Debian's ffmpeg 5.1 CLI decodes the same file to 16 s, rebuilding
# its filter graph when the 22.05 kHz mono frames arrive. So decoding splits the file at its link
# boundaries and opens each link as a file of its own (every link is a complete Ogg stream).

_OGG_HEADER = 27  # "OggS", version, flags, granule (8), serial (4), sequence (4), CRC (4), segment count
_OGG_BOS = 0x02


def _ogg_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def _ogg_page_crc_ok(page: bytes) -> bool:
    """Ogg's page checksum (CRC-32, polynomial 0x04C11DB7, unreflected) over the page, CRC field zeroed."""
    crc = 0
    for i, byte in enumerate(page):
        value = 0 if 22 <= i < 26 else byte  # the checksum field counts as zeros
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[(crc >> 24) ^ value]
    return crc == struct.unpack("<I", page[22:26])[0]


def _ogg_bos_page_end(data: bytes, pos: int) -> int | None:
    """End offset of the beginning-of-stream page at ``pos``, or None if ``pos`` holds no valid BOS page.

    A BOS page opens a logical stream: flag 0x02, page sequence 0, and a correct checksum (so an
    "OggS" that happens to sit inside packet data is not taken for one).
    """
    if pos + _OGG_HEADER > len(data) or data[pos + 4] != 0 or not data[pos + 5] & _OGG_BOS:
        return None
    if struct.unpack("<I", data[pos + 18 : pos + 22])[0] != 0:
        return None
    segments = data[pos + 26]
    body_at = pos + _OGG_HEADER + segments
    if body_at > len(data):
        return None
    end = body_at + sum(data[pos + _OGG_HEADER : body_at])
    if end > len(data) or not _ogg_page_crc_ok(data[pos:end]):
        return None
    return end


def ogg_links(data: bytes) -> list[bytes]:
    """The links of a chained Ogg file, each a complete Ogg stream; ``[data]`` for one link or not Ogg.

    A link starts at a beginning-of-stream page that follows non-BOS pages (the BOS pages of the
    streams multiplexed in one link come together at its start). Anything before the second link
    stays with the first.
    """
    if not data.startswith(b"OggS\x00"):  # FFmpeg's own Ogg probe wants this at offset 0
        return [data]
    starts, pos, after_bos = [0], 0, False
    while (pos := data.find(b"OggS", pos)) != -1:
        end = _ogg_bos_page_end(data, pos)
        if end is None:
            after_bos = False
            pos += 4
            continue
        if not after_bos and pos > 0:
            starts.append(pos)
        after_bos, pos = True, end
    if len(starts) == 1:
        return [data]
    return [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]


# --- decoding ------------------------------------------------------------------------------------

#: A run of frames in another rate, layout or sample format, shorter than this and with the same format
#: on both sides, is damage, not a joined recording: one MP3 or AAC frame lasts 21-26 ms, and a frame
#: whose header was hit (stereo read as mono, say) or that was spliced in from another encoding decodes
#: to sound that is not the song's. A joined part lasts seconds.
GLITCH_SECONDS = 0.5


@dataclass
class FormatRun:
    """Consecutive decoded frames with one sample rate, channel layout and sample format."""

    sample_rate: int
    layout: str
    sample_format: str
    start: float
    seconds: float = 0.0

    @property
    def key(self) -> tuple[int, str, str]:
        return self.sample_rate, self.layout, self.sample_format

    def describe(self) -> str:
        return f"{self.sample_rate} Hz {self.layout} {self.sample_format}"


class FrameConverter:
    """Converts decoded frames to one rate and layout (float planar), following format changes.

    PyAV's AudioResampler is fixed to the first frame it sees: a later frame with another rate, layout
    or sample format raises ``ValueError("Frame does not match AudioResampler setup")``, and when the
    first frame already has the target format it passes every later frame through unconverted. So,
    as FFmpeg's filter graph does, a new resampler is built whenever the format changes, after the old
    one is flushed. The runs of each format are kept to tell a joined recording from a damaged header.
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self.layout = "mono" if channels == 1 else "stereo"
        self.channels = channels
        self.chunks: list[np.ndarray] = []
        self.samples = 0
        self.runs: list[FormatRun] = []
        self._resampler: av.AudioResampler | None = None
        self._source_seconds = 0.0

    def push(self, frame: av.AudioFrame) -> None:
        key = (frame.sample_rate, frame.layout.name, frame.format.name)
        if not self.runs or self.runs[-1].key != key:
            self._flush()
            self.runs.append(FormatRun(*key, start=self._source_seconds))
            self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.sample_rate)
        run = self.runs[-1]
        try:
            converted = self._resampler.resample(frame) if self._resampler else []
        except (ValueError, av.FFmpegError) as exc:
            # Measured: a WAV of 9 or more channels has no channel mask FFmpeg can name, and the
            # conversion graph fails to configure (EINVAL), as `ffmpeg -ac 2` does on it.
            unnamed = run.layout.endswith("channels")
            raise Reject(
                "unconvertible_audio_format",
                f"at {self._source_seconds:.2f} s the audio is {run.describe()}, which libswresample cannot "
                f"convert to {self.sample_rate} Hz {self.layout}"
                + (" (it has no rule to mix channels of no known layout)" if unnamed else "")
                + f": {exc}",
            ) from None
        self._keep(converted)
        seconds = frame.samples / frame.sample_rate if frame.sample_rate else 0.0
        self._source_seconds += seconds
        run.seconds += seconds

    def end_stream(self) -> None:
        """The stream ended: flush the resampler and check its format changes for damage."""
        self._flush()
        for before, run, after in zip(self.runs, self.runs[1:], self.runs[2:], strict=False):
            if before.key == after.key and run.seconds < GLITCH_SECONDS:
                raise Reject(
                    "corrupt_frames",
                    f"{run.seconds:.3f} s of {run.describe()} frames at {run.start:.2f} s inside a "
                    f"{before.describe()} stream: damaged or spliced-in frames, whose audio is not the song's",
                )
        self.runs = []
        self._source_seconds = 0.0

    def audio(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros((self.channels, 0), dtype=np.float32)
        return np.concatenate(self.chunks, axis=1).astype(np.float32, copy=False)

    def _flush(self) -> None:
        if self._resampler is not None:
            self._keep(self._resampler.resample(None))
            self._resampler = None

    def _keep(self, frames: list[av.AudioFrame]) -> None:
        for out in frames:
            self.chunks.append(out.to_ndarray())
            self.samples += self.chunks[-1].shape[1]


def decode_audio(data: bytes, sample_rate: int, channels: int, max_seconds: float) -> np.ndarray:
    """Decode to float32 ``(channels, samples)`` at ``sample_rate``, resampled by libswresample.

    Follows rate, layout and sample-format changes inside a stream (joined MP3s) and across the links
    of a chained Ogg file. Stops with a :class:`Reject` as soon as the decoded length passes
    ``max_seconds`` so an hour-long file never fills memory.
    """
    converter = FrameConverter(sample_rate, channels)
    limit = int(max_seconds * sample_rate) + 1
    found_audio = False
    try:
        for link in ogg_links(data):
            with av.open(io.BytesIO(link), mode="r") as container:
                if not container.streams.audio:
                    continue
                found_audio = True
                for frame in container.decode(container.streams.audio[0]):
                    converter.push(frame)
                    if converter.samples > limit:
                        raise Reject("too_long", f"longer than the configured maximum of {max_seconds:g} s")
            converter.end_stream()
    except av.FFmpegError as exc:
        raise Reject("decode_error", f"FFmpeg failed while decoding: {exc}") from None
    if not found_audio:
        raise Reject("no_audio_stream", "the file has no audio stream")
    return converter.audio()


def held_seconds(data: bytes, stop_after: float) -> float | None:
    """Seconds of audio the file holds, found without decoding; may stop counting once past ``stop_after``.

    What a header declares is a claim; this is what backs it. An uncompressed WAV: the bytes of its data
    chunk present in the file. Anything else: the durations of its packets, read by the demuxer (a WAV
    whose data chunk claims hours over one second of samples has one second of packets). None when a
    packet carries no duration or FFmpeg fails to read the packets: decode then.
    """
    wav = wav_data(data)
    if wav is not None:
        return wav.held_seconds(len(data))
    total = 0.0
    try:
        for link in ogg_links(data):
            with av.open(io.BytesIO(link), mode="r") as container:
                if not container.streams.audio:
                    continue
                for packet in container.demux(container.streams.audio[0]):
                    if packet.size == 0:
                        continue
                    if not packet.duration or packet.time_base is None:
                        return None
                    total += float(packet.duration * packet.time_base)
                    if total > stop_after:
                        return total
    except av.FFmpegError:
        return None
    return total


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """FLAC bytes (24-bit) of float ``(channels, samples)`` audio, clipped to [-1, 1]."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio.T, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def read_flac(data: bytes) -> tuple[np.ndarray, int]:
    """Float32 ``(channels, samples)`` audio and its rate from FLAC (or WAV) bytes."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio.T.copy(), int(rate)


def read_flac_span(data: bytes, start: float, end: float) -> tuple[np.ndarray, int]:
    """Samples ``round(start × rate)`` to ``round(end × rate)`` of FLAC (or WAV) bytes, as :func:`read_flac`
    would give them, decoding only that span (FLAC seeks to the sample)."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        rate = int(f.samplerate)
        first = round(start * rate)
        f.seek(first)
        audio = f.read(round(end * rate) - first, dtype="float32", always_2d=True)
    return audio.T.copy(), rate
