"""The tokenize stage in a whole job: token arrays in the shards at 50 Hz, and a new tokenizer re-tokenizes and
re-shards while separation, alignment and everything else upstream is reused (ledger counts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from songcorpus.pipeline.dataset_reader import open_dataset
from songcorpus.pipeline.jobfile import parse_job
from songcorpus.pipeline.runner import run_job
from songcorpus.pipeline.stage import StageContext
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.job import JobSpec
from songcorpus.schemas.stage_configs import TokenizeConfig
from songcorpus.stages.tokenize import TokenizeStage, npz_bytes
from songcorpus.training.smoke_tokenizer import publish_smoke_tokenizer

REPO = Path(__file__).parents[2]
CODES = 64


def publish_random_tokenizer(root: Path, seed: int) -> str:
    return publish_smoke_tokenizer(Storage(str(root)), seed, codes=CODES).id


def _job(root: Path) -> tuple[str, JobSpec]:
    text = (REPO / "jobs" / "demo.toml").read_text().replace("songs = 12", "songs = 2")
    text = text.replace("min_seconds = 20.0\nmax_seconds = 40.0", "min_seconds = 20.0\nmax_seconds = 24.0")
    return text, parse_job(text, root=str(root), base=REPO)


def test_without_a_tokenizer_the_stage_sits_out_and_says_why(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    reason = TokenizeStage.skip_reason(TokenizeConfig(tokenizer="latest"), storage)
    assert reason is not None and "songcorpus train" in reason
    publish_random_tokenizer(tmp_path, 0)
    assert TokenizeStage.skip_reason(TokenizeConfig(tokenizer="latest"), storage) is None
    assert TokenizeStage.skip_reason(TokenizeConfig(tokenizer=str(tmp_path / "nowhere")), storage) is None


def test_token_members_are_deterministic_bytes() -> None:
    arrays = {"a.song": np.arange(5, dtype=np.uint16)}
    assert npz_bytes(arrays) == npz_bytes(dict(arrays))


def test_a_clips_tokens_do_not_depend_on_cpus_or_batch_mates(tmp_path: Path) -> None:
    """On a CPU each clip is tokenized alone on one thread: the same tokens with 1 or 3 CPUs, alone or batched."""
    folder = tmp_path / "models" / "tokenizer" / publish_random_tokenizer(tmp_path, 0)
    rng = np.random.default_rng(0)
    clips = [torch.from_numpy(rng.standard_normal(int(24000 * s)).astype(np.float32)) * 0.1 for s in (3.1, 1.7, 2.4)]
    outputs = []
    for cpus, batch in ((1.0, clips), (3.0, clips), (2.0, [clips[1]]), (2.0, [clips[2], clips[0], clips[1]])):
        stage = TokenizeStage(TokenizeConfig(tokenizer=str(folder), batch_clips=2),
                              StageContext(Storage(str(tmp_path)), cpus=cpus))
        stage.setup()
        tokens = {int(clip.numel()): values for clip, values in zip(batch, stage._tokens(batch), strict=True)}
        outputs.append(tokens)
    assert all(np.array_equal(outputs[0][n], out[n]) for out in outputs[1:] for n in out)
    assert [len(outputs[0][int(c.numel())]) for c in clips] == [155, 85, 120]  # 50 Hz


@pytest.mark.timeout(900)
def test_tokens_in_the_shards_and_a_new_tokenizer_touches_nothing_upstream(tmp_path: Path, ray_cluster: object) -> None:
    root = tmp_path / "out"
    publish_random_tokenizer(root, 0)
    text, job = _job(root)
    first = run_job(job, text)
    assert first.status == "completed" and first.report["accounting_closed"]
    assert any(n.startswith("tokenize used model tokenizer/") for n in first.report["notices"])
    section = next(s for s in first.report["sections"] if s["title"] == "tokenize: tokens")
    assert "tokenized (song, vocals, accompaniment) at 50 Hz" in section["lines"][0]
    version = (root / "versions" / "LATEST").read_text()
    samples: list[dict] = []
    manifest = json.loads((root / "versions" / version / "manifest.json").read_text())
    assert manifest["tokens"]["codes"] == CODES and manifest["tokens"]["rate"] == 50
    assert manifest["tokens"]["tokenizer"] in {p.name for p in (root / "models" / "tokenizer").iterdir()}
    for split, count in manifest["splits"]["samples"].items():
        if count:
            samples += list(open_dataset(version, split, root=str(root), audio=()))
    assert samples
    for sample in samples:
        expected = round(sample["json"]["duration"] * 50)
        for stream in ("song", "vocals", "accomp"):
            tokens = sample[f"{stream}_tokens"]
            assert abs(len(tokens) - expected) <= 1 and int(tokens.max()) < CODES

    publish_random_tokenizer(root, 1)  # newer: "latest" now names it
    second = run_job(job, text)
    stages = {s["name"]: s for s in second.report["stages"]}
    assert [stages[s]["computed"] for s in ("ingest", "standardize", "separate", "align", "segment", "filter")] == \
        [0] * 6
    assert stages["tokenize"]["computed"] == stages["tokenize"]["input"] > 0
    assert stages["shard"]["computed"] == stages["shard"]["input"]
    assert (root / "versions" / "LATEST").read_text() != version
