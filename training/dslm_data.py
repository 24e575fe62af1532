"""The DSLM's examples from a dataset version: each clip's lyrics and token arrays, read with ``open_dataset``."""

from __future__ import annotations

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
        examples.append(Example(sample["key"], lyrics, vocals[:steps], accompaniment[:steps], song[:steps]))
    return examples
