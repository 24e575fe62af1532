"""Read a dataset version's WebDataset shards for training: PyTorch, plain webdataset, or Ray Data.

Sharding across DDP ranks and DataLoader workers is done here, not by webdataset's splitters: every
process computes the same (optionally shuffled) shard list and keeps shard ``i`` when
``i % (world_size * num_workers) == rank * num_workers + worker``. That is a partition (no sample is
read twice in an epoch), it needs no communication, and a process left without shards simply yields
nothing instead of raising (webdataset's ``empty_check``) or refusing to run on several nodes
(its default ``single_node_only``). Tar parsing and key grouping are webdataset's own.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.tariterators import group_by_keys, tar_file_expander

from songcorpus.pipeline.errors import UserError
from songcorpus.pipeline.storage import Storage, resolve_filesystem
from songcorpus.pipeline.versions import VERSIONS, resolve_id

if TYPE_CHECKING:
    import datasets
    import ray.data

log = logging.getLogger(__name__)

AUDIO_MEMBERS = ("mix", "vocals", "accomp")
TOKEN_MEMBERS = ("song", "vocals", "accomp")
COLUMN_SUFFIX = ".tokens.tar"  # parallel "column" tar next to each shard: same keys, same order


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def _exists(path: str) -> bool:
    fs, inner = resolve_filesystem(path)
    return fs.get_file_info(inner).type.name != "NotFound"


def _listdir(path: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, inner = resolve_filesystem(path)
    if fs.get_file_info(inner).type != pafs.FileType.Directory:
        return []
    return sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(inner)))


def _load(version_dir: str) -> tuple[str, dict[str, Any]]:
    fs, inner = resolve_filesystem(_join(version_dir, "manifest.json"))
    with fs.open_input_stream(inner) as f:
        manifest = json.loads(f.read())
    return (version_dir if "://" in version_dir else os.path.abspath(version_dir)), manifest


def resolve_version(version_or_path: str, root: str | None = None) -> tuple[str, dict[str, Any]]:
    """Return ``(version_dir, manifest)`` for a version folder, its ``manifest.json``, or a version id.

    An id, or a unique prefix of at least ``references.MIN_PREFIX`` characters, is looked up under
    ``<root>/versions/`` by :func:`songcorpus.pipeline.versions.resolve_id`, as every command does.
    """
    if version_or_path.endswith("manifest.json") and _exists(version_or_path):
        return _load(version_or_path[: -len("manifest.json")].rstrip("/") or ".")
    if _exists(_join(version_or_path, "manifest.json")):
        return _load(version_or_path)
    if root is None:
        raise ValueError(f"{version_or_path!r} is not a version folder or manifest.json; to look it up "
                         "as a version id pass root=<the job's output root>")
    return _load(_join(root, VERSIONS, resolve_id(Storage(root), version_or_path)))


def split_with_clips(manifest: dict[str, Any], wanted: str) -> str:
    """``wanted`` when the version has samples in it, else the first of valid, test, train that has some (a tiny
    version may have no test clips at all)."""
    samples = manifest["splits"]["samples"]
    if samples.get(wanted):
        return wanted
    return next(split for split in ("valid", "test", "train") if samples.get(split))


def version_tokens(manifest: dict[str, Any], model: str) -> dict[str, Any]:
    """The version's token facts (tokenizer, codes, rate) for training ``model``, or a :class:`UserError` that
    says how to get a version with tokens."""
    tokens = manifest.get("tokens")
    if not tokens:
        raise UserError(f"version {manifest['id']} has no tokens; add a [stages.tokenize] section to the job (and "
                        f"train a tokenizer: [train.tokenizer]), run it, and train the {model} on the new version")
    return dict(tokens)


def shard_urls(manifest: dict[str, Any], version_dir: str, split: str) -> list[str]:
    """Sorted URLs (local paths or URIs) of the split's shards; column tars are not listed."""
    shards = manifest.get("shards", [])
    names = sorted(s["name"] for s in shards if s.get("split") == split and not s["name"].endswith(COLUMN_SUFFIX))
    if not names:
        splits = sorted({s.get("split") for s in shards if s.get("split")})
        raise ValueError(f"version {manifest.get('id', version_dir)!r} has no shards for split {split!r}; "
                         f"splits with shards: {', '.join(splits) or 'none'}")
    return [_join(version_dir, "shards", n) for n in names]


def _open(url: str) -> Any:
    if "://" in url:
        fs, inner = resolve_filesystem(url)
        return fs.open_input_stream(inner)
    return open(url, "rb")


def _tar_samples(url: str) -> Iterator[dict[str, Any]]:
    """Raw samples (``__key__``, ``__url__``, member suffix → bytes) of one tar, via webdataset."""
    stream = _open(url)
    try:
        yield from group_by_keys(tar_file_expander([{"url": url, "stream": stream}]))
    finally:
        stream.close()


def _shard_samples(url: str, column: str | None) -> Iterator[dict[str, Any]]:
    """One shard's samples, with its column tar's members merged in (same keys, same order)."""
    if column is None:
        yield from _tar_samples(url)
        return
    extra = _tar_samples(column)
    for sample in _tar_samples(url):
        other = next(extra, None)
        if other is None or other["__key__"] != sample["__key__"]:
            got = other and other["__key__"]
            raise ValueError(f"{column}: expected key {sample['__key__']!r} (as in {url}), found {got!r}")
        sample.update({k: v for k, v in other.items() if not k.startswith("__")})
        yield sample
    if next(extra, None) is not None:
        raise ValueError(f"{column} has more samples than {url}")


def decode_sample(raw: dict[str, Any], audio: tuple[str, ...], tokens: bool) -> dict[str, Any]:
    """Decode a raw sample to ``key``, ``json``, ``<audio>`` float32 (channels, samples) numpy arrays
    with ``<audio>_rate``, and ``<stream>_tokens`` int64 arrays for the ``.npy`` members present."""
    key, where = raw["__key__"], raw.get("__url__", "?")
    if "json" not in raw:
        raise ValueError(f"sample {key!r} in {where} has no {key}.json member")
    out: dict[str, Any] = {"key": key, "json": json.loads(raw["json"])}
    for name in audio:
        data = raw.get(f"{name}.flac")
        if data is None:
            raise ValueError(f"sample {key!r} in {where} has no {key}.{name}.flac member; members: "
                             f"{sorted(k for k in raw if not k.startswith('__'))}; pass audio= without {name!r}")
        wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        out[name], out[f"{name}_rate"] = np.ascontiguousarray(wave.T), int(rate)
    if tokens:
        for name in TOKEN_MEMBERS:
            if f"{name}.npy" in raw:
                out[f"{name}_tokens"] = np.load(io.BytesIO(raw[f"{name}.npy"])).astype(np.int64)
    return out


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


class VersionDataset(IterableDataset):
    """Samples of one split of a dataset version; see :func:`open_dataset`.

    Call :meth:`set_epoch` before each epoch (like ``DistributedSampler``) to get a new, still
    deterministic, order: DataLoader workers are copies, so an internal epoch counter would not advance.
    """

    def __init__(self, shards: list[tuple[str, str | None]], *, shuffle_buffer: int, seed: int,
                 audio: tuple[str, ...], tokens: bool, epoch_shuffle: bool) -> None:
        super().__init__()
        self.shards, self.shuffle_buffer, self.seed = shards, shuffle_buffer, seed
        self.audio, self.tokens, self.epoch_shuffle, self.epoch = audio, tokens, epoch_shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def my_shards(self) -> list[tuple[str, str | None]]:
        """The shards this rank and DataLoader worker read (possibly none)."""
        rank, world = _rank_and_world()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        shards = list(self.shards)
        if self.shuffle_buffer > 0:  # same seed in every process, so the split stays a partition
            random.Random(f"shards/{self.seed}/{self._epoch()}").shuffle(shards)
        return shards[rank * workers + worker :: world * workers]

    def _epoch(self) -> int:
        return self.epoch if self.epoch_shuffle else 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        mine = self.my_shards()
        raw: Iterator[dict[str, Any]] = (s for url, col in mine for s in _shard_samples(url, col))
        if self.shuffle_buffer > 0:  # shuffle compressed bytes, decode only what is yielded
            from webdataset.filters import shuffle

            rank, _ = _rank_and_world()
            info = get_worker_info()
            rng = random.Random(f"samples/{self.seed}/{self._epoch()}/{rank}/{info.id if info else 0}")
            raw = shuffle(self.shuffle_buffer, self.shuffle_buffer, rng=rng)(raw)
        for sample in raw:
            out = decode_sample(sample, self.audio, self.tokens)
            yield {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in out.items()}


def _with_columns(urls: list[str], version_dir: str, tokens: bool) -> list[tuple[str, str | None]]:
    present = set(_listdir(_join(version_dir, "shards"))) if tokens else set()
    pairs = []
    for url in urls:
        column = url[: -len(".tar")] + COLUMN_SUFFIX
        pairs.append((url, column if column.rsplit("/", 1)[-1] in present else None))
    return pairs


def open_dataset(version_or_path: str, split: str = "train", *, root: str | None = None,
                 shuffle_buffer: int = 0, seed: int = 0, audio: tuple[str, ...] = AUDIO_MEMBERS,
                 tokens: bool = True, epoch_shuffle: bool = True) -> VersionDataset:
    """A PyTorch ``IterableDataset`` over one split, split across DDP ranks and DataLoader workers.

    ``shuffle_buffer=0`` reads in shard order (evaluation); ``> 0`` also shuffles the shard order.
    Both are deterministic for ``seed`` (and the epoch given to ``set_epoch`` when ``epoch_shuffle``)
    at a fixed world size and worker count. Token columns (``<key>.song.npy`` … in the shard or in its
    ``.tokens.tar`` column tar) appear as ``song_tokens``/``vocals_tokens``/``accomp_tokens``.
    """
    unknown = sorted(set(audio) - set(AUDIO_MEMBERS))
    if unknown:
        raise ValueError(f"unknown audio members {unknown}; choose from {AUDIO_MEMBERS}")
    version_dir, manifest = resolve_version(version_or_path, root)
    shards = _with_columns(shard_urls(manifest, version_dir, split), version_dir, tokens)
    log.info("version %s split %s: %d shards, %d with a token column tar", manifest.get("id", version_dir),
             split, len(shards), sum(c is not None for _, c in shards))
    return VersionDataset(shards, shuffle_buffer=shuffle_buffer, seed=seed,
                          audio=tuple(audio), tokens=tokens, epoch_shuffle=epoch_shuffle)


def read_with_ray(version_or_path: str, split: str = "train", root: str | None = None, *,
                  audio: tuple[str, ...] = AUDIO_MEMBERS, tokens: bool = True) -> ray.data.Dataset:
    """The Ray Data recipe: ``ray.data.read_webdataset`` over the split's shards, decoded per row.

    Rows hold ``__key__`` plus what :func:`open_dataset` yields, as numpy arrays. Decoded audio is
    large: pass ``audio=()`` to leave the FLAC members unread when only metadata or tokens are needed.
    Column tars are read the same way and joined on ``__key__`` (a hash join: a shuffle).
    """
    import ray.data

    version_dir, manifest = resolve_version(version_or_path, root)
    urls = shard_urls(manifest, version_dir, split)
    pairs = _with_columns(urls, version_dir, tokens)
    columns = [c for _, c in pairs if c is not None]
    wanted = ["json", *(f"{a}.flac" for a in audio), *((f"{t}.npy" for t in TOKEN_MEMBERS) if tokens else ())]

    def decode(raw: dict[str, Any]) -> dict[str, Any]:
        out = decode_sample(raw, tuple(audio), tokens and not columns)
        out["__key__"] = out.pop("key")
        return out

    ds = ray.data.read_webdataset(urls, decoder=decode, suffixes=wanted)
    if not columns:
        return ds
    if len(columns) != len(urls):
        missing = [u for u, c in pairs if c is None]
        raise ValueError(f"only some shards have a {COLUMN_SUFFIX} column tar; missing for {missing[:3]}")

    def decode_tokens(raw: dict[str, Any]) -> dict[str, Any]:
        out = decode_sample({**raw, "json": b"{}"}, (), True)
        return {"__key__": out["key"], **{k: v for k, v in out.items() if k.endswith("_tokens")}}

    toks = ray.data.read_webdataset(columns, decoder=decode_tokens)
    return ds.join(toks, join_type="inner", num_partitions=max(1, len(urls)), on=("__key__",))


def read_with_hf(version_or_path: str, split: str = "train", root: str | None = None) -> datasets.IterableDataset:
    """The Hugging Face ``datasets`` recipe: the split's shards through its ``webdataset`` builder.

    Streams, and leaves audio undecoded (``{"bytes", "path"}`` per FLAC member): decode with
    ``soundfile.read(io.BytesIO(row["mix.flac"]["bytes"]))``, which keeps the exact samples. Needs
    ``pip install datasets`` and FFmpeg's shared libraries (``datasets`` loads ``torchcodec`` for
    every audio column, decoded or not); local roots only (the builder reads paths).
    """
    import datasets

    try:
        import torchcodec.encoders  # noqa: F401 - what datasets' Audio feature loads per row
    except (ImportError, RuntimeError) as exc:
        raise ImportError(
            "the Hugging Face recipe needs torchcodec and FFmpeg 4-7 shared libraries "
            "(Debian/Ubuntu: sudo apt-get install ffmpeg); open_dataset needs neither"
        ) from exc

    version_dir, manifest = resolve_version(version_or_path, root)
    urls = shard_urls(manifest, version_dir, split)
    stream = datasets.load_dataset("webdataset", data_files={split: urls}, split=split, streaming=True)
    return stream.decode(False)
