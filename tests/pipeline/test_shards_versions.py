"""Shards and versions without Ray: determinism, atomicity, verification, stable splits."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from songcorpus.pipeline import versions
from songcorpus.pipeline.dataset_reader import resolve_version
from songcorpus.pipeline.references import MIN_PREFIX
from songcorpus.pipeline.shards import read_samples, write_shard
from songcorpus.pipeline.stage import StageContext
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.records import REJECTED, Outcome
from songcorpus.schemas.stage_configs import ShardConfig
from songcorpus.stages.shard import NothingToPublishError, ShardStage, split_of


def samples(n: int, tag: str = "") -> list:
    return [((f"song{i:03d}-0000", [("json", json.dumps({"i": i, "t": tag}).encode()), ("mix.flac", bytes([i]) * 50)]),
             1.5) for i in range(n)]


def test_same_samples_give_byte_identical_shards(tmp_path):
    storage = Storage(str(tmp_path))
    a = write_shard(storage, "a/x.tar", "train", samples(5))
    b = write_shard(storage, "b/x.tar", "train", samples(5))
    assert a.sha256 == b.sha256 and a.samples == 5 and a.seconds == 7.5
    assert (tmp_path / "a/x.tar").read_bytes() == (tmp_path / "b/x.tar").read_bytes()
    back = read_samples((tmp_path / "a/x.tar").read_bytes())
    assert [k for k, _ in back] == [k for (k, _), _ in samples(5)]
    assert back[2][1] == samples(5)[2][0][1]


def test_dotted_keys_are_refused(tmp_path):
    with pytest.raises(ValueError, match="contains a dot"):
        write_shard(Storage(str(tmp_path)), "x.tar", "train", [(("a.b", [("json", b"{}")]), 1.0)])


def test_a_crash_while_writing_leaves_no_shard_that_looks_complete(tmp_path):
    def exploding():
        yield from samples(3)
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        write_shard(Storage(str(tmp_path)), "s/x.tar", "train", exploding())
    assert not (tmp_path / "s" / "x.tar").exists()
    assert list((tmp_path / "s").iterdir()) == []


def publish_one(storage: Storage, run_id: str, tag: str = "") -> tuple[str, bool]:
    shard = write_shard(storage, f"versions/.staging-{run_id}/d-train-000000.tar", "train", samples(3, tag))
    content = {"dataset": "d", "shards": versions.shard_entries([shard]),
               "splits": {"samples": {"train": 3}, "seconds": {"train": 4.5}}, "stages": {"a": "1"}}
    index = pa.Table.from_pylist([{"key": f"song{i:03d}-0000", "song_id": f"song{i:03d}", "split": "train",
                                   "shard": shard.name, "sha256": tag + str(i), "seconds": 1.5} for i in range(3)])
    return versions.publish(storage, f"versions/.staging-{run_id}", content, index, "card {version_id}", run_id)


def test_publish_is_idempotent_and_verify_catches_a_flipped_byte(tmp_path):
    storage = Storage(str(tmp_path))
    first, existed = publish_one(storage, "r1")
    again, existed_again = publish_one(storage, "r2")
    assert first == again and not existed and existed_again
    assert versions.verify(storage, first) == []
    shard = tmp_path / "versions" / first / "shards" / "d-train-000000.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0x01
    shard.write_bytes(bytes(data))
    problems = versions.verify(storage, first[:8])
    assert len(problems) == 1 and "sha256" in problems[0]


def test_new_content_is_a_new_version_with_a_parent_and_a_diff(tmp_path):
    storage = Storage(str(tmp_path))
    first, _ = publish_one(storage, "r1")
    second, _ = publish_one(storage, "r2", tag="changed")
    assert first != second
    assert versions.load_manifest(storage, second)["parent"] == first
    d = versions.diff(storage, first, second)
    assert len(d["clips_changed"]) == 3 and d["clips_added"] == [] and d["stages_changed"] == []
    with pytest.raises(ValueError, match="versions:"):
        versions.resolve_id(storage, "nonexistent")


def test_splits_are_stable_and_follow_the_fractions():
    splits = {"train": 0.8, "valid": 0.1, "test": 0.1}
    groups = [f"artist-{i}" for i in range(4000)]
    assigned = [split_of(g, splits) for g in groups]
    assert assigned == [split_of(g, splits) for g in groups]  # a pure function of the group key
    share = assigned.count("train") / len(groups)
    assert 0.77 < share < 0.83 and assigned.count("test") > 300


def test_shards_written_in_parallel_are_the_bytes_of_a_serial_build(tmp_path, ray_cluster):
    from songcorpus.pipeline.shards import ShardSpec, assemble_shards

    storage = Storage(str(tmp_path))
    fragments = []
    for song in range(5):  # per-song fragments, as the shard stage's workers write them
        members = [(f"song{song:03d}-{clip:04d}", [("json", json.dumps({"s": song, "c": clip}).encode()),
                                                   ("mix.flac", bytes([song, clip]) * 300)]) for clip in range(3)]
        fragments.append(write_shard(storage, f"artifacts/shard/f{song}/samples.tar", "train",
                                     [(m, 1.0) for m in members]))
    entries = [(f"artifacts/shard/f{s}/samples.tar", f"song{s:03d}-{c:04d}", 1.0) for s in range(5) for c in range(3)]
    # four samples per shard: shards cut through songs, so fragments are read by two shards
    specs = [ShardSpec(f"{where}/d-train-{n:06d}.tar", "train", tuple(entries[i : i + 4]))
             for where in ("serial", "parallel") for n, i in enumerate(range(0, len(entries), 4))]
    serial = assemble_shards(storage, specs[:4], parallel=False)
    parallel = assemble_shards(storage, specs[4:], parallel=True)
    assert [s.sha256 for s in serial] == [p.sha256 for p in parallel] and len(serial) == 4
    assert [s.samples for s in parallel] == [4, 4, 4, 3]
    assert read_samples((tmp_path / "parallel" / "d-train-000001.tar").read_bytes())[0][0] == "song001-0001"


def test_publishing_leaves_no_staging_folder(tmp_path):
    storage = Storage(str(tmp_path))
    publish_one(storage, "r1")
    publish_one(storage, "r2")  # the same content again: its staging copy is removed too
    assert [p.name for p in (tmp_path / "versions").iterdir() if p.name.startswith(".")] == []


def test_commands_and_readers_resolve_version_ids_alike(tmp_path):
    """One resolver: the CLI's resolve_id and the readers' resolve_version accept the same prefixes."""
    storage = Storage(str(tmp_path))
    first, _ = publish_one(storage, "r1")
    second, _ = publish_one(storage, "r2", tag="changed")
    (tmp_path / "versions" / (first[:12] + "half")).mkdir()  # a publish that died before its manifest.json
    shortest = MIN_PREFIX
    for ref, want in ((first, first), (first[:shortest], first), (second[:shortest], second)):
        assert versions.resolve_id(storage, ref) == want
        assert resolve_version(ref, str(tmp_path))[1]["id"] == want
    for ref, why in ((first[: shortest - 1], f"at least {shortest} characters"), ("", "no version matches")):
        for resolve in (lambda r: versions.resolve_id(storage, r), lambda r: resolve_version(r, str(tmp_path))):
            with pytest.raises(ValueError, match=why):
                resolve(ref)


def test_a_run_without_clips_publishes_nothing_unless_asked(tmp_path):
    storage = Storage(str(tmp_path))
    everything_rejected = [Outcome("s1", "fp1", REJECTED, reason="low_alignment_score")]
    stage = ShardStage(ShardConfig(), StageContext(storage, run_id="r1", job={"name": "d"}))
    with pytest.raises(NothingToPublishError, match=r"1 songs in, 1 rejected.*publish_empty = true"):
        stage.finalize(everything_rejected)
    assert not (tmp_path / "versions").exists()
    asked = ShardStage(ShardConfig(publish_empty=True), StageContext(storage, run_id="r2", job={"name": "d"}))
    asked.finalize(everything_rejected)
    manifest = versions.load_manifest(storage, "latest")
    assert manifest["shards"] == [] and sum(manifest["splits"]["samples"].values()) == 0
