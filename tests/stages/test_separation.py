"""Batched Demucs separation and the separate stage, on the tiny model built in Demucs' own format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from demucs.apply import apply_model
from songcorpus.pipeline.stage import Reject, StageContext
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.stage_configs import SeparateConfig
from songcorpus.stages.audio_io import encode_flac, read_flac
from songcorpus.stages.demucs_models import SMOKE_MODEL, load_separator, weights_digest
from songcorpus.stages.separate import SeparateStage
from songcorpus.stages.separation import SeparationSettings, separate

RATE = 44100


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("models") / "demucs")


@pytest.fixture(scope="module")
def model(smoke_repo):
    return load_separator(SMOKE_MODEL, smoke_repo)


def settings(**kw) -> SeparationSettings:
    base = {"segment": None, "overlap": 0.25, "shifts": 0, "batch_segments": 4, "device": torch.device("cpu"),
            "autocast_dtype": None, "seed": 0}
    return SeparationSettings(**{**base, **kw})


def test_smoke_model_loads_through_demucs_and_is_deterministic(smoke_repo, tmp_path):
    again = load_separator(SMOKE_MODEL, str(tmp_path / "other"))  # built anew from the same seed
    assert weights_digest(again) == weights_digest(load_separator(SMOKE_MODEL, smoke_repo))
    assert again.sources[-1] == "vocals" and again.samplerate == RATE


def test_unknown_model_names_the_fix(smoke_repo):
    with pytest.raises(ValueError, match="stages.separate.repo"):
        load_separator("htdemucs_nonexistent", smoke_repo)


def test_batched_separation_matches_stock_apply_model(model):
    gen = torch.Generator().manual_seed(3)
    mixes = [torch.randn(2, int(RATE * s), generator=gen) * 0.1 for s in (17.3, 9.0, 2.5)]
    results = separate(model, mixes, settings(batch_segments=4))
    vocal = model.sources.index("vocals")
    for mix, (vocals, rest) in zip(mixes, results):
        reference = apply_model(model, mix[None], split=True, overlap=0.25, shifts=0)[0]
        assert vocals.shape == mix.shape
        assert torch.allclose(vocals, reference[vocal], atol=1e-6)
        assert torch.allclose(rest, reference.sum(0) - reference[vocal], atol=1e-6)


def test_shift_trick_is_deterministic(model):
    mix = torch.randn(2, RATE * 5, generator=torch.Generator().manual_seed(1)) * 0.1
    first = separate(model, [mix], settings(shifts=2))[0][0]
    assert torch.equal(first, separate(model, [mix], settings(shifts=2))[0][0])
    assert not torch.equal(first, separate(model, [mix], settings(shifts=0))[0][0])


def _stage(tmp_path, smoke_repo, **cfg) -> SeparateStage:
    config = SeparateConfig(model=SMOKE_MODEL, repo=smoke_repo, **cfg)
    stage = SeparateStage(config, StageContext(Storage(str(tmp_path))))
    stage.setup()
    return stage


def _song(storage: Storage, name: str, seconds: float, seed: int) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    mix = np.stack([0.3 * np.sin(2 * np.pi * 330 * t), 0.2 * rng.standard_normal(t.size)]).astype(np.float32)
    rel = storage.write_bytes(f"artifacts/standardize/{name}/audio.flac", encode_flac(mix, RATE))
    return {"song_id": name, "audio": rel, "sample_rate": RATE}, read_flac(storage.read_bytes(rel))[0]


@pytest.mark.parametrize("rule", ["mixture_minus_vocals", "sum_of_stems"])
def test_stage_writes_stems_of_the_input_length_and_keeps_the_accompaniment_rule(tmp_path, smoke_repo, rule):
    stage = _stage(tmp_path, smoke_repo, accompaniment=rule)
    storage = stage.context.storage
    (rec_a, mix_a), (rec_b, _) = _song(storage, "a", 12.0, 1), _song(storage, "b", 4.0, 2)
    results = stage.process_batch([("a", rec_a, "fpa"), ("b", rec_b, "fpb")])
    out = results[0].record
    vocals, rate = read_flac(storage.read_bytes(out["vocals"]))
    accomp, _ = read_flac(storage.read_bytes(out["accomp"]))
    assert rate == RATE and vocals.shape == accomp.shape == mix_a.shape
    assert results[1].record["vocals"] != out["vocals"]
    activity = np.load(storage.full(out["vocal_activity"]))
    assert activity.shape == (int(12.0 / 0.02),)
    if rule == "mixture_minus_vocals":
        # FLAC is 24-bit: the sum holds to about 2 quantisation steps
        assert np.max(np.abs(vocals + accomp - out["stem_scale"] * mix_a)) < 5e-7
    else:
        assert np.max(np.abs(vocals + accomp - out["stem_scale"] * mix_a)) > 1e-3  # the model is no oracle


def test_corrupt_input_artifact_rejects_that_song_only(tmp_path, smoke_repo):
    stage = _stage(tmp_path, smoke_repo)
    storage = stage.context.storage
    good, _ = _song(storage, "good", 6.0, 1)
    bad, _ = _song(storage, "bad", 6.0, 2)
    path = storage.full(bad["audio"])
    with open(path, "r+b") as f:
        f.write(b"\0" * 64)  # wipe the FLAC header
    good_result, bad_result = stage.process_batch([("good", good, "f1"), ("bad", bad, "f2")])
    assert good_result.record["song_id"] == "good"
    assert isinstance(bad_result, Reject) and bad_result.reason == "input_artifact_unreadable"


def test_wrong_sample_rate_is_rejected_with_the_setting_to_change(tmp_path, smoke_repo):
    stage = _stage(tmp_path, smoke_repo)
    storage = stage.context.storage
    rel = storage.write_bytes("artifacts/standardize/x/audio.flac", encode_flac(np.zeros((2, 16000)), 16000))
    (result,) = stage.process_batch([("x", {"song_id": "x", "audio": rel}, "f")])
    assert isinstance(result, Reject) and "stages.standardize.sample_rate" in result.message
