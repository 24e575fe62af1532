"""The ``[train.*]`` sections of a job: what ``songcorpus train JOB.toml`` trains, from which dataset version."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import StrictModel


class LoopConfig(StrictModel):
    """How any trainer runs: steps, checkpoints and the Ray Train workers."""

    steps: int = Field(200, ge=1, description="optimizer steps")
    checkpoint_every: int = Field(50, ge=1, description="steps between checkpoints (a killed run resumes from one)")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP); each takes a slice of the global batch")
    use_gpu: bool = Field(False, description="one GPU per worker")
    micro_batches: int = Field(1, ge=1, description="gradient accumulation: each worker's share in this many passes")
    cpus_per_worker: int | None = Field(None, ge=1, description="CPU threads per worker (default: with GPUs 1, else "
                                        "the cluster's CPUs shared among the workers)")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast the forward passes (GPU)")
    seed: int = Field(0, description="seed of the weights, the batches and the masks")


class TokenizerTrainConfig(StrictModel):
    """BEST-RQ pretraining on a dataset version's clips (songs, vocals and accompaniment), then k-means."""

    version: str = Field("latest", description="dataset version id (or a prefix), or 'latest' under the root")
    size: Literal["tiny", "small", "paper"] = Field("tiny", description="BEST-RQ size (models/bestrq SIZES)")
    loop: LoopConfig = LoopConfig()
    batch_size: int = Field(8, ge=1, description="crops per global batch")
    crop_seconds: float = Field(4.0, gt=0, description="seconds of audio per crop")
    learning_rate: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(20, ge=0, description="linear warm-up, then cosine decay to 0")
    layer: int = Field(1, ge=1, description="encoder layer the semantic quantizer reads (1-based; the paper: 14 of 24)")
    codes: int = Field(1024, ge=2, le=65536, description="codebook size K of the semantic tokens")
    quantizer: Literal["kmeans", "vq"] = Field(
        "kmeans", description="kmeans: centroids in the layer's space; vq: the paper's learned VQ (a learned map "
        "down to vq_dim, an EMA codebook there; SongCreator: 16384 codes x 32)")
    vq_dim: int = Field(32, ge=1, description="dimension of the learned VQ's codes")
    vq_steps: int = Field(500, ge=1, description="steps of the learned VQ's fit")
    kmeans_iterations: int = Field(20, ge=1)
    kmeans_max_frames: int = Field(200_000, ge=1, description="frames sampled from the train split to fit k-means")
    eval_split: str = Field("test", description="held-out split for masked accuracy and codebook usage")


#: the DSLM's training mix (SongCreator §3.3): recipe -> weight; lyrics-to-song is trained with BCA BR (80 %) and
#: None ("independent", 20 %). training/dslm_data.RECIPES says what each recipe feeds the model.
DEFAULT_MIX = {"lyrics_to_song": 0.4, "lyrics_to_song_independent": 0.1, "accompaniment_to_song": 0.15,
               "vocals_to_song": 0.15, "song_editing": 0.06, "vocals_editing": 0.04, "vocals_editing_in_song": 0.04,
               "music_continuation": 0.06}


class DslmTrainConfig(StrictModel):
    """The DSLM on a tokenized dataset version: SongCreator's multi-task mix, Adam and a Noam schedule."""

    version: str = Field("latest", description="dataset version id (or a prefix), or 'latest' under the root; "
                         "it must carry tokens (the tokenizer and its codebook size come from its manifest)")
    size: Literal["tiny", "small", "paper"] = Field("tiny", description="DSLM size (models/dslm SIZES)")
    loop: LoopConfig = LoopConfig()
    batch_size: int = Field(16, ge=1, description="clips per global batch (the paper: 8 per GPU on 8 GPUs)")
    peak_learning_rate: float = Field(1e-3, gt=0, description="the Noam schedule's peak, reached after warm-up")
    warmup_steps: int = Field(50, ge=1, description="Noam: linear warm-up, then decay as 1/sqrt(step)")
    mix: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MIX),
        description=f"weight of each recipe in the training mix; recipes: {', '.join(DEFAULT_MIX)}")
    given_mask: float = Field(0.2, ge=0, lt=1, description="fraction of a given track's tokens masked")
    lyrics_mask: float = Field(0.2, ge=0, lt=1, description="fraction of lyric characters masked")
    eval_split: str = Field("test", description="held-out split that `songcorpus evaluate` reads by default")

    @field_validator("mix")
    @classmethod
    def _known_recipes(cls, mix: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(mix) - set(DEFAULT_MIX))
        if unknown:
            raise ValueError(f"unknown recipes {unknown}; choose from {sorted(DEFAULT_MIX)}")
        if any(w < 0 for w in mix.values()) or not sum(mix.values()) > 0:
            raise ValueError("mix weights must be >= 0 with a positive sum")
        return mix


class VaeTrainConfig(StrictModel):
    """The LDM's audio VAE on a dataset version's clips (songs, vocals and accompaniment at 24 kHz mono)."""

    version: str = Field("latest", description="dataset version id (or a prefix), or 'latest' under the root")
    size: Literal["tiny", "small", "tiny-waveform", "small-waveform"] = Field(
        "tiny", description="VAE size and style (models/ldm/vae.py SIZES): spectral, or -waveform for the "
        "DAC-style strided convolutions")
    loop: LoopConfig = LoopConfig()
    batch_size: int = Field(8, ge=1, description="crops per global batch")
    crop_seconds: float = Field(1.0, gt=0, description="seconds of audio per crop")
    learning_rate: float = Field(1e-3, gt=0, description="AdamW peak, after a linear warm-up, then cosine decay")
    warmup_steps: int = Field(50, ge=0, description="the warm-up keeps Adam's first steps from blowing the "
                              "spectrum up")
    eval_split: str = Field("test", description="held-out split the reconstruction is judged on")
    eval_clips: int = Field(12, ge=1, description="held-out clip streams judged (the first ones of the split)")


class LdmTrainConfig(StrictModel):
    """The latent diffusion model: semantic tokens -> the latents of a trained VAE, by rectified flow."""

    version: str = Field("latest", description="dataset version id (or a prefix), or 'latest' under the root; "
                         "it must carry tokens")
    vae: str = Field("latest", description="the VAE artifact whose latents the LDM makes: an id, a prefix, or "
                     "'latest' under the root")
    size: Literal["tiny", "small"] = Field("tiny", description="LDM size (models/ldm/diffusion.py SIZES)")
    loop: LoopConfig = LoopConfig()
    batch_size: int = Field(16, ge=1, description="crops per global batch")
    crop_seconds: float = Field(4.0, gt=0, description="seconds of latents (and tokens) per crop")
    learning_rate: float = Field(5e-4, gt=0, description="AdamW peak, after a linear warm-up, then cosine decay")
    warmup_steps: int = Field(20, ge=0)
    condition_dropout: float = Field(0.1, ge=0, lt=1, description="fraction of crops trained without their "
                                     "tokens (for classifier-free guidance)")
    sampler_steps: int = Field(20, ge=1, description="Euler steps when the trainer judges the model")
    guidance: float = Field(2.0, ge=0, description="classifier-free guidance when the trainer judges the model")
    eval_split: str = Field("test", description="held-out split the decoded audio is judged on")
    eval_clips: int = Field(12, ge=1, description="held-out clip streams judged (the first ones of the split)")


class TrainSpec(StrictModel):
    """Every trainer a job names; ``songcorpus train`` runs them in this order."""

    tokenizer: TokenizerTrainConfig | None = None
    dslm: DslmTrainConfig | None = None
    vae: VaeTrainConfig | None = None
    ldm: LdmTrainConfig | None = None
