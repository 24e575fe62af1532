"""The DSLM trainer on a tokenized version: it learns, 2 Ray Train workers (gloo) train exactly what 1 does,
a killed run resumes on the same curve, and `songcorpus evaluate` judges it per task against another model."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from songcorpus.cli import main
from songcorpus.models.dslm import config_for
from songcorpus.models.dslm.lyrics import VOCABULARY
from songcorpus.pipeline.dataset_reader import resolve_version
from songcorpus.pipeline.errors import UserError
from songcorpus.pipeline.model_registry import list_models
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.model_artifact import ModelArtifact
from songcorpus.schemas.train_configs import DslmTrainConfig, LoopConfig
from songcorpus.training.dslm import DslmTask, train_dslm
from songcorpus.training.dslm_data import load_examples
from songcorpus.training.loop import LoopSettings, run_steps, train_on_ray
from tests.training.token_version import CODES, build_token_version, clip_tokens

STEPS = 120


def _config(steps: int = STEPS, **loop: object) -> DslmTrainConfig:
    return DslmTrainConfig(loop=LoopConfig(steps=steps, checkpoint_every=50, **loop), batch_size=8,
                           peak_learning_rate=3e-3, warmup_steps=20)


def _task(root: Path, train: DslmTrainConfig) -> DslmTask:
    version_dir, _ = resolve_version("latest", str(root))
    config = config_for("tiny", codes=CODES, lyrics_vocab=len(VOCABULARY))
    return DslmTask(load_examples(version_dir, "train", config), config, train)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, ray_cluster: object) -> tuple[Path, ModelArtifact]:
    root = tmp_path_factory.mktemp("dslm")
    build_token_version(root)
    return root, train_dslm(str(root), _config(), "test")


def test_the_dslm_learns_its_clips_and_is_published(trained: tuple[Path, ModelArtifact]) -> None:
    root, artifact = trained
    curve = artifact.metrics["loss_curve"]
    assert len(curve) == STEPS and np.mean(curve[-10:]) < np.mean(curve[:10]) / 3
    assert artifact.metrics["train_accuracy_accompaniment_last"] > 0.8
    assert [a.id for a in list_models(Storage(str(root)), "dslm")] == [artifact.id]
    assert artifact.lineage["tokenizer"] == "0123456789abcdef"


def _without_key_biases(state: dict[str, torch.Tensor], d: int) -> dict[str, torch.Tensor]:
    """``state`` with the attention key biases zeroed. Softmax ignores a shift shared by all of a query's
    scores, so their gradient is zero in exact arithmetic and rounding noise in float; Adam (eps 1e-9) turns
    that noise into steps of the learning rate's size in either direction, in any two runs that sum in another
    order. Every other weight must match."""
    out = dict(state)
    for name, value in state.items():
        if name.endswith(("in_proj_bias", "key_value.bias")):
            out[name] = value.clone()
            keys = slice(d, 2 * d) if name.endswith("in_proj_bias") else slice(0, d)  # (q, k, v) or (k, v)
            out[name][keys] = 0.0
    return out


def _labelled(label: str) -> Callable[[str], str]:
    return lambda message: f"{label}: {message}"


def test_two_workers_train_exactly_what_one_worker_trains(tmp_path: Path, ray_cluster: object) -> None:
    build_token_version(tmp_path)
    task = _task(tmp_path, _config(steps=3))
    d = task.config.d_model
    one = _without_key_biases(run_steps(task, LoopSettings(LoopConfig(steps=3), tmp_path / "one")).state_dict, d)
    two = LoopSettings(LoopConfig(steps=3, num_workers=2), tmp_path / "two")
    runs = {"2 Ray Train workers": train_on_ray(task, two),
            "4 micro-batches": run_steps(task, LoopSettings(LoopConfig(steps=3, micro_batches=4), tmp_path / "acc"))}
    start = task.build().state_dict()
    assert max(float((one[k] - start[k]).abs().max()) for k in one) > 1e-3  # trained: not three untouched models
    for run, result in runs.items():
        other = _without_key_biases(result.state_dict, d)
        for name, value in one.items():
            torch.testing.assert_close(other[name], value, rtol=1e-4, atol=1e-5, msg=_labelled(f"{run}, {name}"))


def test_a_killed_run_resumes_on_the_same_loss_curve(tmp_path: Path) -> None:
    build_token_version(tmp_path)
    task = _task(tmp_path, _config(steps=6))
    whole = run_steps(task, LoopSettings(LoopConfig(steps=6, checkpoint_every=2), tmp_path / "a"))
    killed = LoopSettings(LoopConfig(steps=6, checkpoint_every=2), tmp_path / "b", stop_after=3)
    run_steps(task, killed)
    resumed = run_steps(task, replace(killed, stop_after=None))
    assert resumed.resumed_from == 2
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history][2:]


def test_a_version_without_tokens_is_refused_with_what_to_do(tmp_path: Path) -> None:
    build_token_version(tmp_path)
    manifest_file = next((tmp_path / "versions").glob("*/manifest.json"))
    manifest = json.loads(manifest_file.read_text())
    del manifest["tokens"]
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"no tokens; add a \[stages.tokenize\]"):
        train_dslm(str(tmp_path), _config(steps=1), "test")


def test_evaluate_reports_each_task_and_the_difference_to_another_model(trained: tuple[Path, ModelArtifact],
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    root, artifact = trained
    untrained = train_dslm(str(root), _config(steps=1), "test")  # one step: as good as untrained
    assert main(["evaluate", artifact.id, "--root", str(root), "--against", untrained.id, "--generate", "2"]) == 0
    out = capsys.readouterr().out
    assert "lyrics_to_song" in out and "ΔCE" in out
    folder = root / "evaluations" / f"{artifact.id}-{artifact.lineage['dataset_version']}-test"
    result = json.loads((folder / "evaluation.json").read_text())
    ours, theirs = result["metrics"], result["against"]["metrics"]
    for recipe in ("lyrics_to_song", "accompaniment_to_song", "vocals_to_song", "music_continuation"):
        assert ours[recipe]["accompaniment"]["cross_entropy"] < theirs[recipe]["accompaniment"]["cross_entropy"] - 1
    assert ours["music_continuation"].keys() == {"accompaniment"}  # no vocals, so no song either
    assert ours["vocals_editing"].keys() == {"vocals"}
    assert result["against"]["difference"]["lyrics_to_song"]["song"]["cross_entropy"] < 0
    # held-out clips: the riff of a test clip (index 6 and 7: riffs 0 and 1) is learnt from the train clips
    assert ours["accompaniment_to_song"]["vocals"]["accuracy"] > theirs["accompaniment_to_song"]["vocals"]["accuracy"]
    generated = np.load(folder / "generated.npz")
    first = sorted(k for k in generated.files if k.endswith(".accompaniment"))[0]
    assert len(generated[first]) == len(clip_tokens("x", 6, 24)["accomp"])
    html = (folder / "report.html").read_text()
    assert "Training loss" in html and "<svg" in html and "accompaniment_to_song" in html
