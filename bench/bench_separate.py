"""Throughput of the separate stage in the pipeline against bare Demucs on the same songs.

Both sides use the same full-size, randomly initialised HTDemucs (``smoke_htdemucs_full``: the
compute of the pretrained htdemucs), the same standardized songs, the same device, precision and
number of torch threads.

References, run in this process while no Ray is up (once before the pipeline, once after, so that
their spread shows the machine's noise):
  - ``stock``: ``apply_model(model, mix, split=True, overlap=0.25)`` song after song, fp32: what a
    user of Demucs runs;
  - ``batched`` (only with ``--batch-segments`` > 1 or a precision other than fp32): our batched
    separation with the pipeline's settings, song after song, without Ray. It isolates the cost of the
    pipeline itself from the gain of batching.
Pipeline: the separate stage on the embedded Ray with one worker, ingest and standardize already
done so nothing else competes, timed by its own ledger (first item started to last item finished).
Both sides are warmed up by one forward pass first (the stage does this in its setup).

With as many torch threads as cores (2 on 2), the ratio also carries Ray Data's own pollers (its
driver loop and helper actors wake ~100 times a second each) preempting torch's OpenMP team: expect
0.9 +- 0.05 run to run there. ``--threads`` one below the core count leaves them a core, as a real node
does.
Prints audio-seconds per second for each and the ratio pipeline / reference (target >= 0.9 on CPU).

    .venv/bin/python bench/bench_separate.py [--songs 8] [--seconds 30] [--threads 2]
    .venv/bin/python bench/bench_separate.py --device cuda --precision bf16 --batch-segments 16 --batch-size 8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from demucs.apply import apply_model

from songcorpus.pipeline.jobfile import parse_job
from songcorpus.pipeline.ledger import Ledger
from songcorpus.pipeline.runner import run_job
from songcorpus.pipeline.runtime import stop_ray
from songcorpus.pipeline.storage import Storage
from songcorpus.stages.demucs_models import load_separator
from songcorpus.stages.demucs_stream import SeparationSettings, separate
from songcorpus.stages.separate import AUTOCAST

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


def job_text(work: Path, manifest: Path, args: argparse.Namespace, with_separate: bool) -> str:
    text = (
        f'name = "bench"\nroot = "{work / "out"}"\n[input]\nmanifest = "{manifest}"\n'
        "[runtime]\nstall_timeout_s = 3600\n[stages.ingest]\n[stages.standardize]\n"
    )
    if not with_separate:
        return text
    gpus = 1 if args.device == "cuda" else 0
    return text + (
        f'[stages.separate]\nmodel = "{MODEL}"\nrepo = "{work / "models"}"\ncpu_threads = {args.threads}\n'
        f'device = "{args.device}"\nprecision = "{args.precision}"\nbatch_segments = {args.batch_segments}\n'
        f"[stages.separate.resources]\nnum_cpus = {args.threads}\nnum_gpus = {gpus}\n"
        f"batch_size = {args.batch_size}\nmax_workers = 1\n"
    )


@dataclass(frozen=True)
class Rate:
    audio_per_second: float
    median_song_seconds: float


def timed_pass(songs: list[np.ndarray], separate_one: Callable[[torch.Tensor], object], device: str) -> Rate:
    """Throughput of ``separate_one`` over every song (decoded before timing), and its time per song."""
    seconds = []
    for mix in songs:
        start = time.perf_counter()
        separate_one(torch.from_numpy(mix))
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return Rate(sum(m.shape[1] for m in songs) / 44100 / sum(seconds), statistics.median(seconds))


def bare_references(work: Path, args: argparse.Namespace) -> dict[str, Rate]:
    """One pass of each reference over the standardized songs, with no Ray running."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = load_separator(MODEL, str(work / "models")).to(device)
    paths = sorted((work / "out" / "artifacts" / "standardize").glob("*/audio.flac"))
    songs = [sf.read(p, dtype="float32", always_2d=True)[0].T.copy() for p in paths]

    def stock(mix: torch.Tensor) -> object:
        with torch.no_grad():
            return apply_model(model, mix[None], split=True, overlap=0.25, shifts=0, device=device)

    stock(torch.zeros(2, 44100 * 8))  # warm-up, as the stage's setup does before its first song
    rates = {"stock": timed_pass(songs, stock, args.device)}
    if args.batch_segments > 1 or args.precision != "fp32":
        settings = SeparationSettings(
            segment=None, overlap=0.25, shifts=0, batch_segments=args.batch_segments, device=device,
            autocast_dtype=AUTOCAST[args.precision], seed=0,
        )
        rates["batched"] = timed_pass(songs, lambda mix: separate(model, [mix], settings), args.device)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (and CPUs of the worker)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=sorted(AUTOCAST), default="fp32")
    parser.add_argument("--batch-segments", type=int, default=1, help="segments per forward pass (GPU)")
    parser.add_argument("--batch-size", type=int, default=1, help="songs per pipeline batch")
    args = parser.parse_args()
    if args.device == "cpu" and (args.precision != "fp32" or args.batch_segments > 1):
        parser.error("--precision and --batch-segments apply on --device cuda only (the stage ignores them on CPU)")
    work = Path(tempfile.mkdtemp(prefix="bench-separate-"))
    manifest = write_songs(work / "songs", args.songs, args.seconds)

    # standardize first, so that nothing else competes with separate below
    standardize_only = job_text(work, manifest, args, False)
    run_job(parse_job(standardize_only), standardize_only)
    stop_ray()
    before = bare_references(work, args)
    text = job_text(work, manifest, args, True)
    started = time.perf_counter()
    result = run_job(parse_job(text), text)
    job_wall = time.perf_counter() - started
    stop_ray()
    after = bare_references(work, args)

    stage = {s["name"]: s for s in result.report["stages"]}["separate"]
    if stage["ok"] != args.songs:
        raise SystemExit(f"the pipeline separated {stage['ok']} of {args.songs} songs: {stage['reasons']}")
    pipeline = stage["audio_seconds"] / stage["wall_seconds"]
    song_seconds = statistics.median(Ledger(Storage(str(work / "out"))).read("separate")["seconds"].to_pylist())
    print(
        f"songs: {args.songs} x {args.seconds:g} s, model: {MODEL} (random, full size), device: {args.device}, "
        f"torch threads: {args.threads}, precision: {args.precision}, batch_segments: {args.batch_segments}"
    )
    references = {
        name: statistics.mean([before[name].audio_per_second, after[name].audio_per_second]) for name in before
    }
    for name, reference in references.items():
        median = statistics.mean([before[name].median_song_seconds, after[name].median_song_seconds])
        print(f"reference  {name:8s} bare, no Ray:   {reference:7.3f} audio-s/s, {median:6.2f} s per song "
              f"(passes: {before[name].audio_per_second:.3f} before, "
              f"{after[name].audio_per_second:.3f} after the pipeline)")
    print(f"pipeline   separate stage (ledger wall): {pipeline:7.3f} audio-s/s, "
          f"{song_seconds:6.2f} s per song (median)")
    for name, reference in references.items():
        print(f"ratio      pipeline / {name:8s}          {pipeline / reference:7.2f}")
    print(f"whole job incl. Ray start, worker start and model load: {stage['audio_seconds'] / job_wall:.3f} audio-s/s")


if __name__ == "__main__":
    main()
