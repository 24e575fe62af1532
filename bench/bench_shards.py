"""Shard writing and reading throughput against bare ``tarfile`` on the same bytes.

Writing: ``pipeline.shards.write_shard`` (deterministic headers, sha256, atomic rename) against
``tarfile`` writing the same members to a plain file. Reading: ``open_dataset`` over a published
version (json only, and with FLAC decoding of the mixture) against ``tarfile`` reading every member's
bytes in order. Ratios are ours / bare; all in one process, same files, same run.

    .venv/bin/python bench/bench_shards.py [--samples 300] [--seconds 10]
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from songcorpus.pipeline import versions
from songcorpus.pipeline.dataset_reader import open_dataset
from songcorpus.pipeline.shards import write_shard
from songcorpus.pipeline.storage import Storage
from songcorpus.stages.audio_io import encode_flac


def make_samples(count: int, seconds: float) -> list:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 44100)) / 44100
    out = []
    for i in range(count):
        tone = 0.3 * np.sin(2 * np.pi * (200 + i) * t) + 0.01 * rng.standard_normal(t.size)
        flac = encode_flac(np.stack([tone, tone]).astype(np.float32), 44100)
        meta = {"clip_id": f"c{i:06d}", "lyrics": "la la", "words": [], "split": "train"}
        out.append(((f"c{i:06d}", [("json", json.dumps(meta).encode()), ("mix.flac", flac)]), seconds))
    return out


def bare_write(path: Path, samples: list) -> None:
    with tarfile.open(path, "w") as tar:
        for (key, members), _ in samples:
            for ext, data in members:
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def bare_read(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                data = tar.extractfile(member)  # None for anything but a regular file
                if data is not None:
                    total += len(data.read())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    samples = make_samples(args.samples, args.seconds)
    size = sum(len(d) for (_, members), _ in samples for _, d in members)
    storage = Storage(str(work / "root"))
    half = len(samples) // 2

    start = time.perf_counter()
    bare_write(work / "bare-0.tar", samples[:half])
    bare_write(work / "bare-1.tar", samples[half:])
    bare_w = time.perf_counter() - start
    start = time.perf_counter()
    shards = [write_shard(storage, f"versions/.staging-b/d-train-{n:06d}.tar", "train", part)
              for n, part in enumerate((samples[:half], samples[half:]))]
    ours_w = time.perf_counter() - start
    content = {"dataset": "d", "shards": versions.shard_entries(shards),
               "splits": {"samples": {"train": len(samples)}, "seconds": {"train": 0.0}}, "stages": {}}
    version, _ = versions.publish(storage, "versions/.staging-b", content, pa.table({"key": ["x"]}), "", "b")
    paths = sorted((work / "root" / "versions" / version / "shards").glob("*.tar"))

    start = time.perf_counter()
    bare_read(paths)
    bare_r = time.perf_counter() - start
    timings = {}
    for label, audio in (("json only", ()), ("json + FLAC decode", ("mix",))):
        start = time.perf_counter()
        n = sum(1 for _ in open_dataset(version, "train", root=storage.root, audio=audio, tokens=False))
        timings[label] = time.perf_counter() - start
        assert n == len(samples)

    mb = size / 1e6
    print(f"{len(samples)} samples, {mb:.1f} MB in 2 shards")
    print(f"write  bare tarfile            {len(samples) / bare_w:9.1f} samples/s {mb / bare_w:8.1f} MB/s")
    print(f"write  write_shard             {len(samples) / ours_w:9.1f} samples/s {mb / ours_w:8.1f} MB/s"
          f"   ratio {bare_w / ours_w:.2f}")
    print(f"read   bare tarfile            {len(samples) / bare_r:9.1f} samples/s {mb / bare_r:8.1f} MB/s")
    for label, seconds in timings.items():
        print(f"read   open_dataset, {label:<10}{len(samples) / seconds:9.1f} samples/s {mb / seconds:8.1f} MB/s"
              f"   ratio {bare_r / seconds:.2f}")


if __name__ == "__main__":
    main()
