"""Throughput of the tokenize stage in the pipeline against the bare encoder + quantizer on the same clips.

Both sides use the same tokenizer (random weights of the chosen size: compute, not quality, is measured), the same
clips (the kept clips of the demo job's synthetic songs, each clip's mixture, vocals and accompaniment), the same
device, precision, batch size and torch threads.

  - reference: the clips already decoded, cut and resampled to 24 kHz in memory, sorted by length and fed to
    ``Tokenizer`` ``--batch-clips`` at a time (no Ray, no files), timed twice, before and after the pipeline;
  - pipeline: the tokenize stage on the embedded Ray with one worker, every stage before it already done, timed
    by its own ledger (first item started to last item finished): it also decodes, resamples and writes.

Prints clip-seconds per second for each (one clip-second = its three streams) and the ratio (target >= 0.9).

    .venv/bin/python bench/bench_tokenize.py [--songs 6] [--size tiny] [--threads 2]
    .venv/bin/python bench/bench_tokenize.py --device cuda --precision bf16 --size small --batch-clips 32
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchaudio.functional as taf

from songcorpus.pipeline.jobfile import parse_job
from songcorpus.pipeline.ledger import Ledger
from songcorpus.pipeline.runner import run_job
from songcorpus.pipeline.runtime import stop_ray
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.song_records import FilteredSong, KeptClips
from songcorpus.stages.audio_io import read_flac
from songcorpus.stages.tokenize import STREAMS, load_tokenizer
from songcorpus.training.smoke_tokenizer import publish_smoke_tokenizer

REPO = Path(__file__).parents[1]

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def job_text(args: argparse.Namespace, tokenizer: Path | None) -> str:
    text = (REPO / "jobs" / "demo.toml").read_text().replace("songs = 12", f"songs = {args.songs}")
    head, _, _ = text.partition("[stages.tokenize]")
    if tokenizer is None:
        return head  # everything up to filter
    gpus = 1 if args.device == "cuda" else 0
    return head + (f'[stages.tokenize]\ntokenizer = "{tokenizer}"\ndevice = "{args.device}"\n'
                   f'precision = "{args.precision}"\nbatch_clips = {args.batch_clips}\ncpu_threads = {args.threads}\n'
                   f"[stages.tokenize.resources]\nnum_cpus = {args.threads}\nnum_gpus = {gpus}\nmax_workers = 1\n"
                   f"batch_size = {args.batch_songs}\n[stages.shard]\n")


def load_clips(root: Path, rate: int) -> tuple[list[torch.Tensor], float]:
    """Every kept clip's three streams at ``rate`` (mono), and the clips' total seconds."""
    storage = Storage(str(root))
    clips, seconds = [], 0.0
    for record in Ledger(storage).latest_records("filter")[1]:
        song = FilteredSong.model_validate(record)
        kept = KeptClips.model_validate_json(storage.read_bytes(song.kept_clips)).clips
        seconds += sum(c.duration for c in kept)
        for field in STREAMS.values():
            audio, song_rate = read_flac(storage.read_bytes(getattr(song, field)))
            mono = torch.from_numpy(audio.mean(axis=0))
            clips += [taf.resample(mono[round(c.start * song_rate) : round(c.end * song_rate)], song_rate, rate)
                      for c in kept]
    return clips, seconds


def bare_rate(folder: Path, clips: list[torch.Tensor], seconds: float, args: argparse.Namespace) -> float:
    """Clip-seconds per second of the tokenizer alone, batched as the stage batches."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tokenizer = load_tokenizer(folder).to(device)
    ordered = sorted(clips, key=lambda c: -c.numel())
    autocast = AUTOCAST.get(args.precision)

    def one_pass() -> None:
        for start in range(0, len(ordered), args.batch_clips):
            chunk = ordered[start : start + args.batch_clips]
            lengths = torch.tensor([c.numel() for c in chunk])
            batch = torch.zeros(len(chunk), int(lengths.max()))
            for row, clip in enumerate(chunk):
                batch[row, : clip.numel()] = clip
            with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                tokens, _ = tokenizer(batch.to(device), lengths.to(device))
            tokens.cpu()

    one_pass()  # warm-up
    started = time.perf_counter()
    one_pass()
    return seconds / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=6)
    parser.add_argument("--size", choices=["tiny", "small", "paper"], default="tiny")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (and CPUs of the worker)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--batch-clips", type=int, default=16)
    parser.add_argument("--batch-songs", type=int, default=8, help="songs per worker batch (clips batch together)")
    args = parser.parse_args()
    if args.device == "cpu" and args.precision != "fp32":
        parser.error("--precision applies on --device cuda only")
    work = Path(tempfile.mkdtemp(prefix="bench-tokenize-"))
    root = work / "out"
    upstream = job_text(args, None)
    run_job(parse_job(upstream, root=str(root), base=REPO), upstream)  # everything but tokenize, done first
    stop_ray()
    artifact = publish_smoke_tokenizer(Storage(str(root)), size=args.size, codes=1024)
    folder = root / "models" / "tokenizer" / artifact.id
    clips, seconds = load_clips(root, load_tokenizer(folder).bestrq.config.sample_rate)
    before = bare_rate(folder, clips, seconds, args)
    text = job_text(args, folder)
    result = run_job(parse_job(text, root=str(root), base=REPO), text)
    stop_ray()
    after = bare_rate(folder, clips, seconds, args)
    stage = {s["name"]: s for s in result.report["stages"]}["tokenize"]
    pipeline = stage["audio_seconds"] / stage["wall_seconds"]
    reference = statistics.mean([before, after])
    print(f"{len(clips) // 3} clips ({seconds:.1f} s, x3 streams) of {args.songs} songs; tokenizer {args.size}; "
          f"device {args.device}, precision {args.precision}, batch_clips {args.batch_clips}, batch_songs "
          f"{args.batch_songs}, threads {args.threads}")
    print(f"reference  bare tokenizer, no Ray:  {reference:8.2f} clip-s/s (passes: {before:.2f} before, "
          f"{after:.2f} after the pipeline)")
    print(f"pipeline   tokenize stage (ledger):  {pipeline:8.2f} clip-s/s")
    print(f"ratio      pipeline / reference      {pipeline / reference:8.2f}")


if __name__ == "__main__":
    main()
