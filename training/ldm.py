"""Training the decoder from semantic tokens to audio, in two runs of the shared loop (``training.loop``):

1. ``[train.vae]``: the audio VAE on random crops of the version's clips (songs, vocals and accompaniment,
   24 kHz mono), multi-resolution STFT loss + KL. Judged on held-out clips against its untrained self (the same
   initial weights): multi-resolution STFT distance and SI-SDR of the reconstructions.
2. ``[train.ldm]``: the latent diffusion model on the VAE's latents (the encoder's means) of every clip stream of
   a tokenized version, conditioned on that stream's tokens. Judged on held-out clips by decoding their true
   tokens and measuring FAD[own] (the tokenizer's own layer, ``evaluation.audio_metrics``) against their audio,
   with the tokens and with the condition dropped (the same noise): the tokens must make the audio closer.

Both hold their clips in memory and draw each step's crops from (seed, step), like every trainer here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from ..evaluation.audio_metrics import fad, tokenizer_embedder
from ..models.ldm import Ldm, LdmConfig, TokenDecoder, Vae, VaeConfig, multi_resolution_stft_loss, si_sdr, vae_loss
from ..models.ldm.diffusion import config_for as ldm_config_for
from ..models.ldm.diffusion import flow_loss
from ..models.ldm.vae import config_for as vae_config_for
from ..pipeline.dataset_reader import resolve_version, split_with_clips, version_tokens
from ..pipeline.errors import UserError
from ..pipeline.model_registry import local_folder, resolve_model
from ..pipeline.storage import Storage
from ..schemas.model_artifact import LDM_CONFIG, LDM_WEIGHTS, VAE_CONFIG, VAE_WEIGHTS, ModelArtifact
from ..schemas.train_configs import LdmTrainConfig, VaeTrainConfig
from ..stages.tokenize import load_tokenizer
from .artifacts import publish_weights
from .clip_audio import TokenizedAudio, load_tokenized_audio, random_crops, train_and_held_out_clips
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

# --- the VAE ------------------------------------------------------------------------------------------------


@dataclass
class VaeTask:
    """The loop's :class:`~songcorpus.training.loop.Task` for the VAE."""

    clips: list[Tensor]
    config: VaeConfig
    train: VaeTrainConfig

    def build(self) -> nn.Module:
        return Vae(self.config)

    def optimizer(self, model: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        return adamw_warmup_cosine(model, self.train.learning_rate, self.train.warmup_steps, self.train.loop.steps)

    def loss(self, model: nn.Module, step: int, part: BatchPart,
             generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        length = round(self.train.crop_seconds * self.config.sample_rate)
        audio, _ = random_crops(self.clips, self.train.batch_size, length, step_generator(self.train.loop.seed, step))
        audio = audio[part.index :: part.count].to(next(model.parameters()).device)
        return vae_loss(model(audio, generator), audio, self.config.kl_weight)


@torch.no_grad()
def reconstruction_scores(vae: Vae, clips: list[Tensor]) -> dict[str, float]:
    """Mean multi-resolution STFT distance and SI-SDR (dB) of ``vae``'s reconstructions (latent means)."""
    stft, sdr = [], []
    for clip in clips:
        mean, _ = vae.eval().encode(clip[None])
        estimate = vae.decode(mean)[:, : clip.numel()]
        stft.append(float(multi_resolution_stft_loss(estimate, clip[None])))
        sdr.append(float(si_sdr(estimate, clip[None])))
    return {"stft": round(float(np.mean(stft)), 4), "si_sdr_db": round(float(np.mean(sdr)), 3)}


def train_vae(root: str, train: VaeTrainConfig, job_name: str) -> ModelArtifact:
    """Train the VAE on the job's dataset version under ``root``, judge it and publish it."""
    storage = Storage(root)
    version_dir, manifest = resolve_version(train.version, root)
    config = vae_config_for(train.size)
    clips, held_out_split, held_out = train_and_held_out_clips(version_dir, manifest, train.eval_split,
                                                               config.sample_rate)
    held_out = held_out[: train.eval_clips]
    work = run_folder(storage, "vae", manifest["id"], train.model_dump(mode="json"))
    result = train_on_ray(VaeTask(clips, config, train), LoopSettings(train.loop, work / "checkpoints"))
    torch.manual_seed(train.loop.seed)  # the loop's initial weights: the untrained baseline
    untrained = reconstruction_scores(Vae(config), held_out)
    vae = Vae(config)
    vae.load_state_dict(result.state_dict)
    trained = reconstruction_scores(vae, held_out)
    metrics = {"held_out_split": held_out_split, "held_out_clips": len(held_out), "train_clips": len(clips),
               "held_out": trained, "held_out_untrained": untrained, **loss_curve(result.history)}
    return publish_weights(
        storage, "vae", result.state_dict, (VAE_WEIGHTS, VAE_CONFIG), {"vae": config.to_dict()},
        name=f"vae-{train.size}",
        summary=(f"VAE {train.size}, {train.loop.steps} steps on {len(clips)} clip streams of {job_name} "
                 f"{manifest['id']}; held-out SI-SDR {trained['si_sdr_db']:.1f} dB (untrained "
                 f"{untrained['si_sdr_db']:.1f}), MR-STFT {trained['stft']:.2f} (untrained {untrained['stft']:.2f})"),
        config=train.model_dump(mode="json"), lineage={"dataset_version": manifest["id"], "job": job_name},
        metrics=metrics,
    )


def load_vae(folder: Path) -> Vae:
    """A VAE artifact's model, in eval mode."""
    vae = Vae(VaeConfig.from_dict(json.loads((folder / VAE_CONFIG).read_text())["vae"]))
    vae.load_state_dict(load_file(folder / VAE_WEIGHTS))
    return vae.eval()


# --- the LDM ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatentClip:
    """One clip stream as the LDM learns it: the VAE's latent means ``(frames, latent)`` and the tokens."""

    latents: Tensor
    tokens: Tensor


@torch.no_grad()
def encode_clips(vae: Vae, clips: list[TokenizedAudio]) -> list[LatentClip]:
    return [LatentClip(vae.encode(clip.audio[None])[0][0].T.contiguous(), torch.as_tensor(clip.tokens.astype(np.int64)))
            for clip in clips]


@dataclass
class LdmTask:
    """The loop's :class:`~songcorpus.training.loop.Task` for the LDM."""

    clips: list[LatentClip]
    config: LdmConfig
    train: LdmTrainConfig

    def build(self) -> nn.Module:
        model = Ldm(self.config)
        every = torch.cat([clip.latents for clip in self.clips])
        model.latent_mean.copy_(every.mean(dim=0))
        model.latent_std.copy_(every.std(dim=0).clamp(min=1e-4))
        return model

    def optimizer(self, model: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        return adamw_warmup_cosine(model, self.train.learning_rate, self.train.warmup_steps, self.train.loop.steps)

    def crops(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """Step ``step``'s batch: latents (B, frames, latent), tokens (B, token frames) and the latents' padding,
        each crop at most ``crop_seconds``, its tokens over the same span."""
        generator = step_generator(self.train.loop.seed, step)
        frames = round(self.train.crop_seconds * self.config.latent_rate)
        per_frame = self.config.token_rate / self.config.latent_rate
        latents = torch.zeros(self.train.batch_size, frames, self.config.latent)
        tokens = torch.full((self.train.batch_size, math.ceil(frames * per_frame)), self.config.codes)
        padding = torch.ones(self.train.batch_size, frames, dtype=torch.bool)
        for row in range(self.train.batch_size):
            clip = self.clips[int(torch.randint(len(self.clips), (1,), generator=generator))]
            start = int(torch.randint(max(1, clip.latents.shape[0] - frames + 1), (1,), generator=generator))
            piece = clip.latents[start : start + frames]
            latents[row, : len(piece)], padding[row, : len(piece)] = piece, False
            span = clip.tokens[round(start * per_frame) : round((start + len(piece)) * per_frame)]
            tokens[row, : len(span)] = span
        return latents, tokens, padding

    def loss(self, model: nn.Module, step: int, part: BatchPart,
             generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        device = next(model.parameters()).device
        latents, tokens, padding = (x[part.index :: part.count].to(device) for x in self.crops(step))
        ldm = unwrap(model)
        if not isinstance(ldm, Ldm):
            raise TypeError(f"the LDM task trains Ldm, got {type(ldm).__name__}")
        inputs = ldm.training_inputs(latents, tokens, generator)
        return flow_loss(model(inputs.noisy, inputs.t, inputs.tokens, padding), inputs.velocity, padding), {}


def explained_by_tokens(clips: list[LatentClip], codes: int) -> float:
    """The share of the standardised latents' variance that each frame's token explains (1 - the variance left
    around each code's mean latent): how much an LDM could learn from the tokens at all. Assumes one token per
    latent frame."""
    latents = torch.cat([clip.latents[: len(clip.tokens)] for clip in clips])
    tokens = torch.cat([clip.tokens[: len(clip.latents)] for clip in clips])
    z = (latents - latents.mean(dim=0)) / latents.std(dim=0).clamp(min=1e-6)
    means = torch.zeros(codes, z.shape[1]).index_add_(0, tokens, z)
    means /= torch.bincount(tokens, minlength=codes).clamp(min=1)[:, None]
    return round(float(1 - (z - means[tokens]).pow(2).mean() / z.pow(2).mean()), 4)


def judge_ldm(decoder: TokenDecoder, clips: list[TokenizedAudio], tokenizer_folder: Path,
              train: LdmTrainConfig) -> dict[str, Any]:
    """FAD[own] against the held-out audio of: their true tokens decoded with guidance, the same with the
    condition dropped (guidance 0, the same noise), and the VAE's own reconstruction (the decoder's ceiling); and
    the flow's loss on the VAE's latents of the held-out audio, with and without the tokens."""
    tokenizer = load_tokenizer(tokenizer_folder)
    embedder = tokenizer_embedder(tokenizer, tokenizer_folder.name)
    rate = decoder.sample_rate
    truth = [(clip.audio, rate) for clip in clips]
    sequences = [clip.tokens for clip in clips]
    latent_clips = encode_clips(decoder.vae, clips)
    sampled = {"with_tokens": decoder.latents(sequences, train.sampler_steps, train.guidance),
               "without_tokens": decoder.latents(sequences, train.sampler_steps, 0.0)}
    sampled["vae_reconstruction"] = [clip.latents for clip in latent_clips]
    with torch.no_grad():
        rows = {name: [decoder.vae.decode(z.T[None])[0] for z in latents] for name, latents in sampled.items()}
    scores = {name: fad(embedder, truth, [(audio, rate) for audio in audio_list]) for name, audio_list in rows.items()}
    return {"fad_embedder": scores["with_tokens"].label, "sampler_steps": train.sampler_steps,
            "guidance": train.guidance,
            **{f"fad_{name}": score.fad for name, score in scores.items()},
            **{f"fad_infinity_{name}": score.fad_infinity for name, score in scores.items()},
            # the same question before the VAE: the flow's held-out loss with the tokens and without them
            **{f"flow_loss_{name}": flow_loss_on(decoder.ldm, latent_clips, dropout)
               for name, dropout in (("with_tokens", 0.0), ("without_tokens", 1.0))}}


@torch.no_grad()
def flow_loss_on(ldm: Ldm, clips: list[LatentClip], dropout: float, draws: int = 8) -> float:
    """The rectified-flow loss on whole clips, ``draws`` times and noises each (the same ones for any
    ``dropout``): 0 keeps every clip's tokens, 1 drops them all."""
    generator = torch.Generator().manual_seed(0)
    losses = []
    for clip in clips:
        for _ in range(draws):
            inputs = ldm.training_inputs(clip.latents[None], clip.tokens[None], generator, dropout)
            padding = torch.zeros(1, clip.latents.shape[0], dtype=torch.bool)
            losses.append(float(flow_loss(ldm(inputs.noisy, inputs.t, inputs.tokens, padding), inputs.velocity,
                                          padding)))
    return round(float(np.mean(losses)), 4)


def train_ldm(root: str, train: LdmTrainConfig, job_name: str) -> ModelArtifact:
    """Train the LDM on the VAE latents and tokens of the job's tokenized dataset version, judge and publish it."""
    storage = Storage(root)
    version_dir, manifest = resolve_version(train.version, root)
    tokens = version_tokens(manifest, "LDM")
    vae_artifact = resolve_model(storage, train.vae if "/" in train.vae else f"vae/{train.vae}")
    vae = load_vae(local_folder(storage, vae_artifact))
    config = ldm_config_for(train.size, codes=int(tokens["codes"]), latent=vae.config.latent,
                            token_rate=float(tokens["rate"]), latent_rate=vae.config.latent_rate,
                            condition_dropout=train.condition_dropout)
    clips = encode_clips(vae, load_tokenized_audio(version_dir, "train", vae.config.sample_rate))
    if not clips:
        raise UserError(f"version {manifest['id']} has no train clips")
    work = run_folder(storage, "ldm", manifest["id"], {**train.model_dump(mode="json"), "vae": vae_artifact.id})
    result = train_on_ray(LdmTask(clips, config, train), LoopSettings(train.loop, work / "checkpoints"))
    ldm = Ldm(config)
    ldm.load_state_dict(result.state_dict)
    held_out_split = split_with_clips(manifest, train.eval_split)
    held_out = load_tokenized_audio(version_dir, held_out_split, vae.config.sample_rate)[: train.eval_clips]
    tokenizer = resolve_model(storage, f"tokenizer/{tokens['tokenizer']}")
    judged = judge_ldm(TokenDecoder(vae, ldm), held_out, local_folder(storage, tokenizer), train)
    metrics = {"held_out_split": held_out_split, "held_out_clips": len(held_out), "train_clips": len(clips),
               **judged, **loss_curve(result.history),
               # on the clips it learned from: whether it reads its tokens at all, and how much of the latents
               # the tokens can explain in the first place
               **{f"train_flow_loss_{name}": flow_loss_on(ldm, clips, dropout)
                  for name, dropout in (("with_tokens", 0.0), ("without_tokens", 1.0))},
               "train_latent_variance_explained_by_tokens": explained_by_tokens(clips, config.codes)}
    saved = {"ldm": config.to_dict(), "vae": vae_artifact.id, "tokenizer": tokens["tokenizer"]}
    return publish_weights(
        storage, "ldm", result.state_dict, (LDM_WEIGHTS, LDM_CONFIG), saved, name=f"ldm-{train.size}",
        summary=(f"LDM {train.size} (rectified flow), {train.loop.steps} steps on {len(clips)} clip streams of "
                 f"{job_name} {manifest['id']} (VAE {vae_artifact.id}, tokenizer {tokens['tokenizer']}); held-out "
                 f"{judged['fad_embedder']} {judged['fad_with_tokens']:.3f} with tokens, "
                 f"{judged['fad_without_tokens']:.3f} without"),
        config=train.model_dump(mode="json"),
        lineage={"dataset_version": manifest["id"], "vae": vae_artifact.id, "tokenizer": tokens["tokenizer"],
                 "job": job_name},
        metrics=metrics,
    )


def load_decoder(storage: Storage, ref: str) -> tuple[TokenDecoder, ModelArtifact]:
    """The token decoder of an LDM artifact (``ldm/latest``, an id, ...) and its VAE, and the LDM's record."""
    artifact = resolve_model(storage, ref if "/" in ref else f"ldm/{ref}")
    if artifact.kind != "ldm":
        raise UserError(f"{ref} is a {artifact.kind} model; decoding needs an LDM (ldm/latest, ldm/<id>)")
    folder = local_folder(storage, artifact)
    saved = json.loads((folder / LDM_CONFIG).read_text())
    ldm = Ldm(LdmConfig.from_dict(saved["ldm"]))
    ldm.load_state_dict(load_file(folder / LDM_WEIGHTS))
    vae = load_vae(local_folder(storage, resolve_model(storage, f"vae/{saved['vae']}")))
    return TokenDecoder(vae, ldm.eval()), artifact
