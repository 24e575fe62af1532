"""DSLM training throughput fed by the project's reader against the same model fed from tensors in memory.

Both sides train the same DSLM (``--size``, random start, the same seed) for the same steps on the same global
batches, on the same device and precision:

  - reference: every step's batch built beforehand and kept as tensors on the device; the loop only runs the
    forward, backward and optimizer step (timed before and after the trainer, and averaged);
  - trainer: ``DslmTask`` as ``songcorpus train`` runs it: the clips read from a dataset version with
    ``open_dataset`` (timed, and counted against the trainer), each step's batch drawn, masked and padded from
    them, then the same forward, backward and step.

The version holds ``--clips`` clips of ``--seconds`` seconds of random tokens (50 Hz), written in the version
format; the reader's cost does not depend on what the tokens say. Prints predicted tokens per second for each
and the ratio trainer / reference (target >= 0.95: the loader must not be the bottleneck).

    .venv/bin/python bench/bench_train.py [--steps 20] [--size tiny] [--threads 2]
    .venv/bin/python bench/bench_train.py --device cuda --precision bf16 --size small --batch-size 16
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from songcorpus.models.dslm import Dslm, config_for, dslm_loss
from songcorpus.models.dslm.lyrics import VOCABULARY
from songcorpus.pipeline.dataset_reader import resolve_version
from songcorpus.schemas.train_configs import DslmTrainConfig, LoopConfig
from songcorpus.training.dslm import DslmTask
from songcorpus.training.dslm_data import load_examples
from tests.training.token_version import CODES, build_token_version


def train(model: Dslm, batches: list, device: torch.device, precision: str) -> int:
    """Run one optimizer step per batch (batches made on demand when given as callables); predicted tokens."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    tokens = 0
    for item in batches:
        batch = (item() if callable(item) else item).to(device)
        counts = batch.counts()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(batch.lyrics, batch.lyrics_padding, batch.vocals, batch.accompaniment, batch.masks,
                        batch.padding)
            loss = dslm_loss(out, batch.targets, counts)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        tokens += sum(counts.values())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", choices=["tiny", "small", "paper"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per clip (50 tokens per second)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    build_token_version(root, train_clips=args.clips, test_clips=1, steps=round(args.seconds * 50))
    config = config_for(args.size, codes=CODES, lyrics_vocab=len(VOCABULARY))
    train_config = DslmTrainConfig(size=args.size, batch_size=args.batch_size, loop=LoopConfig(steps=args.steps))

    def fresh() -> Dslm:
        torch.manual_seed(0)
        return Dslm(config).to(device).train()

    version_dir, _ = resolve_version("latest", str(root))
    warm = DslmTask(load_examples(version_dir, "train", config), config, train_config)
    train(fresh(), [warm.global_batch(s) for s in range(2)], device, args.precision)  # warm-up (kernels, caches)

    prepared = [warm.global_batch(step).to(device) for step in range(args.steps)]

    def reference_rate() -> float:
        started = time.perf_counter()
        tokens = train(fresh(), prepared, device, args.precision)
        return tokens / (time.perf_counter() - started)

    before = reference_rate()
    started = time.perf_counter()
    task = DslmTask(load_examples(version_dir, "train", config), config, train_config)
    loaded = time.perf_counter() - started
    model = fresh()
    trained = train(model, [lambda s=step: task.global_batch(s) for step in range(args.steps)], device,
                    args.precision)
    pipeline = trained / (time.perf_counter() - started)
    after = reference_rate()
    reference = (before + after) / 2
    print(f"DSLM {args.size} on {args.device} ({args.precision}), {args.threads} threads: {args.steps} steps x "
          f"{args.batch_size} clips of {args.seconds:.0f} s from {args.clips} clips")
    print(f"reference  batches as tensors in memory:        {reference:10.0f} tokens/s (passes: {before:.0f} "
          f"before, {after:.0f} after the trainer)")
    print(f"trainer    open_dataset ({loaded:.2f} s) + batches:  {pipeline:10.0f} tokens/s")
    print(f"ratio      trainer / reference                   {pipeline / reference:10.2f}")


if __name__ == "__main__":
    main()
