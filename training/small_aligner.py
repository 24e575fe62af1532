"""A small CTC aligner in Hugging Face's ``Wav2Vec2ForCTC`` format, trained on the synthetic corpus.

WhisperX aligns lyrics with a wav2vec2 CTC model: it needs, for every 20 ms frame, how likely each
character is. A random model makes every frame alike and squeezes words to the start of their
window. The synthetic corpus knows every sung line, so a tiny wav2vec2 (~0.1M parameters) learns
the characters of its espeak-ng voices in minutes on a CPU: crops around each true line, with the
backing mixed in at random levels (separated vocals are never clean), CTC on the lowercase
characters with ``|`` between words (what WhisperX feeds it), plus a cross-entropy per 20 ms frame
against the known word times (a word's characters share its span evenly). CTC alone from scratch
sat on its blank-only plateau for the first 400+ steps (measured); the frame loss leaves it at once.
The folder it writes (config, safetensors, vocabulary, processor) loads with
``whisperx.load_align_model(model_name=folder)``.

WhisperX feeds raw waveforms without normalising them, so training does the same.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly
from transformers import (
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)

from ..schemas.lyrics import ALIGNER_SPECIALS, ALIGNER_VOCABULARY
from .recipe import Recipe
from .small_separator import read_stem, song_keys

log = logging.getLogger(__name__)

RATE = 16000  # wav2vec2's input rate
FRAME_SECONDS = 0.02  # one emission per 320 samples (the conv feature encoder's stride)
RECIPE_FILE = "recipe.json"


@dataclass(frozen=True)
class AlignerRecipe(Recipe):
    """Every setting that changes the weights; :meth:`digest` is the recipe's identity."""

    seed: int = 0
    steps: int = 800
    batch_size: int = 8
    learning_rate: float = 2e-3
    hidden: int = 64
    layers: int = 2
    conv_channels: int = 32
    #: seconds of audio kept around a line, at most, on each side (uniform)
    context_seconds: float = 0.6
    #: level of the backing mixed under the voice, dB relative to the song's own mix (uniform)
    backing_db: tuple[float, float] = (-25.0, 0.0)
    #: weight of the frame-level cross-entropy against the known word times (CTC alone plateaus for long)
    frame_loss_weight: float = 1.0
    threads: int = 2

    def config(self, vocab_size: int) -> Wav2Vec2Config:
        return Wav2Vec2Config(
            vocab_size=vocab_size, hidden_size=self.hidden, num_hidden_layers=self.layers, num_attention_heads=2,
            intermediate_size=2 * self.hidden, conv_dim=(self.conv_channels,) * 7, num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2, pad_token_id=0, do_stable_layer_norm=False, feat_extract_norm="group",
            ctc_loss_reduction="mean", ctc_zero_infinity=True, layerdrop=0.0, hidden_dropout=0.0,
            activation_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0, mask_time_prob=0.0,
        )


def vocabulary() -> dict[str, int]:
    return {token: i for i, token in enumerate(ALIGNER_VOCABULARY)}


def transcript_ids(text: str, vocab: dict[str, int]) -> list[int]:
    """CTC targets of a line as WhisperX spells it: lowercase, ``|`` between words, unknown characters dropped."""
    words = ["".join(c for c in word.lower() if c in vocab and c not in ALIGNER_SPECIALS) for word in text.split()]
    return [vocab[c] for c in "|".join(w for w in words if w)]


@dataclass(frozen=True)
class _Line:
    audio: np.ndarray  # the song's voice at 16 kHz, mono
    backing: np.ndarray  # the song's accompaniment at 16 kHz, mono
    start: float
    end: float
    targets: list[int]
    #: (start, end, character ids) of each word, seconds in the song
    words: tuple[tuple[float, float, tuple[int, ...]], ...]

    def frame_targets(self, crop_start: float, frames: int) -> torch.Tensor:
        """A character per 20 ms frame: each word's characters share its true span evenly; blank elsewhere."""
        targets = torch.zeros(frames, dtype=torch.long)  # <pad>, CTC's blank
        for start, end, chars in self.words:
            bounds = np.linspace(start - crop_start, end - crop_start, len(chars) + 1) / FRAME_SECONDS
            for char, a, b in zip(chars, bounds[:-1], bounds[1:], strict=True):
                targets[max(0, round(a)) : max(0, min(frames, round(b)))] = char
        return targets


def _mono16k(audio: np.ndarray) -> np.ndarray:
    return resample_poly(audio.mean(axis=0), 160, 441).astype(np.float32)


def _lines(corpus: Path, vocab: dict[str, int]) -> list[_Line]:
    out = []
    for key in song_keys(corpus):
        truth = json.loads((corpus / "truth" / f"{key}.json").read_text())
        voice, backing = _mono16k(read_stem(corpus, key, "vocals")), _mono16k(read_stem(corpus, key, "accomp"))
        out += [_Line(voice, backing, line["start"], line["end"], transcript_ids(line["text"], vocab),
                      tuple((w["start"], w["end"], tuple(transcript_ids(w["word"], vocab))) for w in line["words"]))
                for line in truth["lines"]]
    if not out:
        raise ValueError(f"{corpus} holds no sung lines")
    return out


def _example(line: _Line, recipe: AlignerRecipe, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A crop around the line with the backing mixed in; returns it and its start time in the song."""
    before, after = rng.uniform(0, recipe.context_seconds, 2)
    a = max(0, round((line.start - before) * RATE))
    b = min(len(line.audio), round((line.end + after) * RATE))
    level = 10 ** (rng.uniform(*recipe.backing_db) / 20)
    return line.audio[a:b] + level * line.backing[a:b], a / RATE


def _batch(model: Wav2Vec2ForCTC, lines: list[_Line], recipe: AlignerRecipe,
           rng: np.random.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Model inputs with CTC labels, and the frame targets (-100 past each crop's end)."""
    chosen = [lines[int(i)] for i in rng.integers(len(lines), size=recipe.batch_size)]
    crops = [_example(line, recipe, rng) for line in chosen]
    width = max(len(audio) for audio, _ in crops)
    values = torch.zeros(len(crops), width)
    mask = torch.zeros(len(crops), width, dtype=torch.long)
    for row, (audio, _) in enumerate(crops):
        values[row, : len(audio)] = torch.from_numpy(audio)
        mask[row, : len(audio)] = 1
    labels = torch.full((len(chosen), max(len(line.targets) for line in chosen)), -100)
    frames = [int(model._get_feat_extract_output_lengths(len(audio))) for audio, _ in crops]
    frame_targets = torch.full((len(chosen), int(model._get_feat_extract_output_lengths(width))), -100)
    for row, line in enumerate(chosen):
        labels[row, : len(line.targets)] = torch.tensor(line.targets)
        frame_targets[row, : frames[row]] = line.frame_targets(crops[row][1], frames[row])
    return {"input_values": values, "attention_mask": mask, "labels": labels}, frame_targets


def train_aligner(recipe: AlignerRecipe, corpus: Path, out_dir: Path) -> dict:
    """Train on the lines of synthetic ``corpus``; write the Hugging Face folder ``out_dir``; return stats."""
    vocab = vocabulary()
    lines = _lines(corpus, vocab)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    model = Wav2Vec2ForCTC(recipe.config(len(vocab)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.learning_rate, total_steps=recipe.steps,
                                                   pct_start=0.1)
    started, losses = time.perf_counter(), []
    model.train()
    try:
        for step in range(recipe.steps):
            inputs, frame_targets = _batch(model, lines, recipe, rng)
            out = model(**inputs)
            frame_loss = torch.nn.functional.cross_entropy(out.logits.transpose(1, 2), frame_targets)
            loss = out.loss + recipe.frame_loss_weight * frame_loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if step % 100 == 0:
                log.info("aligner step %d/%d: CTC %.4f", step, recipe.steps, losses[-1])
    finally:
        torch.set_num_threads(threads)
    _save(model.eval(), vocab, recipe, out_dir)
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": recipe.steps, "seconds": round(time.perf_counter() - started, 1), "lines": len(lines),
            "parameters": sum(p.numel() for p in model.parameters()), "first_loss": round(losses[0], 4),
            "final_loss": round(float(np.mean(tail)), 4)}


def _save(model: Wav2Vec2ForCTC, vocab: dict[str, int], recipe: AlignerRecipe, out_dir: Path) -> None:
    """Write the model and its processor beside ``out_dir``, then move the folder into place."""
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    tokenizer = Wav2Vec2CTCTokenizer(str(tmp / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=RATE, padding_value=0.0, do_normalize=False,
                                         return_attention_mask=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / RECIPE_FILE).write_text(json.dumps({"recipe": dataclasses.asdict(recipe), "digest": recipe.digest()}))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
