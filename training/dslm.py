"""DSLM training: SongCreator's multi-task mix on a tokenized dataset version, through the shared loop.

Every worker builds the step's whole global batch from (seed, step) and takes its part, so the batches, the
recipes and the masking are the same however many workers and micro-batches share them; each part's loss is
its summed cross-entropy over the whole batch's token counts (``dslm_loss``), so the parts add up to exactly
the loss of the whole batch. Adam(0.9, 0.98, 1e-9) with a Noam schedule, as in the paper.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..models.dslm import Dslm, DslmConfig, config_for, dslm_loss
from ..models.dslm.batches import STREAMS, Batch, Example, Masking, draw_recipes, make_batch
from ..models.dslm.lyrics import LYRICS_TOKENIZER_VERSION, VOCABULARY
from ..pipeline.dataset_reader import resolve_version, version_tokens
from ..pipeline.errors import UserError
from ..pipeline.storage import Storage
from ..schemas.model_artifact import DSLM_CONFIG, DSLM_WEIGHTS, ModelArtifact
from ..schemas.train_configs import DslmTrainConfig
from .artifacts import publish_weights
from .dslm_data import load_examples
from .loop import BatchPart, LoopSettings, loss_curve, run_folder, step_generator, train_on_ray


def noam_factor(step: int, warmup: int) -> float:
    """The Noam schedule scaled to peak at 1 after ``warmup`` steps: linear rise, then ``1/sqrt(step)``."""
    n = step + 1
    return min(n / warmup, math.sqrt(warmup / n))


def predicted_accuracy(logits: Tensor, target: Tensor) -> tuple[int, int]:
    """(correct top-1 predictions, predicted tokens) where ``target`` is not -100."""
    where = target != -100
    return int((logits.argmax(-1)[where] == target[where]).sum()), int(where.sum())


@dataclass
class DslmTask:
    """The loop's :class:`~songcorpus.training.loop.Task` for the DSLM."""

    examples: list[Example]
    config: DslmConfig
    train: DslmTrainConfig

    def build(self) -> nn.Module:
        return Dslm(self.config)

    def optimizer(self, model: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        optimizer = torch.optim.Adam(model.parameters(), lr=self.train.peak_learning_rate, betas=(0.9, 0.98),
                                     eps=1e-9)
        warmup = self.train.warmup_steps
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: noam_factor(step, warmup))

    def global_batch(self, step: int) -> Batch:
        """Step ``step``'s whole batch: examples, recipes and masking drawn from (seed, step)."""
        generator = step_generator(self.train.loop.seed, step)
        picks = torch.randint(len(self.examples), (self.train.batch_size,), generator=generator).tolist()
        recipes = draw_recipes(self.train.batch_size, self.train.mix, generator)
        masking = Masking(given=self.train.given_mask, lyrics=self.train.lyrics_mask)
        return make_batch([self.examples[i] for i in picks], recipes, self.config, masking, generator)

    def loss(self, model: nn.Module, step: int, part: BatchPart,
             generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        whole = self.global_batch(step)
        counts = whole.counts()
        batch = whole.rows(part.take(range(self.train.batch_size))).to(next(model.parameters()).device)
        out = model(batch.lyrics, batch.lyrics_padding, batch.vocals, batch.accompaniment, batch.masks, batch.padding)
        loss = dslm_loss(out, batch.targets, counts) * part.count
        logged = {}
        for name in STREAMS:
            correct, predicted = predicted_accuracy(getattr(out, name), batch.targets[name])
            logged[f"accuracy_{name}"] = correct / max(predicted, 1)
        return loss, logged


def train_dslm(root: str, train: DslmTrainConfig, job_name: str) -> ModelArtifact:
    """Train a DSLM on the job's tokenized dataset version under ``root`` and publish it."""
    storage = Storage(root)
    version_dir, manifest = resolve_version(train.version, root)
    tokens = version_tokens(manifest, "DSLM")
    config = config_for(train.size, codes=int(tokens["codes"]), lyrics_vocab=len(VOCABULARY))
    examples = load_examples(version_dir, "train", config)
    if not examples:
        raise UserError(f"version {manifest['id']} has no train clips with lyrics and tokens")
    work = run_folder(storage, "dslm", manifest["id"], train.model_dump(mode="json"))
    loop = LoopSettings(train.loop, work / "checkpoints")
    result = train_on_ray(DslmTask(examples, config, train), loop)
    history = result.history
    metrics = {
        "train_clips": len(examples),
        **loss_curve(history),
        **{f"train_{key}_last": round(history[-1][key], 4) for key in history[-1] if key.startswith("accuracy_")},
    }
    saved = {"dslm": config.to_dict(), "lyrics_tokenizer": LYRICS_TOKENIZER_VERSION, "token_rate": tokens["rate"],
             "tokenizer": tokens["tokenizer"]}
    return publish_weights(
        storage, "dslm", result.state_dict, (DSLM_WEIGHTS, DSLM_CONFIG), saved, name=f"dslm-{train.size}",
        summary=(f"DSLM {train.size}, {train.loop.steps} steps x {train.batch_size} clips on {len(examples)} "
                 f"clips of {job_name} {manifest['id']} (tokenizer {tokens['tokenizer']}, K={tokens['codes']}); "
                 f"train loss {metrics['train_loss_first']:.3f} -> {metrics['train_loss_last']:.3f}"),
        config=train.model_dump(mode="json"),
        lineage={"dataset_version": manifest["id"], "tokenizer": tokens["tokenizer"], "job": job_name},
        metrics=metrics,
    )


def load_dslm(folder: Path) -> tuple[Dslm, dict]:
    """A DSLM artifact's model (eval mode) and its config file's contents."""
    from safetensors.torch import load_file

    saved = json.loads((folder / DSLM_CONFIG).read_text())
    if saved["lyrics_tokenizer"] != LYRICS_TOKENIZER_VERSION:
        raise UserError(f"{folder} was trained with lyrics tokenizer v{saved['lyrics_tokenizer']}; this code has "
                        f"v{LYRICS_TOKENIZER_VERSION}")
    model = Dslm(DslmConfig.from_dict(saved["dslm"]))
    model.load_state_dict(load_file(folder / DSLM_WEIGHTS))
    return model.eval(), saved
