"""Batched Demucs separation and the separate stage, on the tiny model built in Demucs' own format."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from demucs.apply import apply_model

from songcorpus.pipeline.stage import Reject, StageContext
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.song_records import SeparatedSong
from songcorpus.schemas.stage_configs import SeparateConfig
from songcorpus.stages import demucs_stream
from songcorpus.stages.audio_io import encode_flac, read_flac
from songcorpus.stages.demucs_models import SMOKE_MODEL, load_separator, weights_digest
from songcorpus.stages.demucs_stream import SeparationSettings, separate, separate_stream, warm_up
from songcorpus.stages.separate import SeparateStage
from tests.recordtools import ingested, standardized

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
    with pytest.raises(ValueError, match=r"stages\.separate\.repo"):
        load_separator("htdemucs_nonexistent", smoke_repo)


def test_batched_separation_matches_stock_apply_model(model):
    gen = torch.Generator().manual_seed(3)
    mixes = [torch.randn(2, int(RATE * s), generator=gen) * 0.1 for s in (17.3, 9.0, 2.5)]
    results = separate(model, mixes, settings(batch_segments=4))
    vocal = model.sources.index("vocals")
    for mix, (vocals, rest) in zip(mixes, results, strict=False):
        reference = apply_model(model, mix[None], split=True, overlap=0.25, shifts=0)[0]
        assert vocals.shape == mix.shape
        assert torch.allclose(vocals, reference[vocal], atol=1e-6)
        assert torch.allclose(rest, reference.sum(0) - reference[vocal], atol=1e-6)


def test_shift_trick_is_deterministic(model):
    mix = torch.randn(2, RATE * 5, generator=torch.Generator().manual_seed(1)) * 0.1
    first = separate(model, [mix], settings(shifts=2))[0][0]
    assert torch.equal(first, separate(model, [mix], settings(shifts=2))[0][0])
    assert not torch.equal(first, separate(model, [mix], settings(shifts=0))[0][0])


def test_a_songs_stems_do_not_depend_on_its_batch(model):
    gen = torch.Generator().manual_seed(5)
    first, second = (torch.randn(2, int(RATE * s), generator=gen) * 0.1 for s in (6.0, 8.0))
    for shifts in (0, 2):
        together = separate(model, [first, second], settings(shifts=shifts))[1]
        alone = separate(model, [second], settings(shifts=shifts, batch_segments=1))[0]
        assert torch.allclose(together[0], alone[0], atol=1e-6)
        assert torch.allclose(together[1], alone[1], atol=1e-6)


def test_stream_decodes_lazily_and_keeps_few_songs_in_flight(model):
    gen = torch.Generator().manual_seed(2)
    mixes = [torch.randn(2, RATE * 9, generator=gen) * 0.1 for _ in range(6)]  # 2 segments each
    pulled: list[int] = []

    def source():
        for key, mix in enumerate(mixes):
            pulled.append(key)
            yield key, mix

    in_flight = []
    keys = []
    for key, vocals, _ in separate_stream(model, source(), settings(batch_segments=3)):
        in_flight.append(len(pulled) - len(keys))
        keys.append(key)
        assert vocals.shape == mixes[key].shape
    assert keys == list(range(6))
    # 3 segments per pass span at most 2 songs of 2 segments: never a whole batch of songs at once
    assert max(in_flight) <= 2


def test_bf16_autocast_path_stays_close_to_fp32(model):
    mix = torch.randn(2, RATE * 8, generator=torch.Generator().manual_seed(4)) * 0.1
    exact = separate(model, [mix], settings())[0][0]
    (vocals, _), = separate(model, [mix], settings(autocast_dtype=torch.bfloat16))
    assert vocals.dtype == torch.float32 and vocals.shape == mix.shape
    error_db = 10 * torch.log10(((vocals - exact) ** 2).mean() / (exact**2).mean())
    assert error_db < -20  # bf16 keeps 8 bits of mantissa: about -40 dB on this model


def _stage(tmp_path, smoke_repo, **cfg) -> SeparateStage:
    config = SeparateConfig(model=SMOKE_MODEL, repo=smoke_repo, **cfg)
    stage = SeparateStage(config, StageContext(Storage(str(tmp_path))))
    stage.setup()
    return stage


def _record(name: str, audio: str, seconds: float = 1.0) -> dict:
    """A standardize record for ``audio`` (relative to the output root)."""
    return standardized(ingested(name), audio=audio, duration=seconds).model_dump(mode="json")


def _song(storage: Storage, name: str, seconds: float, seed: int) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    mix = np.stack([0.3 * np.sin(2 * np.pi * 330 * t), 0.2 * rng.standard_normal(t.size)]).astype(np.float32)
    rel = storage.write_bytes(f"artifacts/standardize/{name}/audio.flac", encode_flac(mix, RATE))
    return _record(name, rel, seconds), read_flac(storage.read_bytes(rel))[0]


@pytest.mark.parametrize("rule", ["mixture_minus_vocals", "sum_of_stems"])
def test_stage_writes_stems_of_the_input_length_and_keeps_the_accompaniment_rule(tmp_path, smoke_repo, rule):
    stage = _stage(tmp_path, smoke_repo, accompaniment=rule, activity_threshold_db=-30.0)
    storage = stage.context.storage
    (rec_a, mix_a), (rec_b, _) = _song(storage, "a", 12.0, 1), _song(storage, "b", 4.0, 2)
    results = stage.process_batch([("a", rec_a, "fpa"), ("b", rec_b, "fpb")])
    out = results[0].record
    song = SeparatedSong.model_validate(out)  # what align will read
    assert song.accompaniment_rule == rule and song.song_id == "a" and song.duration == rec_a["duration"]
    vocals, rate = read_flac(storage.read_bytes(out["vocals"]))
    accomp, _ = read_flac(storage.read_bytes(out["accomp"]))
    assert rate == RATE and vocals.shape == accomp.shape == mix_a.shape
    assert results[1].record["vocals"] != out["vocals"]
    activity = np.load(storage.full(out["vocal_activity"]))
    assert activity.shape == (int(12.0 / 0.02),)
    # the threshold is recorded with the envelope, so that filter judges activity the same way
    assert song.vocal_activity_threshold_db == -30.0
    assert song.vocal_active_ratio == round(float(np.mean(activity > -30.0)), 4)
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
    (result,) = stage.process_batch([("x", _record("x", rel), "f")])
    assert isinstance(result, Reject) and "stages.standardize.sample_rate" in result.message


def _stem_bytes(stage: SeparateStage, result) -> tuple[bytes, bytes]:
    storage = stage.context.storage
    return storage.read_bytes(result.record["vocals"]), storage.read_bytes(result.record["accomp"])


def _stems(stage: SeparateStage, result) -> np.ndarray:
    return np.stack([read_flac(data)[0] for data in _stem_bytes(stage, result)])


def test_background_writer_gives_the_same_stems_as_in_line(tmp_path, smoke_repo):
    inline = _stage(tmp_path / "inline", smoke_repo)
    threaded = _stage(tmp_path / "threaded", smoke_repo)
    threaded.writer_threads = 2  # what a GPU worker does
    outputs = []
    for stage in (inline, threaded):
        songs = [_song(stage.context.storage, f"s{i}", 5.0 + i, i) for i in range(4)]
        results = stage.process_batch([(f"s{i}", rec, f"fp{i}") for i, (rec, _) in enumerate(songs)])
        outputs.append([_stem_bytes(stage, r) for r in results])
    assert outputs[0] == outputs[1]


def test_stems_are_the_same_bytes_whatever_cpus_the_worker_got(tmp_path, smoke_repo):
    """Thread counts change float sums; on a CPU each segment runs on one thread, side by side."""
    outputs = []
    for cpus in (1.0, 2.0, 3.0):
        config = SeparateConfig(model=SMOKE_MODEL, repo=smoke_repo)
        stage = SeparateStage(config, StageContext(Storage(str(tmp_path / f"c{cpus:g}")), cpus=cpus))
        stage.setup()
        assert stage.settings.cpu_forwards is not None and stage.settings.cpu_forwards.threads == int(cpus)
        songs = [_song(stage.context.storage, f"s{i}", 5.0 + i, i) for i in range(3)]
        results = stage.process_batch([(f"s{i}", rec, f"fp{i}") for i, (rec, _) in enumerate(songs)])
        outputs.append([_stem_bytes(stage, r) for r in results])
    assert outputs[0] == outputs[1] == outputs[2]


def _failing_over(limit: int):
    """apply_model that runs out of memory on batches of more than ``limit`` segments (fault injection)."""

    def wrapped(model, mix, **kwargs):
        if mix.shape[0] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return apply_model(model, mix, **kwargs)

    return wrapped


def test_out_of_memory_halves_the_batch_and_redoes_unwritten_songs(tmp_path, smoke_repo, monkeypatch):
    reference = _stage(tmp_path / "ref", smoke_repo)
    stage = _stage(tmp_path / "oom", smoke_repo)
    stage.settings = replace(stage.settings, batch_segments=8, cpu_forwards=None)  # batched, as on a GPU
    items = {}
    for st in (reference, stage):
        songs = [_song(st.context.storage, f"s{i}", 4.0 + 3 * i, i) for i in range(3)]
        items[st] = [(f"s{i}", rec, f"fp{i}") for i, (rec, _) in enumerate(songs)]
    expected = [_stems(reference, r) for r in reference.process_batch(items[reference])]
    monkeypatch.setattr(demucs_stream, "apply_model", _failing_over(2))
    results = stage.process_batch(items[stage])
    assert stage.settings.batch_segments == 2
    for result, stems in zip(results, expected, strict=True):
        assert np.allclose(_stems(stage, result), stems, atol=1e-5)  # batch size moves float rounding only


def test_out_of_memory_at_one_segment_is_a_retryable_rejection(tmp_path, smoke_repo, monkeypatch):
    stage = _stage(tmp_path, smoke_repo)
    storage = stage.context.storage
    good, _ = _song(storage, "good", 6.0, 1)
    missing = _record("gone", "artifacts/standardize/gone/audio.flac")
    monkeypatch.setattr(demucs_stream, "apply_model", _failing_over(0))
    oom, unreadable = stage.process_batch([("good", good, "f1"), ("gone", missing, "f2")])
    assert isinstance(oom, Reject) and oom.reason == "out_of_memory" and oom.retryable
    assert isinstance(unreadable, Reject) and unreadable.reason == "input_artifact_unreadable"


def test_warm_up_runs_one_pass_of_the_production_batch_shape(model, monkeypatch):
    shapes = []

    def spy(model, mix, **kwargs):
        shapes.append(tuple(mix.shape))
        return apply_model(model, mix, **kwargs)

    monkeypatch.setattr(demucs_stream, "apply_model", spy)
    warm_up(model, settings(batch_segments=3))
    assert len(shapes) == 1 and shapes[0][0] == 3


def test_warm_up_finds_a_batch_that_fits_before_the_first_song(tmp_path, smoke_repo, monkeypatch):
    stage = _stage(tmp_path, smoke_repo)
    stage.settings = replace(stage.settings, batch_segments=16, cpu_forwards=None)  # batched, as on a GPU
    monkeypatch.setattr(demucs_stream, "apply_model", _failing_over(4))
    stage._warm_up()
    assert stage.settings.batch_segments == 4
    monkeypatch.setattr(demucs_stream, "apply_model", _failing_over(0))
    with pytest.raises(ValueError, match=r"stages\.separate\.segment"):
        stage._warm_up()
