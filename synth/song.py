"""One synthetic song with known truth: sung lyrics placed at known times over a MIDI backing.

A song depends only on ``(seed, index)`` and the settings, never on how many songs are made or
in which process, so songs can be generated in parallel and a corpus can be extended.
"""

from __future__ import annotations

import io
import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from songcorpus.synth import accompaniment, lyrics_text, vocals, writers
from songcorpus.synth.artists import SONGS_PER_ARTIST, Artist, make_artist

logger = logging.getLogger(__name__)

SAMPLE_RATE = 44100
REFERENCE_RMS_DBFS = -20.0  # each stem is brought to this RMS before its gain is applied
PEAK_DBFS = -1.0  # the mixture's peak after normalisation; headroom for lossy encoders
_FADE_OUT_SECONDS = 2.0
LOUD_BACKING_SHARE = 0.3  # songs whose accompaniment is 2-8 dB louder than the voice


@dataclass(frozen=True)
class SynthSettings:
    """Corpus-wide choices that every song sees."""

    languages: tuple[str, ...] = ("en",)
    min_seconds: float = 25.0
    max_seconds: float = 50.0
    formats: tuple[str, ...] = tuple(writers.AUDIO_FORMATS)


def song_key(index: int) -> str:
    """``song-000123``: a sample key without dots."""
    return f"song-{index:06d}"


def _rms_normalise(signal: np.ndarray, gain_db: float, active: np.ndarray | None = None) -> np.ndarray:
    """Scale ``signal`` so its RMS (over ``active`` samples if given) is the reference plus ``gain_db``."""
    part = signal if active is None else signal[active]
    rms = float(np.sqrt(np.mean(np.square(part, dtype=np.float64)))) if part.size else 0.0
    if rms == 0.0:
        raise RuntimeError("cannot level a silent stem")
    return (signal * (10 ** ((REFERENCE_RMS_DBFS + gain_db) / 20) / rms)).astype(np.float32)


def _t(seconds: float) -> float:
    return round(float(seconds), 6)


@dataclass(frozen=True)
class PlacedLine:
    """A sung line and the sample at which it starts in the song."""

    line: lyrics_text.LyricLine
    sung: vocals.RenderedLine
    start: int
    pitch: int

    @property
    def end(self) -> int:
        return self.start + len(self.sung.audio)


def _place_lines(
    lyrics: list[lyrics_text.LyricLine],
    artist: Artist,
    *,
    intro: float,
    min_outro: float,
    target: float,
    melody: np.ndarray,
    gaps: np.ndarray,
    vibrato_hz: float,
    vibrato_cents: float,
) -> list[PlacedLine]:
    """Sing lines one after another from ``intro`` on until the next would eat into the outro.

    At least one line is always placed. A repeated phrase (chorus) is rendered once and reused.
    """
    placed: list[PlacedLine] = []
    sung_phrases: dict[int, vocals.RenderedLine] = {}
    cursor = intro
    for i, line in enumerate(lyrics):
        pitch = int(np.clip(artist.pitch + melody[line.phrase], 5, 95))
        if line.phrase not in sung_phrases:
            voice = vocals.VoiceSpec(artist.voice, pitch, artist.pitch_range, artist.rate)
            sung_phrases[line.phrase] = vocals.render_line(
                line.text, voice, vibrato_hz=vibrato_hz, vibrato_cents=vibrato_cents
            )
        sung = sung_phrases[line.phrase]
        if placed and cursor + sung.duration + min_outro > target:
            break
        placed.append(PlacedLine(line, sung, round(cursor * SAMPLE_RATE), pitch))
        cursor = placed[-1].end / SAMPLE_RATE + float(gaps[i])
    return placed


def _line_truth(placed: PlacedLine) -> dict[str, object]:
    t0 = placed.start / SAMPLE_RATE
    return {
        "text": placed.line.text,
        "section": placed.line.section,
        "start": _t(t0),
        "end": _t(placed.end / SAMPLE_RATE),
        "pitch": placed.pitch,
        "words": [
            {"word": w.word, "start": _t(t0 + w.start), "end": _t(t0 + w.end)} for w in placed.sung.words
        ],
    }


def _accompany(
    arrangement: accompaniment.Arrangement,
    num_samples: int,
    rng: np.random.Generator,
    midi_path: Path,
    gain_db: float,
) -> np.ndarray:
    """Write the MIDI for the whole song to ``midi_path``, render it, fade the end, level it."""
    midi = accompaniment.build_midi(arrangement, num_samples / SAMPLE_RATE, rng)
    midi_bytes = io.BytesIO()
    midi.write(midi_bytes)
    writers.write_bytes(midi_path, midi_bytes.getvalue())
    accomp = accompaniment.render_midi(midi_path, num_samples)
    fade = min(num_samples, round(_FADE_OUT_SECONDS * SAMPLE_RATE))
    accomp[num_samples - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
    return _rms_normalise(accomp, gain_db)


def make_song(out_dir: Path, index: int, seed: int, settings: SynthSettings) -> dict[str, str]:
    """Generate and write every file of song ``index``; return its manifest row."""
    key = song_key(index)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, index)))
    artist = make_artist(seed, index // SONGS_PER_ARTIST, settings.languages)
    fmt = settings.formats[index % len(settings.formats)]

    target = float(rng.uniform(settings.min_seconds, settings.max_seconds))
    edge_max = min(6.0, max(2.0, 0.15 * target))
    intro, min_outro = float(rng.uniform(2.0, edge_max)), float(rng.uniform(2.0, edge_max))
    lyrics = lyrics_text.make_lyrics(rng, artist.language)
    melody = rng.integers(-12, 13, size=len(lyrics))  # per-phrase pitch offset: a chorus repeats its tune
    long_gap = rng.random(len(lyrics)) < 0.35
    gaps = np.where(long_gap, rng.uniform(1.2, 2.5, len(lyrics)), rng.uniform(0.3, 0.9, len(lyrics)))
    vibrato_hz, vibrato_cents = float(rng.uniform(4.5, 6.5)), float(rng.uniform(20.0, 50.0))
    # Most songs put the voice on top; some bury it under a louder backing, which separation and
    # alignment must survive too.
    loud_backing = bool(rng.random() < LOUD_BACKING_SHARE)
    vocals_db = float(rng.uniform(-2.0, 0.0) if loud_backing else rng.uniform(0.0, 4.0))
    accomp_db = float(rng.uniform(2.0, 6.0) if loud_backing else rng.uniform(-6.0, 0.0))
    arrangement = accompaniment.make_arrangement(rng, artist.genre)

    placed = _place_lines(
        lyrics,
        artist,
        intro=intro,
        min_outro=min_outro,
        target=target,
        melody=melody,
        gaps=gaps,
        vibrato_hz=vibrato_hz,
        vibrato_cents=vibrato_cents,
    )
    num_samples = max(round(target * SAMPLE_RATE), placed[-1].end + round(min_outro * SAMPLE_RATE))
    duration = num_samples / SAMPLE_RATE

    voice_track = np.zeros(num_samples, dtype=np.float32)
    active = np.zeros(num_samples, dtype=bool)
    for p in placed:
        voice_track[p.start : p.end] = p.sung.audio
        active[p.start : p.end] = True
    voice_track = _rms_normalise(voice_track, vocals_db, active)

    midi_path = out_dir / "accomp_midi" / f"{key}.mid"
    accomp = _accompany(arrangement, num_samples, rng, midi_path, accomp_db)

    # One scale for both stems, so the saved stems still sum to the saved mixture.
    stereo_vocals = np.repeat(voice_track[:, None], 2, axis=1)
    scale = 10 ** (PEAK_DBFS / 20) / float(np.max(np.abs(stereo_vocals + accomp)))
    stereo_vocals *= np.float32(scale)
    accomp *= np.float32(scale)
    mixture = stereo_vocals + accomp

    title = lyrics_text.make_title(rng, [p.line for p in placed])
    paths = {
        "audio": f"audio/{key}.{fmt}",
        "vocals": f"stems/{key}.vocals.flac",
        "accomp": f"stems/{key}.accomp.flac",
        "txt": f"lyrics/{key}.txt",
        "lrc": f"lyrics/{key}.lrc",
        "truth": f"truth/{key}.json",
        "midi": f"accomp_midi/{key}.mid",
    }
    serial = zlib.crc32(key.encode())
    writers.write_bytes(
        out_dir / paths["audio"], writers.encode_audio(mixture, SAMPLE_RATE, fmt, stream_serial=serial)
    )
    for stem, signal in (("vocals", stereo_vocals), ("accomp", accomp)):
        writers.write_bytes(
            out_dir / paths[stem], writers.encode_audio(signal, SAMPLE_RATE, "flac", subtype="PCM_24")
        )

    lines_truth = [_line_truth(p) for p in placed]
    writers.write_text(out_dir / paths["txt"], "".join(f"{line['text']}\n" for line in lines_truth))
    writers.write_text(
        out_dir / paths["lrc"],
        writers.format_lrc(artist.name, title, [(_t(p.start / SAMPLE_RATE), p.line.text) for p in placed]),
    )
    truth = {
        "key": key,
        "index": index,
        "seed": seed,
        "title": title,
        "artist": artist.name,
        "language": artist.language,
        "genre": artist.genre,
        "sample_rate": SAMPLE_RATE,
        "num_samples": num_samples,
        "duration": _t(duration),
        "paths": paths,
        "format": fmt,
        "gains": {
            "vocals_db": _t(vocals_db),
            "accomp_db": _t(accomp_db),
            "loud_backing": loud_backing,
            "reference_rms_dbfs": REFERENCE_RMS_DBFS,
            "peak_dbfs": PEAK_DBFS,
            "peak_scale": _t(scale),
        },
        "voice": {
            "name": artist.voice,
            "pitch": artist.pitch,
            "pitch_range": artist.pitch_range,
            "rate_wpm": artist.rate,
            "vibrato_hz": _t(vibrato_hz),
            "vibrato_cents": _t(vibrato_cents),
        },
        "tempo": arrangement.tempo,
        "key_signature": arrangement.key_name,
        "chords": arrangement.chord_names(),
        "instruments": {
            "chords_program": arrangement.chord_program,
            "bass_program": arrangement.bass_program,
        },
        "intro": {"start": 0.0, "end": lines_truth[0]["start"]},
        "outro": {"start": lines_truth[-1]["end"], "end": _t(duration)},
        "lines": lines_truth,
    }
    writers.write_text(out_dir / paths["truth"], json.dumps(truth, indent=2, ensure_ascii=False) + "\n")
    logger.info("%s: %.1f s, %d lines, %s, %s", key, duration, len(lines_truth), artist.voice, fmt)
    return {
        "audio_path": paths["audio"],
        "lyrics_path": paths["lrc"] if index % 2 else paths["txt"],
        "title": title,
        "artist": artist.name,
        "language": artist.language,
        "genre": artist.genre,
        "truth_path": paths["truth"],
    }
