"""A small separator in Demucs' own classes, trained on the synthetic corpus's exact stems.

Real Demucs weights cannot be downloaded offline, and random ones give meaningless stems. The
synthetic corpus keeps the exact vocals and accompaniment it mixed, so a small HTDemucs (same
class, same code path as ``htdemucs``, ~0.4M parameters) learns the split in minutes on a CPU:
random crops of two seconds, vocals and a backing drawn from the same or another song, remixed at
random levels (the backing up to several dB louder than the voice), L1 on the waveforms as Demucs
trains. The result is saved as a Demucs repository (a ``.th`` package and a ``.yaml`` bag), so
``demucs.pretrained.get_model(name, repo=folder)`` loads it like any other.

Training is deterministic for a recipe on one machine: every random draw comes from generators
seeded by the recipe, and the thread count is part of the recipe (CPU reductions depend on it).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml
from demucs.htdemucs import HTDemucs
from demucs.states import save_with_checksum

from .recipe import Recipe

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100
SOURCES = ["vocals", "accompaniment"]
SEPARATOR_NAME = "synth_htdemucs"


@dataclass(frozen=True)
class SeparatorRecipe(Recipe):
    """Every setting that changes the weights; :meth:`digest` is the recipe's identity."""

    seed: int = 0
    steps: int = 400
    batch_size: int = 4
    crop_seconds: float = 2.0
    learning_rate: float = 2e-3
    channels: int = 8
    depth: int = 4
    transformer_layers: int = 1
    #: the voice's level relative to its song, dB (uniform); the backing's likewise
    vocals_gain_db: tuple[float, float] = (-6.0, 3.0)
    accomp_gain_db: tuple[float, float] = (-3.0, 6.0)
    #: share of crops whose backing comes from another song than the voice
    remix_share: float = 0.5
    threads: int = 2

    def model_kwargs(self) -> dict:
        """HTDemucs' constructor arguments (besides the sources); Demucs' loader calls it with them."""
        return {"samplerate": SAMPLE_RATE, "audio_channels": 2, "channels": self.channels, "depth": self.depth,
                "t_layers": self.transformer_layers, "t_heads": 1, "dconv_comp": 4,
                "segment": Fraction(self.crop_seconds).limit_denominator(100)}

    def build(self) -> HTDemucs:
        return HTDemucs(SOURCES, **self.model_kwargs())


@dataclass(frozen=True)
class _Stems:
    vocals: list[np.ndarray]  # (2, samples) float32 per song
    accomp: list[np.ndarray]


def song_keys(corpus: Path) -> list[str]:
    """Keys of the songs in a synthetic corpus, in order."""
    return sorted(p.name.removesuffix(".json") for p in (corpus / "truth").glob("*.json"))


def read_stem(corpus: Path, key: str, stem: str) -> np.ndarray:
    """One exact stem of a synthetic song as (channels, samples) float32."""
    audio, rate = sf.read(corpus / "stems" / f"{key}.{stem}.flac", dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{key}.{stem}: {rate} Hz, expected {SAMPLE_RATE}")
    return np.ascontiguousarray(audio.T)


def _load(corpus: Path) -> _Stems:
    keys = song_keys(corpus)
    if not keys:
        raise ValueError(f"{corpus} holds no synthetic songs (no truth/*.json)")
    return _Stems([read_stem(corpus, k, "vocals") for k in keys], [read_stem(corpus, k, "accomp") for k in keys])


def _start(audio: np.ndarray, length: int, rng: np.random.Generator) -> int:
    return int(rng.integers(0, audio.shape[-1] - length + 1))


def _batch(stems: _Stems, recipe: SeparatorRecipe, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(mixtures (B, 2, T), targets (B, 2 sources, 2, T)): random crops remixed at random levels.

    A crop either keeps the backing that was really under its voice, or takes one from another song
    and time (``remix_share``), so the model cannot lean on how one song's parts go together.
    """
    length = round(recipe.crop_seconds * SAMPLE_RATE)
    songs = len(stems.vocals)
    targets = []
    for _ in range(recipe.batch_size):
        i = int(rng.integers(songs))
        remix = bool(rng.random() < recipe.remix_share)
        j = int(rng.integers(songs)) if remix else i
        v = _start(stems.vocals[i], length, rng)
        a = _start(stems.accomp[j], length, rng) if remix else v
        gains = 10 ** (np.array([rng.uniform(*recipe.vocals_gain_db), rng.uniform(*recipe.accomp_gain_db)]) / 20)
        targets.append(np.stack([stems.vocals[i][:, v : v + length] * gains[0],
                                 stems.accomp[j][:, a : a + length] * gains[1]]))
    target = torch.from_numpy(np.stack(targets).astype(np.float32))
    return target.sum(dim=1), target


def train_separator(recipe: SeparatorRecipe, corpus: Path, out_repo: Path, name: str = SEPARATOR_NAME) -> dict:
    """Train on the songs of synthetic ``corpus``; write the Demucs repository ``out_repo``; return stats."""
    stems = _load(corpus)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    model = recipe.build()
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.learning_rate, total_steps=recipe.steps,
                                                   pct_start=0.1)
    started, losses = time.perf_counter(), []
    model.train()
    try:
        for step in range(recipe.steps):
            mix, target = _batch(stems, recipe, rng)
            loss = torch.nn.functional.l1_loss(model(mix), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if step % 50 == 0:
                log.info("separator step %d/%d: L1 %.5f", step, recipe.steps, losses[-1])
    finally:
        torch.set_num_threads(threads)
    model.segment = Fraction(recipe.crop_seconds).limit_denominator(100)  # training sets it per batch
    _save_repo(model, recipe, out_repo, name)
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": recipe.steps, "seconds": round(time.perf_counter() - started, 1), "songs": len(stems.vocals),
            "parameters": sum(p.numel() for p in model.parameters()), "first_loss": round(losses[0], 6),
            "final_loss": round(float(np.mean(tail)), 6)}


def _save_repo(model: HTDemucs, recipe: SeparatorRecipe, out_repo: Path, name: str) -> None:
    """Write a Demucs repository (package + bag) beside ``out_repo``, then move it into place."""
    tmp = out_repo.with_name(f".{out_repo.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    package = {"klass": HTDemucs, "args": [SOURCES], "kwargs": recipe.model_kwargs(),
               "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
               "training_args": {"recipe": dataclasses.asdict(recipe), "recipe_digest": recipe.digest()}}
    signature = f"{name}_{recipe.digest()[:8]}"
    save_with_checksum(package, tmp / f"{signature}.th")
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump({"models": [signature]}))
    shutil.rmtree(out_repo, ignore_errors=True)
    tmp.rename(out_repo)
