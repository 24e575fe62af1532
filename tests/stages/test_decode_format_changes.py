"""standardize on audio whose rate or layout changes mid-stream (issue 15), and on headers that lie (issue 9).

Every file is made here: chained Ogg (Vorbis from libsndfile, Opus from PyAV), joined MP3s, MP3s with
spliced-in frames, WAVs with too many channels and WAV headers that declare more than the data holds.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from songcorpus.pipeline.stage import Reject, StageContext
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.stage_configs import StandardizeConfig
from songcorpus.stages import standardize as standardize_module
from songcorpus.stages.audio_io import held_seconds, ogg_links, probe_audio, read_flac
from songcorpus.stages.standardize import StandardizeStage
from tests.recordtools import ingested
from tests.stages.hostile_inputs import (
    CHAINED_OGG_LINKS,
    _encode,
    _sine,
    _song,
    chained_ogg,
    joined_mp3,
    mp3_with_spliced_frames,
    wav_with_lying_header,
)

RATE = 44100
#: libswresample spreads a mono (front centre) channel over left and right at its centre mix level,
#: -3 dB, as `ffmpeg -ac 2` does; the power of the two channels together is the mono channel's.
MONO_TO_STEREO = np.sqrt(0.5)


def standardize(tmp_path: Path, name: str, data: bytes, max_seconds: float = 600.0) -> np.ndarray:
    """Run the stage on ``data`` as ingest would hand it over; the FLAC it wrote, as ``(channels, samples)``."""
    path = tmp_path / name
    path.write_bytes(data)
    song_id = name.replace(".", "_")
    song = ingested(song_id, source_path=str(path), source_duration=probe_audio(data).duration)
    record = song.model_dump(mode="json")
    storage = Storage(str(tmp_path / "out"))
    stage = StandardizeStage(StandardizeConfig(min_seconds=1.0, max_seconds=max_seconds), StageContext(storage))
    result = stage.process(song_id, record, f"fp-{song_id}")
    audio, rate = read_flac(storage.read_bytes(result.record["audio"]))
    assert rate == RATE and audio.shape[0] == 2
    assert result.record["duration"] == pytest.approx(audio.shape[1] / RATE, abs=1e-5)
    return audio


def rejection(tmp_path: Path, name: str, data: bytes, max_seconds: float = 600.0) -> Reject:
    with pytest.raises(Reject) as caught:
        standardize(tmp_path, name, data, max_seconds)
    assert not caught.value.retryable, "a file that cannot be decoded will not decode on a retry"
    return caught.value


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def decoded_alone(data: bytes) -> np.ndarray:
    """``(channels, samples)`` of one part file, decoded by FFmpeg at its own rate and layout."""
    with av.open(io.BytesIO(data), mode="r") as container:
        return np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)


def assert_part_matches(out: np.ndarray, start: float, end: float, part_file: bytes, freq: float) -> None:
    """Output seconds [start, end) carry that part: its pitch, and each channel at the level the part
    decodes to alone (the codec's own loss, e.g. LAME's ~5 %, is not the join's)."""
    alone = decoded_alone(part_file)
    alone = alone[:, alone.shape[1] // 8 : -alone.shape[1] // 8]
    part = out[:, int(start * RATE) : int(end * RATE)]
    for channel in range(2):
        expected = rms(alone[channel]) if alone.shape[0] == 2 else rms(alone[0]) * MONO_TO_STEREO
        assert rms(part[channel]) == pytest.approx(expected, rel=0.02), f"channel {channel} of [{start}, {end}) s"
        assert peak_hz(part[channel], RATE) == pytest.approx(freq, abs=2.0)


# --- chained Ogg -----------------------------------------------------------------------------------


def test_chained_ogg_with_rate_and_layout_change_standardizes_in_full(tmp_path):
    data, links = chained_ogg()  # 8 s 44.1 kHz stereo (0.4 / 0.2), then 8 s 22.05 kHz mono (0.3)
    assert probe_audio(data).duration == pytest.approx(16.0, abs=0.02)  # FFmpeg alone reads 4.0 s
    out = standardize(tmp_path, "chained.ogg", data)
    assert out.shape[1] / RATE == pytest.approx(16.0, abs=0.02)
    (_, freq_a, _, _), (_, freq_b, _, _) = CHAINED_OGG_LINKS
    assert_part_matches(out, 0.5, 7.5, links[0], freq_a)
    assert_part_matches(out, 8.5, 15.5, links[1], freq_b)
    # and against the signals encoded: left twice the right, then the mono part spread -3 dB over both
    assert rms(out[0, RATE : 7 * RATE]) == pytest.approx(0.4 * np.sqrt(0.5), rel=0.03)
    assert rms(out[1, RATE : 7 * RATE]) == pytest.approx(0.2 * np.sqrt(0.5), rel=0.03)
    assert rms(out[:, 9 * RATE : 15 * RATE]) == pytest.approx(0.3 * np.sqrt(0.5) * MONO_TO_STEREO, rel=0.03)


def encode_opus(audio: np.ndarray) -> bytes:
    """Ogg Opus (48 kHz) of ``(samples, channels)`` audio through PyAV's libopus."""
    buf = io.BytesIO()
    layout = "mono" if audio.shape[1] == 1 else "stereo"
    with av.open(buf, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio.T), format="fltp", layout=layout)
        frame.sample_rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buf.getvalue()


def test_chained_opus_with_channel_change_standardizes_in_full(tmp_path):
    mono, stereo = encode_opus(_sine(6, 500, 48000, (0.3,))), encode_opus(_sine(6, 750, 48000, (0.2, 0.4)))
    out = standardize(tmp_path, "chained.opus", mono + stereo)
    assert out.shape[1] / RATE == pytest.approx(12.0, abs=0.03)
    assert_part_matches(out, 0.5, 5.5, mono, 500)
    assert_part_matches(out, 6.5, 11.5, stereo, 750)


def test_ogg_links_are_the_files_that_were_joined():
    a, b = (_encode(_song(3, f), RATE, "OGG") for f in (300, 500))
    assert ogg_links(a + b + a) == [a, b, a]
    assert ogg_links(a) == [a]
    wav = _encode(_song(1, 300), RATE, "WAV")
    assert ogg_links(wav) == [wav]
    # an "OggS" inside a link's packets is no link boundary: a BOS page needs its checksum
    fake = bytearray(b"OggS\x00\x02" + bytes(21))
    tampered = a[: len(a) // 2] + bytes(fake) + a[len(a) // 2 :]
    assert len(ogg_links(tampered + b)) == 2


# --- format changes inside one stream --------------------------------------------------------------

MP3_CASES = {
    # the first part needs resampling: before issue 15, ValueError("Frame does not match AudioResampler setup")
    "48k_stereo_then_24k_mono": ((6.0, 440.0, 48000, (0.4, 0.2), 128), (6.0, 660.0, 24000, (0.3,), 64)),
    # the first part is already 44.1 kHz stereo, so PyAV's resampler passed every later frame through
    # unconverted: the 22.05 kHz half came out at double speed, 3 s long
    "44k_stereo_then_22k_stereo": ((6.0, 440.0, 44100, (0.4, 0.2), 128), (6.0, 660.0, 22050, (0.3, 0.3), 64)),
}


@pytest.mark.parametrize("case", sorted(MP3_CASES))
def test_mp3_whose_rate_and_layout_change_midstream_standardizes_in_full(tmp_path, case):
    parts = MP3_CASES[case]
    data, files = joined_mp3(parts)
    out = standardize(tmp_path, f"{case}.mp3", data)
    # each MP3 part adds an encoder delay and padding of at most a few frames
    assert out.shape[1] / RATE == pytest.approx(12.0, abs=0.12)
    assert_part_matches(out, 0.5, 5.5, files[0], parts[0][1])
    assert_part_matches(out, 6.7, 11.7, files[1], parts[1][1])


def test_spliced_frames_of_another_format_are_a_named_final_rejection(tmp_path):
    # before: a generic, retryable error_ValueError ("Frame does not match AudioResampler setup")
    err = rejection(tmp_path, "spliced.mp3", mp3_with_spliced_frames(count=3))
    assert err.reason == "corrupt_frames"
    assert "0.072 s of 48000 Hz mono" in err.message and "inside a 48000 Hz stereo" in err.message


def test_a_run_of_seconds_in_another_format_is_a_join_not_damage(tmp_path):
    """A B A with B a whole part (2 s) decodes; only runs under GLITCH_SECONDS are damage."""
    parts = ((3.0, 440.0, 48000, (0.3, 0.3), 128), (2.0, 660.0, 24000, (0.3,), 64),
             (3.0, 550.0, 48000, (0.3, 0.3), 128))
    data, files = joined_mp3(parts)
    out = standardize(tmp_path, "aba.mp3", data)
    assert out.shape[1] / RATE == pytest.approx(8.0, abs=0.15)
    assert_part_matches(out, 3.4, 4.8, files[1], 660)


def test_channels_of_no_known_layout_are_a_named_final_rejection(tmp_path):
    err = rejection(tmp_path, "nine.wav", _encode(_song(3, 300, channels=9), RATE, "WAV"))
    assert err.reason == "unconvertible_audio_format"
    assert "9 channels" in err.message and "no known layout" in err.message


# --- declared length against what the file holds (issue 9) -----------------------------------------


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if standardize decodes: these verdicts must come from headers and packets alone."""

    def refuse(*args, **kwargs):
        raise AssertionError("standardize decoded the file")

    monkeypatch.setattr(standardize_module, "decode_audio", refuse)


def test_wav_header_claiming_hours_over_one_second_is_truncated_not_too_long(tmp_path, no_decoding):
    data = wav_with_lying_header(_encode(_song(1, 300), RATE, "WAV"), 6.7 * 3600)
    assert probe_audio(data).duration == pytest.approx(6.7 * 3600)
    err = rejection(tmp_path, "lying.wav", data)
    assert err.reason == "truncated_audio"
    assert "declares 24120.0 s (6.70 h)" in err.message and "holds 1.00 s" in err.message


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_genuinely_long_file_is_still_too_long_without_decoding(tmp_path, no_decoding, fmt):
    long = np.zeros((8000 * 30, 1), dtype=np.float32)
    long[::400] = 0.2
    data = _encode(long, 8000, fmt)
    err = rejection(tmp_path, f"long.{fmt.lower()}", data, max_seconds=20.0)
    assert err.reason == "too_long"
    assert "declares 30.0 s" in err.message


def test_held_seconds_reads_wav_bytes_or_counts_packets_and_stops_past_the_limit():
    wav = _encode(_song(10, 300), RATE, "WAV")
    assert held_seconds(wav, 100.0) == pytest.approx(10.0)
    assert held_seconds(wav[: len(wav) // 2], 100.0) == pytest.approx(5.0, abs=0.01)  # cut off mid-data
    flac = _encode(_song(10, 300), RATE, "FLAC")
    assert held_seconds(flac, 100.0) == pytest.approx(10.0, abs=0.01)
    assert 4.0 < held_seconds(flac, 4.0) < 5.0  # stopped soon after the limit
    chained, _ = chained_ogg()
    assert held_seconds(chained, 100.0) == pytest.approx(16.0, abs=0.05)


def test_coded_wav_duration_is_not_read_as_pcm():
    """An IMA ADPCM WAV packs ~2,000 samples in a block: its header is no PCM byte count (read as one,
    6 s became 0.003 s)."""
    data = _encode(_song(6, 300), RATE, "WAV", "IMA_ADPCM")
    assert probe_audio(data).duration == pytest.approx(6.0, abs=0.05)
    assert held_seconds(data, 100.0) == pytest.approx(6.0, abs=0.05)
