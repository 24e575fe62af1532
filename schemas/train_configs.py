"""The ``[train.*]`` sections of a job: what ``songcorpus train JOB.toml`` trains, from which dataset version."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import StrictModel


class LoopConfig(StrictModel):
    """How any trainer runs: steps, checkpoints and the Ray Train workers."""

    steps: int = Field(200, ge=1, description="optimizer steps")
    checkpoint_every: int = Field(50, ge=1, description="steps between checkpoints (a killed run resumes from one)")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP); each takes a slice of the global batch")
    use_gpu: bool = Field(False, description="one GPU per worker")
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


class TrainSpec(StrictModel):
    """Every trainer a job names; ``songcorpus train`` runs them in this order."""

    tokenizer: TokenizerTrainConfig | None = None
