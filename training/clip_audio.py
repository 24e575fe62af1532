"""Audio (and tokens) of a dataset version's clips for the trainers, read with ``open_dataset``, and random crops.

Every trainer holds its clips in memory and draws each step's crops from (seed, step) alone, which is what makes
a resumed run and a run on more workers see the same batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as taf
from torch import Tensor

from ..pipeline.dataset_reader import AUDIO_MEMBERS, TOKEN_MEMBERS, open_dataset, split_with_clips
from ..pipeline.errors import UserError


def _mono(sample: dict, member: str, sample_rate: int) -> Tensor:
    return taf.resample(sample[member].float().mean(dim=0), int(sample[f"{member}_rate"]), sample_rate)


def load_clips(version_dir: str, split: str, sample_rate: int) -> list[Tensor]:
    """Every clip's mix, vocals and accompaniment of ``split`` as mono tensors at ``sample_rate``, in version
    order."""
    return [_mono(sample, member, sample_rate) for sample in open_dataset(version_dir, split, tokens=False)
            for member in AUDIO_MEMBERS]


def train_and_held_out_clips(version_dir: str, manifest: dict, eval_split: str,
                             sample_rate: int) -> tuple[list[Tensor], str, list[Tensor]]:
    """The train split's clip streams (refused when it has none), the held-out split's name (``eval_split``, or
    the first split with clips) and its clip streams, as :func:`load_clips` gives them."""
    clips = load_clips(version_dir, "train", sample_rate)
    if not clips:
        raise UserError(f"version {manifest['id']} has no train clips")
    held_out_split = split_with_clips(manifest, eval_split)
    return clips, held_out_split, load_clips(version_dir, held_out_split, sample_rate)


#: the DSLM's stream names for the audio members of a clip
STREAM_OF_MEMBER = {"mix": "song", "vocals": "vocals", "accomp": "accompaniment"}


def load_clip_audio(version_dir: str, split: str, sample_rate: int) -> dict[str, dict[str, Tensor]]:
    """Every clip of ``split``: its mono audio at ``sample_rate`` per stream (song, vocals, accompaniment)."""
    return {sample["key"]: {STREAM_OF_MEMBER[m]: _mono(sample, m, sample_rate) for m in AUDIO_MEMBERS}
            for sample in open_dataset(version_dir, split, tokens=False, epoch_shuffle=False)}


@dataclass(frozen=True)
class TokenizedAudio:
    """One stream of one clip: its mono audio and its semantic tokens."""

    key: str  # "<clip id>.<stream>", the stream named as the token members are (song, vocals, accomp)
    audio: Tensor
    tokens: np.ndarray


def load_tokenized_audio(version_dir: str, split: str, sample_rate: int) -> list[TokenizedAudio]:
    """Every clip's three streams of ``split`` with their tokens, in version order."""
    out = []
    for sample in open_dataset(version_dir, split, tokens=True, epoch_shuffle=False):
        for member, stream in zip(AUDIO_MEMBERS, TOKEN_MEMBERS, strict=True):
            if f"{stream}_tokens" not in sample:
                raise ValueError(f"clip {sample['key']} of {version_dir} has no token arrays; run the job with a "
                                 "[stages.tokenize] section (and a tokenizer) to publish a version with tokens")
            out.append(TokenizedAudio(f"{sample['key']}.{stream}", _mono(sample, member, sample_rate),
                                      np.asarray(sample[f"{stream}_tokens"])))
    return out


def random_crops(clips: list[Tensor], count: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` random crops of at most ``length`` samples (zero-padded) and their lengths."""
    batch, lengths = torch.zeros(count, length), torch.zeros(count, dtype=torch.long)
    for row in range(count):
        clip = clips[int(torch.randint(len(clips), (1,), generator=generator))]
        start = int(torch.randint(max(1, clip.numel() - length + 1), (1,), generator=generator))
        piece = clip[start : start + length]
        batch[row, : piece.numel()], lengths[row] = piece, piece.numel()
    return batch, lengths
