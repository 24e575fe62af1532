"""Alignment models for WhisperX, and the offline ("smoke") ones the project builds itself.

Real runs load a wav2vec2 CTC model through ``whisperx.load_align_model`` (its default model for
the language, a Hugging Face name, or a local folder). Offline, :func:`build_smoke_align_model`
saves a tiny randomly initialised ``Wav2Vec2ForCTC`` with its processor in the Hugging Face format,
and :func:`provision_punkt` writes the NLTK Punkt tables WhisperX' sentence splitter loads, so
``load_align_model(model_name=folder)`` and ``whisperx.align`` run with no network at all.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)

from ..pipeline.errors import UserError
from ..schemas.lyrics import ALIGNER_VOCABULARY
from .model_provenance import HF_WEIGHT_FILES

log = logging.getLogger(__name__)

SMOKE_ALIGN_MODEL = "smoke_wav2vec2"
SMOKE_MARKER = "SMOKE_MODEL.json"
PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def build_smoke_align_model(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random wav2vec2 CTC model + processor to ``folder`` (no-op if present)."""
    if (folder / SMOKE_MARKER).exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(ALIGNER_VOCABULARY)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    )
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    config = Wav2Vec2Config(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, conv_dim=(32,) * 7, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, pad_token_id=0, do_stable_layer_norm=True,
        feat_extract_norm="layer",
    )
    torch.manual_seed(seed)
    Wav2Vec2ForCTC(config).save_pretrained(folder, safe_serialization=True)
    (folder / SMOKE_MARKER).write_text(json.dumps({"model": SMOKE_ALIGN_MODEL, "seed": seed, "random_weights": True}))
    log.info("built smoke alignment model in %s", folder)
    return folder


def provision_punkt(nltk_dir: Path, languages: list[str]) -> Path:
    """Write minimal Punkt parameter tables (no learned abbreviations) for ``languages``.

    WhisperX splits aligned text into sentences with NLTK's Punkt model, which NLTK would
    download; empty tables give Punkt's default rules (split after ., ! and ?).
    """
    for language in languages:
        lang_dir = nltk_dir / "tokenizers" / "punkt_tab" / language
        lang_dir.mkdir(parents=True, exist_ok=True)
        for name in PUNKT_FILES:
            path = lang_dir / name
            if not path.exists():
                path.write_text("")
    return nltk_dir


def check_hf_ctc_folder(folder: Path, key: str) -> None:
    """Raise a :class:`UserError` naming ``key`` unless ``folder`` holds a CTC model's config, weights and
    processor (the weights are not loaded: that is the worker's job)."""
    if not folder.is_dir():
        raise UserError(f"{key} = {str(folder)!r}: no such folder (a relative path resolves against the folder "
                        "songcorpus runs in, or the songcorpus project; see the README)")
    if not any((folder / name).is_file() for name in HF_WEIGHT_FILES[1:]):
        raise UserError(f"{key} = {str(folder)!r} holds no weights ({' or '.join(HF_WEIGHT_FILES[1:])})")
    try:
        AutoConfig.from_pretrained(folder)
        Wav2Vec2Processor.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise UserError(f"{key} = {str(folder)!r} is not a wav2vec2 CTC model folder with its processor: "
                        f"{str(exc).splitlines()[0]}") from None
