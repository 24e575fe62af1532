"""Throughput of the separate stage in the pipeline against bare Demucs ``apply_model``.

Both sides use the same full-size, randomly initialised HTDemucs (``smoke_htdemucs_full``: the
compute of the pretrained htdemucs), the same standardized songs and the same number of torch
threads. Reference: ``apply_model(model, mix, split=True, overlap=0.25)`` song after song in this
process. Pipeline: the separate stage on the embedded Ray (one actor with those threads, ingest and
standardize already done so nothing else competes), timed by its own ledger. Prints audio-seconds per second for both and their ratio (target >= 0.9 on CPU).

    .venv/bin/python bench/bench_separate.py [--songs 4] [--seconds 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from demucs.apply import apply_model
from songcorpus.pipeline.jobfile import parse_job
from songcorpus.pipeline.runner import run_job
from songcorpus.stages.demucs_models import load_separator

MODEL = "smoke_htdemucs_full"


def write_songs(folder: Path, songs: int, seconds: float) -> Path:
    """Noise-and-tone songs (content does not change Demucs' compute), with lyrics and a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["audio_path,lyrics_path"]
    rng = np.random.default_rng(0)
    for i in range(songs):
        t = np.arange(int(seconds * 44100)) / 44100
        tone = 0.2 * np.sin(2 * np.pi * (220 + 30 * i) * t)
        audio = np.stack([tone, tone], axis=1) + 0.05 * rng.standard_normal((t.size, 2))
        sf.write(folder / f"s{i}.flac", audio.astype(np.float32), 44100)
        (folder / f"s{i}.txt").write_text("la la la\n")
        lines.append(f"s{i}.flac,s{i}.txt")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-separate-"))
    manifest = write_songs(work / "songs", args.songs, args.seconds)
    repo = work / "models"

    text = (
        f'name = "bench"\nroot = "{work / "out"}"\n[input]\nmanifest = "{manifest}"\n'
        "[runtime]\nnum_cpus = 2\nstall_timeout_s = 3600\n[stages.ingest]\n[stages.standardize]\n"
    )
    run_job(parse_job(text), text)  # standardize first, so nothing else competes for the CPUs below
    text += (
        f'[stages.separate]\nmodel = "{MODEL}"\nrepo = "{repo}"\ncpu_threads = {args.threads}\n'
        f"[stages.separate.resources]\nnum_cpus = {args.threads}\nbatch_size = 1\nmax_workers = 1\n"
    )
    result = run_job(parse_job(text), text)
    stage = {s["name"]: s for s in result.report["stages"]}["separate"]
    pipeline = stage["audio_seconds"] / stage["wall_seconds"]

    torch.set_num_threads(args.threads)
    model = load_separator(MODEL, str(repo))
    audio = 0.0
    start = time.perf_counter()
    for path in sorted((work / "out" / "artifacts" / "standardize").glob("*/audio.flac")):
        mix, rate = sf.read(path, dtype="float32", always_2d=True)
        with torch.no_grad():
            apply_model(model, torch.from_numpy(mix.T.copy())[None], split=True, overlap=0.25, shifts=0)
        audio += len(mix) / rate
    bare = audio / (time.perf_counter() - start)

    print(f"songs: {args.songs} x {args.seconds:g} s, torch threads: {args.threads}, model: {MODEL} (random)")
    print(f"reference  bare apply_model, song by song:  {bare:7.3f} audio-s/s")
    print(f"pipeline   separate stage (ledger wall):     {pipeline:7.3f} audio-s/s   ratio {pipeline / bare:.2f}")


if __name__ == "__main__":
    main()
