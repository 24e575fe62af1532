"""Batched, streamed Demucs separation: segments of consecutive songs share each forward pass.

Stock Demucs (``apply_model`` with ``split=True``) runs one segment at a time. Here each song is cut
into the same overlapping segments Demucs would use. The segments of consecutive songs go through
Demucs' own ``apply_model`` ``batch_segments`` at a time (``apply_model`` also handles bags of
models), and each song is put back together with the same triangular-weight overlap-add.

Songs stream through. A song is decoded only when the next forward pass needs its segments, and it
is handed back as soon as its last segment is in, so that it can be written while later songs are
still computing. Only two stems are kept per song (vocals and the sum of the rest). Memory is
therefore bounded by the songs one forward pass spans (about 21 MB per minute of stereo audio
each), not by how many songs a batch holds.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch
from demucs.apply import BagOfModels, apply_model
from demucs.htdemucs import HTDemucs

from .devices import SideBySide

VOCALS = "vocals"
K = TypeVar("K", bound=Hashable)  # the caller's key for a song, handed back with its stems


@dataclass(frozen=True)
class SeparationSettings:
    segment: float | None
    overlap: float
    shifts: int
    batch_segments: int
    device: torch.device
    autocast_dtype: torch.dtype | None
    seed: int
    #: on a CPU: each segment of a pass goes through the model alone, the pass's segments side by side
    #: (so the stems are the same bytes whatever the thread count); None: one batched forward per pass
    cpu_forwards: SideBySide | None = None


@dataclass
class _Track:
    """One pass over one song (a song has ``shifts`` tracks when shifting, else one)."""

    audio: torch.Tensor  # (channels, samples), possibly shifted and padded
    trim: int  # output samples to drop at the start to undo the shift
    vocals: torch.Tensor
    rest: torch.Tensor
    weight: torch.Tensor


@dataclass
class _Song(Generic[K]):
    key: K
    length: int
    tracks: list[_Track]
    pending: int = 0  # segments not yet added in


def model_segment_seconds(model: BagOfModels | HTDemucs, override: float | None) -> float:
    if override is not None:
        return float(override)
    segment = getattr(model, "segment", None)
    if segment is None and isinstance(model, BagOfModels):
        segment = min((s for m in model.models if (s := getattr(m, "segment", None))), default=None)
    if segment is None:
        raise ValueError("this Demucs model has no default segment; set stages.separate.segment")
    return float(segment)


def triangle_weight(length: int, device: torch.device) -> torch.Tensor:
    """Demucs' overlap-add window: rises to 1 mid-segment and falls again (transition power 1)."""
    half = length // 2
    weight = torch.cat([torch.arange(1, half + 1), torch.arange(length - half, 0, -1)]).to(device)
    return weight.float() / weight.max()


def _window_of(audio: torch.Tensor, offset: int, seg_len: int) -> torch.Tensor:
    """The model input for the segment at ``offset``, as Demucs builds it.

    A full segment is the audio itself. The last, shorter one is centred in the model's window with
    real audio before it as context and zeros past the end (``TensorChunk.padded``), so that the
    output matches stock ``apply_model`` to the last sample.
    """
    length = audio.shape[-1]
    n = min(seg_len, length - offset)
    start = offset - (seg_len - n) // 2
    window = torch.zeros(audio.shape[0], seg_len)
    lo, hi = max(0, start), min(length, start + seg_len)
    window[:, lo - start : hi - start] = audio[:, lo:hi]
    return window


def _song(
    key: K, mix: torch.Tensor, samplerate: int, stride: int, settings: SeparationSettings
) -> tuple[_Song[K], list[tuple[_Track, int]]]:
    """A song and its segments ``(track, offset)``: one pass over the song itself, or ``shifts`` passes
    over randomly shifted copies (Demucs' shift trick).

    The shifts are seeded by the settings' seed and the song's length alone, never by its place in a
    batch, so a song's stems are the same bytes however the songs were grouped.
    """
    length = mix.shape[-1]
    if settings.shifts == 0:
        passes = [(mix, 0)]
    else:
        max_shift = int(0.5 * samplerate)
        padded = torch.nn.functional.pad(mix, (max_shift, max_shift))
        rng = np.random.default_rng([settings.seed, length])
        offsets = rng.integers(0, max_shift + 1, settings.shifts)
        passes = [(padded[:, o : o + length + max_shift], max_shift - int(o)) for o in offsets]
    song = _Song(key, length, [])
    segments: list[tuple[_Track, int]] = []
    for audio, trim in passes:
        n = audio.shape[-1]
        zeros = torch.zeros(audio.shape[0], n)
        track = _Track(audio, trim, zeros, zeros.clone(), torch.zeros(n))
        song.tracks.append(track)
        segments.extend((track, offset) for offset in range(0, n, stride))
    song.pending = len(segments)
    return song, segments


def _combine(song: _Song[K]) -> tuple[torch.Tensor, torch.Tensor]:
    """Average the song's passes, each normalised by its overlap-add weight."""
    channels = song.tracks[0].audio.shape[0]
    if song.length == 0:
        return torch.zeros(channels, 0), torch.zeros(channels, 0)
    span = [slice(t.trim, t.trim + song.length) for t in song.tracks]
    vocals = sum(t.vocals[:, s] / t.weight[s] for t, s in zip(song.tracks, span, strict=False))
    rest = sum(t.rest[:, s] / t.weight[s] for t, s in zip(song.tracks, span, strict=False))
    # sum() is 0 only over no tracks, and a song always has at least one (tracks[0] was read above)
    assert isinstance(vocals, torch.Tensor) and isinstance(rest, torch.Tensor)
    return vocals / len(song.tracks), rest / len(song.tracks)


class _Separator:
    """A model with its segment geometry: turns a stream of mixtures into a stream of stems."""

    def __init__(self, model: BagOfModels | HTDemucs, settings: SeparationSettings) -> None:
        if VOCALS not in model.sources:
            raise ValueError(f"the model has no vocals source (sources: {model.sources})")
        self.model = model
        self.settings = settings
        self.vocal_index = model.sources.index(VOCALS)
        self.seg_len = int(model.samplerate * model_segment_seconds(model, settings.segment))
        self.stride = max(1, int((1 - settings.overlap) * self.seg_len))
        self.window = triangle_weight(self.seg_len, torch.device("cpu"))

    def stream(self, mixes: Iterable[tuple[K, torch.Tensor]]) -> Iterator[tuple[K, torch.Tensor, torch.Tensor]]:
        source = iter(mixes)
        queue: deque[tuple[_Song[K], _Track, int]] = deque()
        in_flight: deque[_Song[K]] = deque()
        batch = self.settings.batch_segments
        exhausted = False
        while True:
            while not exhausted and len(queue) < batch:
                try:
                    key, mix = next(source)
                except StopIteration:
                    exhausted = True
                    break
                song, segments = _song(key, mix, self.model.samplerate, self.stride, self.settings)
                queue.extend((song, track, offset) for track, offset in segments)
                in_flight.append(song)
            if not in_flight:
                return
            if queue:
                self._forward([queue.popleft() for _ in range(min(batch, len(queue)))])
            while in_flight and in_flight[0].pending == 0:  # hand songs back before decoding more
                done = in_flight.popleft()
                yield done.key, *_combine(done)

    def _forward(self, chunk: list[tuple[_Song[K], _Track, int]]) -> None:
        """One forward pass over a chunk of segments, overlap-added into their tracks."""
        settings, seg_len = self.settings, self.seg_len
        batch = torch.stack([_window_of(track.audio, offset, seg_len) for _, track, offset in chunk])
        autocast = (
            torch.autocast(device_type=settings.device.type, dtype=settings.autocast_dtype)
            if settings.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        def forward(segments: torch.Tensor) -> torch.Tensor:
            with torch.no_grad(), autocast:
                return apply_model(
                    self.model, segments, shifts=0, split=False, device=settings.device, segment=settings.segment
                )

        if settings.cpu_forwards is None:
            out = forward(batch)
        else:
            out = torch.cat(settings.cpu_forwards.map(forward, [batch[i : i + 1] for i in range(len(batch))]))
        out = out.float().cpu()
        for row, (song, track, offset) in enumerate(chunk):
            n = min(seg_len, track.audio.shape[-1] - offset)
            left = (seg_len - n) // 2
            w = self.window[:n]
            vocals = out[row, self.vocal_index, :, left : left + n]
            rest = out[row, :, :, left : left + n].sum(dim=0) - vocals
            track.vocals[:, offset : offset + n] += w * vocals
            track.rest[:, offset : offset + n] += w * rest
            track.weight[offset : offset + n] += w
            song.pending -= 1


def separate_stream(
    model: BagOfModels | HTDemucs, mixes: Iterable[tuple[K, torch.Tensor]], settings: SeparationSettings
) -> Iterator[tuple[K, torch.Tensor, torch.Tensor]]:
    """Separate float ``(channels, samples)`` mixtures, given as ``(key, mix)``; yields ``(key, vocals, rest)``.

    ``rest`` is the sum of the other stems. Songs come out in input order, each as soon as its last
    segment is done. ``mixes`` is pulled lazily, one song whenever the next forward pass needs more
    segments, so a generator that decodes songs on demand keeps only the songs in flight in memory.
    """
    return _Separator(model, settings).stream(mixes)


def warm_up(model: BagOfModels | HTDemucs, settings: SeparationSettings) -> None:
    """One forward pass of exactly ``batch_segments`` segments of silence, the shape every pass will have.

    One-time costs (allocator growth, oneDNN/cuDNN kernel choice, the CUDA context) are paid here
    rather than by the first song, and a batch that does not fit the device fails here.
    """
    separator = _Separator(model, settings)
    silence = torch.zeros(model.audio_channels, separator.stride * settings.batch_segments)
    for _ in separator.stream([("warm-up", silence)]):
        pass


def separate(
    model: BagOfModels | HTDemucs, mixes: list[torch.Tensor], settings: SeparationSettings
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Separate a list of mixtures at once; returns (vocals, sum of other stems) per song."""
    return [(vocals, rest) for _, vocals, rest in separate_stream(model, enumerate(mixes), settings)]
