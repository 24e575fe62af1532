"""Immutable dataset versions: shards + manifest.json + data card + a per-sample index.

A version's id is the hash of its manifest content (shards with their sha256, splits, the stages
and configs that made it, reject counts), so the same inputs and config give the same id, bit for
bit. The parent link is kept beside the hashed content: a rebuild that changes nothing is
recognised as the existing version instead of becoming a new one.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import UserError
from .fingerprint import digest
from .references import LATEST_REF, match_id
from .shards import ShardInfo
from .storage import Storage

VERSIONS = "versions"
LATEST = f"{VERSIONS}/LATEST"  # the id of the version the last run published
FORMAT = "songcorpus-webdataset-1"


def version_dir(version_id: str) -> str:
    return f"{VERSIONS}/{version_id}"


#: Shortest version-id prefix that every command and reader accepts (ids are 16 hex characters; 8
#: keep prefixes unique among thousands of versions, and are what the docs show).


def published_ids(storage: Storage) -> list[str]:
    """Ids of the versions whose ``manifest.json`` is written (it is written last), sorted."""
    return [v for v in storage.list_dirs(VERSIONS)
            if not v.startswith(".") and storage.exists(f"{version_dir(v)}/manifest.json")]


def list_versions(storage: Storage) -> list[dict]:
    """Manifests of every published version, oldest first."""
    manifests = [load_manifest(storage, v) for v in published_ids(storage)]
    return sorted(manifests, key=lambda m: (m.get("published_by_run", ""), m["id"]))


def resolve_id(storage: Storage, ref: str) -> str:
    """A full version id from a reference (an id, a prefix, or ``latest``: see ``pipeline.references``)."""
    if ref == LATEST_REF:
        if not storage.exists(LATEST):
            raise UserError(f"no version has been published under {storage.root} yet (run the job first)")
        ref = storage.read_bytes(LATEST).decode().strip()
    return match_id(ref, published_ids(storage), what="version", where=storage.root,
                    forms="give a version id, a prefix of one, or latest")


def load_manifest(storage: Storage, ref: str) -> dict:
    return json.loads(storage.read_bytes(f"{version_dir(resolve_id(storage, ref))}/manifest.json"))


def publish(
    storage: Storage, staging: str, content: dict, index: pa.Table, card: str, run_id: str
) -> tuple[str, bool]:
    """Turn the shards written under ``staging`` into a version; returns (id, whether it already existed).

    ``staging`` is removed either way: its shards were moved into the version, or are copies of it.
    """
    version_id = digest({"format": FORMAT, **content}, length=16)
    target = version_dir(version_id)
    if storage.exists(f"{target}/manifest.json"):
        storage.delete_dir(staging)
        return version_id, True
    previous = list_versions(storage)
    manifest = {"id": version_id, "format": FORMAT, **content,
                "parent": previous[-1]["id"] if previous else None, "published_by_run": run_id}
    storage.fs.create_dir(storage.full(f"{target}/shards"), recursive=True)
    for shard in content["shards"]:
        storage.fs.move(storage.full(f"{staging}/{shard['name']}"), storage.full(f"{target}/shards/{shard['name']}"))
    sink = io.BytesIO()
    pq.write_table(index, sink)
    storage.write_bytes(f"{target}/index.parquet", sink.getvalue())
    storage.write_bytes(f"{target}/datacard.md", card.replace("{version_id}", version_id).encode())
    # written last: a version without manifest.json is incomplete and is never listed as published
    storage.write_bytes(f"{target}/manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
    storage.delete_dir(staging)
    return version_id, False


def shard_entries(shards: list[ShardInfo]) -> list[dict]:
    return [asdict(s) for s in shards]


def verify(storage: Storage, ref: str) -> list[str]:
    """Re-hash every shard and compare with the manifest; returns the problems found (empty = ok)."""
    manifest = load_manifest(storage, ref)
    problems = []
    for shard in manifest["shards"]:
        rel = f"{version_dir(manifest['id'])}/shards/{shard['name']}"
        if not storage.exists(rel):
            problems.append(f"{shard['name']}: missing")
            continue
        sha, size = hashlib.sha256(), 0
        with storage.fs.open_input_stream(storage.full(rel)) as src:
            while chunk := src.read(1 << 20):
                sha.update(chunk)
                size += len(chunk)
        if size != shard["bytes"]:
            problems.append(f"{shard['name']}: {size} bytes, manifest says {shard['bytes']}")
        if sha.hexdigest() != shard["sha256"]:
            problems.append(f"{shard['name']}: sha256 {sha.hexdigest()[:12]}… differs from the manifest")
    content = {k: v for k, v in manifest.items() if k not in ("id", "format", "parent", "published_by_run")}
    if digest({"format": manifest["format"], **content}, length=16) != manifest["id"]:
        problems.append("manifest.json was edited: its content no longer hashes to its id")
    return problems


def _index(storage: Storage, version_id: str) -> dict[str, dict]:
    table = pq.read_table(storage.fs.open_input_file(storage.full(f"{version_dir(version_id)}/index.parquet")))
    return {row["key"]: row for row in table.to_pylist()}


def diff(storage: Storage, ref_a: str, ref_b: str) -> dict:
    """Songs and clips added, removed or changed from A to B, and the stages whose fingerprint changed."""
    a, b = load_manifest(storage, ref_a), load_manifest(storage, ref_b)
    ia, ib = _index(storage, a["id"]), _index(storage, b["id"])
    songs_a = {r["song_id"] for r in ia.values()}
    songs_b = {r["song_id"] for r in ib.values()}
    changed = sorted(k for k in ia.keys() & ib.keys() if ia[k]["sha256"] != ib[k]["sha256"])
    stages = sorted(
        name for name in a["stages"].keys() | b["stages"].keys()
        if a["stages"].get(name) != b["stages"].get(name)
    )
    return {
        "a": a["id"], "b": b["id"],
        "clips_added": sorted(ib.keys() - ia.keys()), "clips_removed": sorted(ia.keys() - ib.keys()),
        "clips_changed": changed,
        "songs_added": sorted(songs_b - songs_a), "songs_removed": sorted(songs_a - songs_b),
        "songs_changed": sorted({ib[k]["song_id"] for k in changed}),
        "stages_changed": stages,
    }


def stage_identity(config: dict, version: int) -> str:
    """What a stage contributes to a version: its version and its output-relevant config."""
    return digest({"version": version, "config": config}, length=16)

