"""Tokenizer training end to end on a small version of synthetic songs: Ray Train pretraining, k-means,
held-out judgement against chance, the published artifact, and tokens that survive a save and load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from songcorpus.models.bestrq import SemanticQuantizer
from songcorpus.pipeline.dataset_reader import resolve_version
from songcorpus.pipeline.model_registry import list_models, local_folder
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.model_artifact import ModelArtifact
from songcorpus.schemas.train_configs import LoopConfig, TokenizerTrainConfig
from songcorpus.stages.tokenize import load_tokenizer
from songcorpus.training.clip_audio import load_clips
from songcorpus.training.tokenizer import fit_vq, kmeans, train_tokenizer
from tests.training.song_version import build_song_version

TRAIN = TokenizerTrainConfig(loop=LoopConfig(steps=60, checkpoint_every=30), batch_size=6, crop_seconds=2.0,
                             learning_rate=2e-3, warmup_steps=5, codes=32, kmeans_iterations=5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, ray_cluster: object) -> tuple[Path, ModelArtifact]:
    root = tmp_path_factory.mktemp("root")
    build_song_version(root)
    return root, train_tokenizer(str(root), TRAIN, "songs")


def test_the_tokenizer_learns_and_is_judged_on_held_out_clips(trained: tuple[Path, ModelArtifact]) -> None:
    root, artifact = trained
    assert [a.id for a in list_models(Storage(str(root)), "tokenizer")] == [artifact.id]
    metrics = artifact.metrics
    assert metrics["held_out_split"] == "test" and metrics["clips"] > 0
    assert metrics["masked_accuracy"] > 10 * metrics["chance_accuracy"]  # 1/1024 random-projection codes
    assert metrics["loss_curve"][-1] < metrics["loss_curve"][0]
    assert metrics["max_token_count_error_frames"] <= 1 and metrics["token_rate_hz"] == 50
    assert metrics["tokens_usage"]["used"] > 4 and metrics["targets_usage"]["perplexity"] > 1
    assert artifact.lineage["dataset_version"] in artifact.summary


def test_tokens_survive_save_and_load_and_match_the_clip_length(trained: tuple[Path, ModelArtifact]) -> None:
    root, artifact = trained
    version_dir, _ = resolve_version(artifact.lineage["dataset_version"], str(root))
    clips = load_clips(version_dir, "test", 24000)[:3]
    folder = local_folder(Storage(str(root)), artifact)
    first, second = load_tokenizer(folder), load_tokenizer(folder)
    for clip in clips:
        lengths = torch.tensor([clip.numel()])
        tokens, frames = first(clip[None], lengths)
        assert torch.equal(tokens, second(clip[None], lengths)[0])
        assert abs(tokens.shape[1] - round(clip.numel() / 24000 * 50)) <= 1 and int(frames[0]) == tokens.shape[1]
        assert tokens.dtype == torch.long and int(tokens.max()) < TRAIN.codes


def test_kmeans_is_deterministic_for_a_seed_and_finds_separated_clusters() -> None:
    points = torch.cat([torch.randn(50, 3, generator=torch.Generator().manual_seed(0)) * 0.1 + c
                        for c in (torch.tensor([5.0, 0, 0]), torch.tensor([0, 5.0, 0]), torch.tensor([0, 0, 5.0]))])
    a = kmeans(points, 3, 10, torch.Generator().manual_seed(1))
    b = kmeans(points, 3, 10, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert sorted(round(float(v)) for v in a.max(dim=1).values) == [5, 5, 5]


def test_the_learned_vq_reconstructs_better_than_its_start_and_tokenizes() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(8, 16, generator=generator) * 3
    frames = centres[torch.randint(8, (2000,), generator=generator)] + 0.1 * torch.randn(2000, 16, generator=generator)
    down, codebook = fit_vq(frames, codes=8, dim=4, steps=300, generator=torch.Generator().manual_seed(1))
    again, _ = fit_vq(frames, codes=8, dim=4, steps=300, generator=torch.Generator().manual_seed(1))
    assert torch.equal(down.weight, again.weight)  # deterministic for a seed
    quantizer = SemanticQuantizer(8, 16, projection_dim=4)
    quantizer.load_state_dict({"projection.weight": down.weight.detach(), "projection.bias": down.bias.detach(),
                               "centroids": codebook})
    tokens = quantizer(frames[None])[0]
    # frames of one true centre share a token, for most centres: the codebook found the clusters
    truth = torch.cdist(frames, centres).argmin(dim=1)
    purity = sum(int(torch.bincount(tokens[truth == c]).max()) for c in range(8)) / len(frames)
    assert purity > 0.8 and tokens.unique().numel() >= 5
