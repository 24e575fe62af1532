"""The DSLM's examples from a dataset version: each clip's lyrics and token arrays, read with ``open_dataset``.

They are held in memory as uint16 (3 streams x 50 tokens/s x 2 bytes: the paper's 8,500 hours are about 9 GB),
so that any step's batch can be drawn from (seed, step) alone: exact resume and the same batches on any number
of workers."""

from __future__ import annotations

import numpy as np

from ..models.dslm import DslmConfig
from ..models.dslm.batches import Example
from ..models.dslm.lyrics import encode_lyrics
from ..pipeline.dataset_reader import open_dataset


def load_examples(version_dir: str, split: str, config: DslmConfig) -> list[Example]:
    """The clips of ``split`` that have lyrics and tokens, in version order, cut to the model's limits."""
    examples = []
    for sample in open_dataset(version_dir, split, audio=(), tokens=True, epoch_shuffle=False):
        names = ("vocals_tokens", "accomp_tokens", "song_tokens")
        if any(name not in sample for name in names):
            raise ValueError(f"clip {sample['key']} of {version_dir} has no token arrays; run the job with a "
                             "[stages.tokenize] section (and a tokenizer) to publish a version with tokens")
        vocals, accompaniment, song = (sample[name] for name in names)
        steps = min(len(vocals), len(accompaniment), len(song), config.max_tokens)
        lyrics = tuple(encode_lyrics(sample["json"].get("lyrics") or ""))[: config.max_lyrics]
        if steps < 2 or not lyrics:
            continue  # an instrumental clip teaches nothing about lyrics; a 1-token clip has nothing to predict
        if int(max(vocals[:steps].max(), accompaniment[:steps].max(), song[:steps].max())) >= config.codes:
            raise ValueError(f"clip {sample['key']} has token ids >= {config.codes}: the version was tokenized "
                             "with a larger codebook than the DSLM's 'codes'")
        compact = np.uint16 if config.codes <= 65536 else np.uint32  # a quarter of int64's memory
        streams = (np.asarray(s[:steps]).astype(compact) for s in (vocals, accompaniment, song))
        examples.append(Example(sample["key"], lyrics, *streams))
    return examples
