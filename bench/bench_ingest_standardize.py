"""Throughput of ingest + standardize in the pipeline against a bare decode of the same files.

References, measured in the same run on the same files:
- bare decode: one process decoding every file with FFmpeg (PyAV) to float samples, nothing else;
- same code in a loop: the ingest and standardize stage code called per song in one process, which
  also hashes, probes, resamples, measures loudness and writes FLAC, but without Ray.
The pipeline runs on the embedded Ray with all local CPUs. Ratios are pipeline / reference.

    .venv/bin/python bench/bench_ingest_standardize.py [--songs 24] [--work DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

from songcorpus.pipeline.jobfile import parse_job
from songcorpus.pipeline.runner import run_job
from songcorpus.synth.corpus import make_corpus


def bare_decode_seconds(paths: list[Path]) -> tuple[float, float]:
    """(audio seconds, wall seconds) of decoding every file once in this process."""
    audio = 0.0
    start = time.perf_counter()
    for path in paths:
        with av.open(io.BytesIO(path.read_bytes()), mode="r") as container:
            stream = container.streams.audio[0]
            samples = sum(frame.to_ndarray().shape[-1] for frame in container.decode(stream))
            audio += samples / stream.codec_context.sample_rate
    return audio, time.perf_counter() - start


def same_work_in_one_process(root: Path, manifest: Path) -> float:
    """Wall seconds of calling the ingest and standardize stage code in a plain loop (no Ray)."""
    from songcorpus.pipeline.stage import StageContext
    from songcorpus.pipeline.storage import Storage
    from songcorpus.schemas.stage_configs import IngestConfig, StandardizeConfig
    from songcorpus.stages.ingest import IngestStage
    from songcorpus.stages.sources import manifest_rows, read_manifest
    from songcorpus.stages.standardize import StandardizeStage

    context = StageContext(Storage(str(root)), str(manifest.parent))
    ingest, standardize = IngestStage(IngestConfig(), context), StandardizeStage(StandardizeConfig(), context)
    start = time.perf_counter()
    for row in manifest_rows(read_manifest(str(manifest)), str(manifest.parent)):
        record = ingest.process(row["item_id"], row["record"], row["fingerprint"]).record
        standardize.process(record["song_id"], record, row["fingerprint"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=24)
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    corpus = work / "corpus"
    manifest = corpus / "manifest.parquet"
    if not manifest.exists():
        make_corpus(corpus, args.songs, seed=1, min_seconds=30, max_seconds=60)
    paths = [corpus / p for p in pq.read_table(manifest)["audio_path"].to_pylist()]

    audio, bare_wall = bare_decode_seconds(paths)
    root = work / "out"
    shutil.rmtree(root, ignore_errors=True)
    text = f'name = "bench"\nroot = "{root}"\n[input]\nmanifest = "{manifest}"\n[stages.ingest]\n[stages.standardize]\n'
    started = time.perf_counter()
    result = run_job(parse_job(text), text)
    job_wall = time.perf_counter() - started
    stages = {s["name"]: s for s in result.report["stages"]}
    stage_wall = sum(s["wall_seconds"] for s in stages.values())

    loop_wall = same_work_in_one_process(work / "loop", manifest)
    bare = audio / bare_wall
    print(f"songs: {len(paths)}, audio: {audio / 60:.1f} min, CPUs: {os.cpu_count()}")
    print(f"reference  bare PyAV decode, 1 process:        {bare:9.1f} audio-s/s")
    print(f"reference  same stage code, plain loop, 1 proc: {audio / loop_wall:9.1f} audio-s/s")
    print(f"pipeline   ingest+standardize, stage walls:    {audio / stage_wall:9.1f} audio-s/s"
          f"   ratio {audio / stage_wall / bare:.2f} vs bare decode, "
          f"{loop_wall / stage_wall:.2f} vs same code in a loop")
    print(f"pipeline   whole job incl. Ray start-up:       {audio / job_wall:9.1f} audio-s/s"
          f"   ratio {audio / job_wall / bare:.2f}")
    for name, s in stages.items():
        print(f"  {name:<12} wall {s['wall_seconds']:7.2f} s  busy {s['busy_seconds']:7.2f} s  "
              f"{s['audio_seconds_per_second']:8.1f} x realtime")
    assert np.isclose(sum(s["ok"] for s in stages.values()), 2 * len(paths))


if __name__ == "__main__":
    main()
