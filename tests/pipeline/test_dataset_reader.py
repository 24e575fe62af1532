"""Reading dataset versions: tiny hand-built shards in the documented format, read back exactly."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from songcorpus.pipeline.dataset_reader import open_dataset, read_with_ray, resolve_version, shard_urls
from songcorpus.pipeline.references import MIN_PREFIX

VERSION_ID = "3f9c2a41d0b7e8aa55"
RATE = 44100


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _flac(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave.T, RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def build_version(root: Path, counts: dict[str, list[int]], *, tokens: str = "none",
                  audio: tuple[str, ...] = ("mix", "vocals", "accomp")) -> dict[str, Any]:
    """Write ``<root>/versions/<id>/`` with ``counts[split][i]`` samples in shard i; returns the truth.

    ``tokens``: "none", "inline" (``.npy`` members in the shard) or "column" (a ``.tokens.tar``).
    """
    vdir = root / "versions" / VERSION_ID
    (vdir / "shards").mkdir(parents=True)
    rng = np.random.default_rng(0)
    truth: dict[str, Any] = {}
    shards = []
    for split, per_shard in counts.items():
        for i, n in enumerate(per_shard):
            name = f"demo-{split}-{i:06d}.tar"
            with tarfile.open(vdir / "shards" / name, "w") as tar, \
                    tarfile.open(vdir / "shards" / name.replace(".tar", ".tokens.tar"), "w") as col:
                for j in range(n):
                    key = f"clip{split}{i:02d}{j:02d}"
                    meta = {"clip_id": key, "song_id": f"song{i}", "group": f"a{i}", "language": "en",
                            "split": split, "start": 1.5 * j, "end": 1.5 * j + 0.05, "duration": 0.05,
                            "sample_rate": RATE, "lyrics": f"hello {key}\nsecond line",
                            "words": [{"word": "hello", "start": 0.0, "end": 0.02, "score": 0.9},
                                      {"word": key, "start": 0.02, "end": 0.05, "score": 0.8}],
                            "lineage": {"align": "fa11", "segment": "fb22"}}
                    waves = {a: rng.integers(-20000, 20000, (2, 2205 + j), dtype=np.int16) for a in audio}
                    toks = {t: rng.integers(0, 1024, (7 + j,), dtype=np.int16) for t in ("song", "vocals")}
                    _member(tar, f"{key}.json", json.dumps(meta).encode())
                    for a, w in waves.items():
                        _member(tar, f"{key}.{a}.flac", _flac(w))
                    for t, arr in toks.items():
                        _member(tar if tokens == "inline" else col, f"{key}.{t}.npy", _npy(arr))
                    truth[key] = {"json": meta, "audio": waves, "tokens": toks}
            if tokens != "column":
                (vdir / "shards" / name.replace(".tar", ".tokens.tar")).unlink()
            shards.append({"name": name, "split": split, "samples": n, "seconds": 0.05 * n, "bytes": 1,
                           "sha256": "0" * 64})
    manifest = {"id": VERSION_ID, "dataset": "demo", "shards": shards}
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    return truth


@pytest.fixture
def version(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    truth = build_version(tmp_path, {"train": [4, 4, 3], "test": [2]})
    return tmp_path, truth


def _keys(samples: Any) -> list[str]:
    return [s["key"] for s in samples]


def test_round_trip_is_exact(version: tuple[Path, dict[str, Any]]) -> None:
    root, truth = version
    got = list(open_dataset(VERSION_ID[:8], "train", root=str(root)))
    train = {k: v for k, v in truth.items() if v["json"]["split"] == "train"}
    assert sorted(_keys(got)) == sorted(train) and len(got) == 11
    for s in got:
        want = train[s["key"]]
        assert s["json"] == want["json"]
        for a, w in want["audio"].items():
            assert s[a].dtype == torch.float32 and s[a].shape == w.shape and s[f"{a}_rate"] == RATE
            assert torch.equal((s[a] * 32768).round().to(torch.int16), torch.from_numpy(w))
        assert "song_tokens" not in s


@pytest.mark.parametrize("tokens", ["inline", "column"])
def test_tokens_inline_or_in_column_tar(tmp_path: Path, tokens: str) -> None:
    truth = build_version(tmp_path, {"train": [3, 2]}, tokens=tokens, audio=("mix",))
    got = list(open_dataset(str(tmp_path / "versions" / VERSION_ID / "manifest.json"), audio=("mix",)))
    assert len(got) == 5
    for s in got:
        for t, arr in truth[s["key"]]["tokens"].items():
            assert s[f"{t}_tokens"].dtype == torch.int64
            assert torch.equal(s[f"{t}_tokens"], torch.from_numpy(arr.astype(np.int64)))
    no_tokens = next(iter(open_dataset(str(tmp_path / "versions" / VERSION_ID), audio=(), tokens=False)))
    assert set(no_tokens) == {"key", "json"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("counts", [[11], [4, 4, 3]])
def test_dataloader_workers_read_each_sample_once(tmp_path: Path, counts: list[int]) -> None:
    truth = build_version(tmp_path, {"train": counts}, audio=("mix",))
    ds = open_dataset(VERSION_ID, root=str(tmp_path), audio=("mix",))
    keys = _keys(DataLoader(ds, batch_size=None, num_workers=2))
    assert len(keys) == len(set(keys)) == 11 and set(keys) == set(truth)


@pytest.mark.timeout(60)
def test_ddp_ranks_partition_the_samples(version: tuple[Path, dict[str, Any]],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root, truth = version
    per_rank = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        ds = open_dataset(VERSION_ID, root=str(root), audio=())
        # 3 shards over 2 ranks x 2 workers: one worker has nothing and must simply end
        per_rank.append(_keys(DataLoader(ds, batch_size=None, num_workers=2)))
    a, b = (set(k) for k in per_rank)
    assert not a & b and a | b == {k for k, v in truth.items() if v["json"]["split"] == "train"}
    assert sum(map(len, per_rank)) == 11


def test_shuffle_buffer_is_deterministic(version: tuple[Path, dict[str, Any]]) -> None:
    root, _ = version

    def order(**kw: Any) -> list[str]:
        return _keys(open_dataset(VERSION_ID, root=str(root), audio=(), **kw))

    plain = order()
    assert plain == sorted(plain)
    shuffled = order(shuffle_buffer=6, seed=1)
    assert shuffled == order(shuffle_buffer=6, seed=1) and sorted(shuffled) == plain
    assert shuffled != plain and shuffled != order(shuffle_buffer=6, seed=2)
    ds = open_dataset(VERSION_ID, root=str(root), audio=(), shuffle_buffer=6, seed=1)
    ds.set_epoch(1)
    assert _keys(ds) != shuffled and sorted(_keys(ds)) == plain


def test_missing_audio_member_names_key_and_member(tmp_path: Path) -> None:
    build_version(tmp_path, {"train": [2]}, audio=("mix",))
    with pytest.raises(ValueError, match=r"clip\w+\.vocals\.flac"):
        next(iter(open_dataset(VERSION_ID, root=str(tmp_path), audio=("mix", "vocals"))))


def test_errors_list_the_choices(version: tuple[Path, dict[str, Any]]) -> None:
    root, _ = version
    vdir, manifest = resolve_version(VERSION_ID, str(root))
    assert manifest["id"] == VERSION_ID and len(shard_urls(manifest, vdir, "test")) == 1
    with pytest.raises(ValueError, match="splits with shards: test, train"):
        open_dataset(VERSION_ID, "validation", root=str(root))
    with pytest.raises(ValueError, match=f"versions: {VERSION_ID}"):
        open_dataset("deadbeefcafe", root=str(root))
    with pytest.raises(ValueError, match=f"at least {MIN_PREFIX} characters"):
        open_dataset(VERSION_ID[:4], root=str(root))  # too short to be a prefix
    with pytest.raises(ValueError, match="root="):
        open_dataset(VERSION_ID)


@pytest.mark.timeout(120)
def test_ray_data_recipe_reads_the_same_samples(version: tuple[Path, dict[str, Any]], ray_cluster: Any) -> None:
    root, truth = version
    rows = read_with_ray(VERSION_ID, "train", str(root), audio=("mix",)).take_all()
    assert sorted(r["__key__"] for r in rows) == sorted(k for k, v in truth.items() if v["json"]["split"] == "train")
    row = rows[0]
    want = truth[row["__key__"]]
    assert row["json"]["lyrics"] == want["json"]["lyrics"] and row["mix_rate"] == RATE
    assert np.array_equal((np.asarray(row["mix"]) * 32768).round().astype(np.int16), want["audio"]["mix"])
    assert "vocals" not in row  # unrequested audio is not even read


@pytest.mark.timeout(120)
def test_ray_data_recipe_joins_the_token_column_tars(tmp_path: Path, ray_cluster: Any) -> None:
    truth = build_version(tmp_path, {"train": [3, 2]}, tokens="column", audio=("mix",))
    rows = read_with_ray(VERSION_ID, "train", str(tmp_path), audio=()).take_all()
    assert sorted(r["__key__"] for r in rows) == sorted(truth)
    for r in rows:
        assert np.array_equal(r["song_tokens"], truth[r["__key__"]]["tokens"]["song"])


def test_hugging_face_recipe_reads_the_same_samples(version):
    import io

    import soundfile as sf

    from songcorpus.pipeline.dataset_reader import read_with_hf

    root, _ = version
    version_dir = str(root / "versions" / VERSION_ID)
    ours = {s["key"]: s for s in open_dataset(version_dir, "train", audio=("mix",), tokens=False)}
    rows = list(read_with_hf(version_dir, "train"))
    assert sorted(r["__key__"] for r in rows) == sorted(ours)
    row = rows[0]
    audio, rate = sf.read(io.BytesIO(row["mix.flac"]["bytes"]), dtype="float32", always_2d=True)
    assert rate == ours[row["__key__"]]["mix_rate"]
    assert np.array_equal(audio.T, ours[row["__key__"]]["mix"].numpy())
