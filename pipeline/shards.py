"""Deterministic WebDataset tar shards: same samples in the same order -> byte-identical tar.

Member headers carry no time, owner or permission that depends on the machine, so a shard's sha256
is a function of its content alone.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from .storage import Storage

#: A sample: its key (no dots) and its members as (extension, bytes), e.g. ("json", b"{...}").
Sample = tuple[str, list[tuple[str, bytes]]]


@dataclass(frozen=True)
class ShardInfo:
    name: str
    split: str
    samples: int
    seconds: float
    bytes: int
    sha256: str


class _HashingWriter(io.RawIOBase):
    """Passes writes through to ``out`` while hashing and counting them."""

    def __init__(self, out: pa.NativeFile) -> None:
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: bytes) -> int:  # type: ignore[override]  # tarfile only writes bytes
        self.out.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def _member(key: str, ext: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(f"{key}.{ext}")
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_shard(storage: Storage, rel: str, split: str, samples: Iterable[tuple[Sample, float]]) -> ShardInfo:
    """Write ``samples`` (each with its audio seconds) as one tar at ``rel``, atomically."""
    count, seconds = 0, 0.0
    with storage.atomic_stream(rel) as stream:
        writer = _HashingWriter(stream)
        with tarfile.open(fileobj=writer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for (key, members), sample_seconds in samples:
                if "." in key:
                    raise ValueError(f"sample key {key!r} contains a dot; WebDataset would split it")
                for ext, data in members:
                    tar.addfile(_member(key, ext, data), io.BytesIO(data))
                count += 1
                seconds += sample_seconds
    return ShardInfo(rel.rsplit("/", 1)[1], split, count, round(seconds, 3), writer.size, writer.sha.hexdigest())


def read_samples(data: bytes) -> list[Sample]:
    """Samples of a tar in order (members grouped by key)."""
    samples: list[Sample] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            source = tar.extractfile(member)
            if source is None:
                raise ValueError(f"tar member {member.name!r} is not a regular file")
            payload = source.read()
            if samples and samples[-1][0] == key:
                samples[-1][1].append((ext, payload))
            else:
                samples.append((key, [(ext, payload)]))
    return samples


@dataclass(frozen=True)
class ShardSpec:
    """One shard to assemble: where it goes, its split, and its samples in order.

    Each sample is (fragment, key, seconds): the tar under the root that holds the sample's members
    (a per-song fragment written earlier), the sample key, and its audio seconds.
    """

    rel: str
    split: str
    samples: tuple[tuple[str, str, float], ...]


def assemble_shard(storage: Storage, spec: ShardSpec) -> ShardInfo:
    """Write one shard from its fragments, holding one fragment in memory at a time."""

    def samples() -> Iterable[tuple[Sample, float]]:
        loaded, members = None, {}
        for fragment, key, seconds in spec.samples:
            if fragment != loaded:
                members = dict(read_samples(storage.read_bytes(fragment)))
                loaded = fragment
            yield (key, members[key]), seconds

    return write_shard(storage, spec.rel, spec.split, samples())


def assemble_shards(storage: Storage, specs: list[ShardSpec], *, parallel: bool) -> list[ShardInfo]:
    """Write every shard, as Ray tasks when ``parallel`` (the same bytes as one after another)."""
    if not parallel or len(specs) < 2:
        return [assemble_shard(storage, spec) for spec in specs]
    import ray

    task = ray.remote(num_cpus=1, max_retries=3)(_assemble_remote)
    return ray.get([task.remote(storage.root, spec) for spec in specs])


def _assemble_remote(root: str, spec: ShardSpec) -> ShardInfo:
    return assemble_shard(Storage(root), spec)
