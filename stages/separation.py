"""Batched Demucs separation: segments of many songs share each forward pass.

Stock Demucs (``apply_model`` with ``split=True``) runs one segment at a time. Here every song of a
batch is cut into the same overlapping segments Demucs would use, segments of all songs are stacked
``batch_segments`` at a time and passed through Demucs' own ``apply_model`` (which also handles bags
of models), and each song is put back together by the same triangular-weight overlap-add. Only two
stems are kept per song (vocals and the sum of the rest), so memory is bounded by the longest song
allowed (about 21 MB per minute of stereo audio) plus one batch of segments.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from demucs.apply import BagOfModels, apply_model
from demucs.htdemucs import HTDemucs

VOCALS = "vocals"


@dataclass(frozen=True)
class SeparationSettings:
    segment: float | None
    overlap: float
    shifts: int
    batch_segments: int
    device: torch.device
    autocast_dtype: torch.dtype | None
    seed: int


@dataclass
class _Track:
    """One pass over one song (a song has 1 + shifts - (shifts > 0) tracks when shifting)."""

    song: int
    audio: torch.Tensor  # (channels, samples), possibly shifted and padded
    trim: int  # output samples to drop at the start to undo the shift
    vocals: torch.Tensor
    rest: torch.Tensor
    weight: torch.Tensor


def model_segment_seconds(model: BagOfModels | HTDemucs, override: float | None) -> float:
    if override is not None:
        return float(override)
    segment = getattr(model, "segment", None)
    if segment is None and isinstance(model, BagOfModels):
        segment = min((m.segment for m in model.models if getattr(m, "segment", None)), default=None)
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


def _tracks(mixes: list[torch.Tensor], samplerate: int, settings: SeparationSettings) -> list[_Track]:
    """The passes to run: the song itself, or ``shifts`` randomly shifted copies (Demucs' shift trick)."""
    tracks = []
    for song, mix in enumerate(mixes):
        length = mix.shape[-1]
        if settings.shifts == 0:
            passes = [(mix, 0)]
        else:
            max_shift = int(0.5 * samplerate)
            padded = torch.nn.functional.pad(mix, (max_shift, max_shift))
            rng = np.random.default_rng([settings.seed, song, length])
            offsets = rng.integers(0, max_shift + 1, settings.shifts)
            passes = [(padded[:, o : o + length + max_shift], max_shift - int(o)) for o in offsets]
        for audio, trim in passes:
            n = audio.shape[-1]
            zeros = torch.zeros(audio.shape[0], n)
            tracks.append(_Track(song, audio, trim, zeros, zeros.clone(), torch.zeros(n)))
    return tracks


def separate(
    model: BagOfModels | HTDemucs, mixes: list[torch.Tensor], settings: SeparationSettings
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Separate float ``(channels, samples)`` mixtures; returns (vocals, sum of other stems) per song."""
    if VOCALS not in model.sources:
        raise ValueError(f"the model has no vocals source (sources: {model.sources})")
    vocal_index = model.sources.index(VOCALS)
    seg_len = int(model.samplerate * model_segment_seconds(model, settings.segment))
    stride = max(1, int((1 - settings.overlap) * seg_len))
    window = triangle_weight(seg_len, torch.device("cpu"))
    tracks = _tracks(mixes, model.samplerate, settings)
    jobs = [(t, offset) for t in tracks for offset in range(0, t.audio.shape[-1], stride)]
    autocast = (
        torch.autocast(device_type=settings.device.type, dtype=settings.autocast_dtype)
        if settings.autocast_dtype is not None
        else contextlib.nullcontext()
    )
    for start in range(0, len(jobs), settings.batch_segments):
        chunk_jobs = jobs[start : start + settings.batch_segments]
        batch = torch.stack([_window_of(track.audio, offset, seg_len) for track, offset in chunk_jobs])
        with torch.no_grad(), autocast:
            out = apply_model(
                model, batch, shifts=0, split=False, device=settings.device, segment=settings.segment
            )
        out = out.float().cpu()
        for row, (track, offset) in enumerate(chunk_jobs):
            n = min(seg_len, track.audio.shape[-1] - offset)
            left = (seg_len - n) // 2
            w = window[:n]
            vocals = out[row, vocal_index, :, left : left + n]
            rest = out[row, :, :, left : left + n].sum(dim=0) - vocals
            track.vocals[:, offset : offset + n] += w * vocals
            track.rest[:, offset : offset + n] += w * rest
            track.weight[offset : offset + n] += w
    results = []
    for song, mix in enumerate(mixes):
        length = mix.shape[-1]
        mine = [t for t in tracks if t.song == song]
        vocals = sum(t.vocals[:, t.trim : t.trim + length] / t.weight[t.trim : t.trim + length] for t in mine)
        rest = sum(t.rest[:, t.trim : t.trim + length] / t.weight[t.trim : t.trim + length] for t in mine)
        results.append((vocals / len(mine), rest / len(mine)))
    return results
