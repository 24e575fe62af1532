"""Tokenizer training: BEST-RQ pretraining on a dataset version, k-means on one layer, one tokenizer artifact.

1. Read the clips of the version's train split through ``open_dataset`` (songs, vocals and accompaniment,
   each to 24 kHz mono) and fit the feature normaliser on them.
2. Pretrain BEST-RQ with the shared loop (``training.loop``, Ray Train): random crops fixed by (seed, step),
   masks from the loop's checkpointed generator, so a killed run resumes on the same loss curve.
3. Fit the semantic quantizer: k-means (k-means++ start, Lloyd iterations, torch, seeded) on the chosen
   layer's outputs over frames sampled from the train split.
4. Judge it on the held-out split: masked-prediction loss and accuracy (next to chance: 1/K and the most
   frequent target), codebook usage of the random-projection targets and of the semantic tokens, token rate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.bestrq import BestRq, BestRqConfig, Tokenizer, codebook_usage, config_for
from ..pipeline.dataset_reader import resolve_version
from ..pipeline.storage import Storage
from ..schemas.model_artifact import TOKENIZER_CONFIG, TOKENIZER_WEIGHTS, ModelArtifact
from ..schemas.train_configs import TokenizerTrainConfig
from .artifacts import publish_weights
from .clip_audio import random_crops, train_and_held_out_clips
from .loop import (
    BatchPart,
    LoopSettings,
    adamw_warmup_cosine,
    loss_curve,
    run_folder,
    step_generator,
    train_on_ray,
    unwrap,
)

log = logging.getLogger(__name__)


@dataclass
class TokenizerTask:
    """The loop's :class:`~songcorpus.training.loop.Task` for BEST-RQ pretraining."""

    clips: list[Tensor]
    config: BestRqConfig
    train: TokenizerTrainConfig

    def build(self) -> nn.Module:
        model = BestRq(self.config)
        for clip in self.clips:  # the same global statistics on every worker
            features, frames = model.front_end(clip[None], torch.tensor([clip.numel()]))
            model.normalizer.update(features, frames)
        return model

    def optimizer(self, model: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        return adamw_warmup_cosine(model, self.train.learning_rate, self.train.warmup_steps, self.train.loop.steps)

    def loss(self, model: nn.Module, step: int, part: BatchPart,
             generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        data = step_generator(self.train.loop.seed, step)
        length = round(self.train.crop_seconds * self.config.sample_rate)
        audio, lengths = random_crops(self.clips, self.train.batch_size, length, data)
        audio, lengths = audio[part.index :: part.count], lengths[part.index :: part.count]
        bestrq = unwrap(model)
        if not isinstance(bestrq, BestRq):
            raise TypeError(f"the tokenizer task trains BestRq, got {type(bestrq).__name__}")
        features, frames = bestrq.front_end(audio, lengths)
        out = bestrq.loss(features, frames, generator)
        return out.loss, {"accuracy": float(out.accuracy)}


def kmeans(points: Tensor, k: int, iterations: int, generator: torch.Generator) -> Tensor:
    """Centroids ``(k, dim)`` of ``points`` ``(n, dim)``: k-means++ start, then Lloyd iterations."""
    points = points.float()
    first = int(torch.randint(points.shape[0], (1,), generator=generator))
    centroids = [points[first]]
    nearest = ((points - centroids[0]) ** 2).sum(dim=1)
    for _ in range(1, k):
        pick = int(torch.multinomial(nearest.clamp(min=0) + 1e-12, 1, generator=generator))
        centroids.append(points[pick])
        nearest = torch.minimum(nearest, ((points - points[pick]) ** 2).sum(dim=1))
    c = torch.stack(centroids)
    for _ in range(iterations):
        assign = torch.cdist(points, c).argmin(dim=1)
        sums = torch.zeros_like(c).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=k).float()[:, None]
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)  # an empty cluster keeps its centroid
    return c


def fit_vq(frames: Tensor, codes: int, dim: int, steps: int, generator: torch.Generator) -> tuple[nn.Linear, Tensor]:
    """A learned VQ on the layer's frames, VQ-VAE style: a linear map down to ``dim`` and a map back up, trained to
    reconstruct the frames through the codebook (straight-through, commitment 0.25), the codebook itself an
    exponential moving average (0.99) of the frames assigned to each code. Returns the down map and the codebook."""
    torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
    frames = frames.float()
    down, up = nn.Linear(frames.shape[1], dim), nn.Linear(dim, frames.shape[1])
    with torch.no_grad():
        codebook = down(frames[torch.randint(frames.shape[0], (codes,), generator=generator)])
    sums, counts = codebook.clone(), torch.ones(codes)
    optimizer = torch.optim.Adam([*down.parameters(), *up.parameters()], lr=1e-3)
    for _ in range(steps):
        batch = frames[torch.randint(frames.shape[0], (min(1024, frames.shape[0]),), generator=generator)]
        z = down(batch)
        assign = torch.cdist(z.detach(), codebook).argmin(dim=1)
        q = codebook[assign]
        loss = F.mse_loss(up(z + (q - z).detach()), batch) + 0.25 * F.mse_loss(z, q)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            counts.mul_(0.99).add_(torch.bincount(assign, minlength=codes).float(), alpha=0.01)
            sums.mul_(0.99).add_(torch.zeros_like(sums).index_add_(0, assign, z.detach()), alpha=0.01)
            codebook = sums / counts.clamp(min=1e-5)[:, None]
    return down, codebook


def layer_frames(tokenizer: Tokenizer, clips: list[Tensor], limit: int, generator: torch.Generator) -> Tensor:
    hidden = [tokenizer.hidden_states(clip[None], torch.tensor([clip.numel()]))[0][0] for clip in clips]
    frames = torch.cat(hidden)
    if frames.shape[0] > limit:
        frames = frames[torch.randperm(frames.shape[0], generator=generator)[:limit]]
    return frames


@torch.no_grad()
def judge(tokenizer: Tokenizer, clips: list[Tensor], train: TokenizerTrainConfig) -> dict[str, Any]:
    """Held-out masked loss and accuracy (with chance levels), codebook usage, token rate."""
    bestrq, config = tokenizer.bestrq, tokenizer.bestrq.config
    generator = torch.Generator().manual_seed(12345)
    losses, accuracies, targets, tokens, rate_errors = [], [], [], [], []
    for clip in clips:
        lengths = torch.tensor([clip.numel()])
        features, frames = bestrq.front_end(clip[None], lengths)
        out = bestrq.loss(features, frames, generator)
        if int(out.masked_frames):
            losses.append(float(out.loss))
            accuracies.append(float(out.accuracy))
        targets.append(bestrq.targets(features)[0, :, 0])
        clip_tokens, _ = tokenizer(clip[None], lengths)
        tokens.append(clip_tokens[0])
        rate_errors.append(abs(clip_tokens.shape[1] - round(clip.numel() / config.sample_rate * config.frame_rate)))
    all_targets = torch.cat(targets)
    majority = float(torch.bincount(all_targets, minlength=config.codebook_size).max()) / max(all_targets.numel(), 1)
    return {
        "clips": len(clips),
        "masked_loss": round(sum(losses) / max(len(losses), 1), 4),
        "masked_accuracy": round(sum(accuracies) / max(len(accuracies), 1), 4),
        "chance_accuracy": round(1 / config.codebook_size, 4),
        "majority_accuracy": round(majority, 4),
        "targets_usage": codebook_usage(all_targets, config.codebook_size).to_dict(),
        "tokens_usage": codebook_usage(torch.cat(tokens), train.codes).to_dict(),
        "token_rate_hz": config.frame_rate,
        "max_token_count_error_frames": max(rate_errors, default=0),
    }


def train_tokenizer(root: str, train: TokenizerTrainConfig, job_name: str) -> ModelArtifact:
    """Pretrain, fit k-means, judge and publish a tokenizer from the job's dataset version under ``root``."""
    storage = Storage(root)
    version_dir, manifest = resolve_version(train.version, root)
    config = config_for(train.size)
    clips, held_out_split, held_out = train_and_held_out_clips(version_dir, manifest, train.eval_split,
                                                               config.sample_rate)
    work = run_folder(storage, "tokenizer", manifest["id"], train.model_dump(mode="json"))
    loop = LoopSettings(train.loop, work / "checkpoints")
    result = train_on_ray(TokenizerTask(clips, config, train), loop)
    projection_dim = train.vq_dim if train.quantizer == "vq" else None
    tokenizer = Tokenizer(config, train.layer, train.codes, projection_dim)
    tokenizer.bestrq.load_state_dict(result.state_dict)
    generator = torch.Generator().manual_seed(train.loop.seed)
    with torch.no_grad():
        frames = layer_frames(tokenizer, clips, train.kmeans_max_frames, generator)
    if train.quantizer == "vq":
        down, codebook = fit_vq(frames, train.codes, train.vq_dim, train.vq_steps, generator)
        tokenizer.semantic.load_state_dict({"projection.weight": down.weight.detach(),
                                            "projection.bias": down.bias.detach(), "centroids": codebook})
    else:
        tokenizer.semantic.set_centroids(kmeans(frames, train.codes, train.kmeans_iterations, generator))
    metrics = {"held_out_split": held_out_split, **judge(tokenizer, held_out, train),
               **loss_curve(result.history)}
    saved = {"bestrq": config.to_dict(), "layer": train.layer, "codes": train.codes, "projection_dim": projection_dim}
    return publish_weights(
        storage, "tokenizer", tokenizer.state_dict(), (TOKENIZER_WEIGHTS, TOKENIZER_CONFIG), saved,
        name=f"bestrq-{train.size}",
        summary=(f"BEST-RQ {train.size}, layer {train.layer}, {train.quantizer} K={train.codes}, "
                 f"{train.loop.steps} steps on {len(clips)} clips of {job_name} {manifest['id']}; held-out "
                 f"masked accuracy {metrics['masked_accuracy']:.3f} (chance {metrics['chance_accuracy']:.4f}, "
                 f"most frequent target {metrics['majority_accuracy']:.3f})"),
        config=train.model_dump(mode="json"), lineage={"dataset_version": manifest["id"], "job": job_name},
        metrics=metrics,
    )
