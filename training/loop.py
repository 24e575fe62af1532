"""The one training loop every trainer runs: Ray Train workers, DDP, exact resume from checkpoints.

A trainer supplies a :class:`Task`: how to build the model and optimizer, and how to turn a step number
into this rank's share of the global batch and its loss. The loop owns everything else, the same way for
one CPU worker and for many GPU workers on many nodes (``ray.train.torch.TorchTrainer``):

- each step's global batch is fixed by the step number and the seed, and cut into ``workers x micro_batches``
  parts (:class:`BatchPart`): each worker runs its micro-batches one after the other, accumulating gradients,
  and DDP averages the workers' gradients. A task's loss for a part is that part's estimate of the whole
  batch's mean loss, so 2 workers equal 1 worker with 2 micro-batches equal 1 worker with the whole batch;
- ``precision = "bf16"`` runs the forward passes under ``torch.autocast`` (bfloat16 needs no loss scaling);
- rank 0 writes a checkpoint every ``checkpoint_every`` steps into ``checkpoint_dir/step-NNNNNNNN/`` (written
  beside it, then renamed): model, optimizer, scheduler, the loop's RNG and the step, which is also the data
  position. A run started again with the same ``checkpoint_dir`` continues from the latest one and gives the
  same loss curve as a run that was never stopped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

from ..pipeline.errors import UserError
from ..pipeline.fingerprint import digest
from ..pipeline.storage import Storage
from ..schemas.train_configs import LoopConfig

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "state.pt"
T = TypeVar("T")


@dataclass(frozen=True)
class BatchPart:
    """The share of a step's global batch that one forward pass takes: micro-batch ``micro`` of ``micros`` on
    worker ``rank`` of ``world``. Parts are interleaved slices: part ``index`` takes items ``index::count``."""

    rank: int = 0
    world: int = 1
    micro: int = 0
    micros: int = 1

    @property
    def index(self) -> int:
        return self.rank * self.micros + self.micro

    @property
    def count(self) -> int:
        return self.world * self.micros

    def take(self, items: Sequence[T]) -> list[T]:
        return list(items[self.index :: self.count])


class Task(Protocol):
    """What a trainer tells the loop; every method is called on every worker."""

    def build(self) -> nn.Module: ...

    def optimizer(self, model: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]: ...

    def loss(self, model: nn.Module, step: int, part: BatchPart,
             generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of ``part`` of global step ``step``'s batch, as an estimate of the whole batch's mean loss
        (its own mean, or, exactly, its sum over the whole batch's count times ``part.count``), and what to log."""
        ...


@dataclass(frozen=True)
class LoopSettings:
    """A job's ``[train.<kind>.loop]`` section, where its checkpoints go, and (for tests) where to stop."""

    loop: LoopConfig
    checkpoint_dir: Path
    #: stop after this many steps of this run (tests use it to kill a run mid-way); None: run to ``loop.steps``
    stop_after: int | None = None


@dataclass
class LoopResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one row per step of this run
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)  # the final model (CPU tensors)
    resumed_from: int = 0


def run_folder(storage: Storage, kind: str, version_id: str, recipe: dict[str, Any]) -> Path:
    """Where one training run keeps its checkpoints: the same recipe on the same version resumes there; any
    other setting (more steps, another seed, ...) starts a run of its own."""
    return Path(storage.full(f"train/{kind}/{version_id}-{digest(recipe, length=12)}"))


def latest_checkpoint(folder: Path) -> Path | None:
    done = sorted(p for p in folder.glob("step-*") if (p / CHECKPOINT_FILE).is_file())
    return done[-1] if done else None


def _save(folder: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
          scheduler: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator) -> None:
    target = folder / f"step-{step:08d}"
    tmp = folder / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "generator": generator.get_state()}, tmp / CHECKPOINT_FILE)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The data position of every trainer: a step's batch depends on the seed and the step alone, so a resumed run
    and any number of workers see the same batches."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def loss_curve(history: Sequence[dict[str, float]]) -> dict[str, Any]:
    """The metrics every trainer publishes about its run: first and last train loss, and the whole curve."""
    return {"train_loss_first": history[0]["loss"] if history else None,
            "train_loss_last": history[-1]["loss"] if history else None,
            "loss_curve": [round(row["loss"], 4) for row in history]}


class TrainingDiverged(UserError):
    """The loss stopped being a number: no later step can mean anything, so the run stops there, unpublished."""


def _diverged(step: int, loss: float, previous: float | None) -> TrainingDiverged:
    before = f" (step {step - 1}: {previous:.4g})" if previous is not None else ""
    return TrainingDiverged(f"training diverged: the loss is {loss} at step {step}{before}; lower the learning rate "
                            "or lengthen its warm-up, and train again")


def adamw_warmup_cosine(model: nn.Module, peak: float, warmup: int, steps: int
                        ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with a linear warm-up to ``peak`` over ``warmup`` steps, then a cosine decay to 0 at ``steps``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def unwrap(model: nn.Module) -> nn.Module:
    """The model itself, out of its DDP wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def run_steps(task: Task, settings: LoopSettings, rank: int = 0, world: int = 1,
              prepare: Callable[[nn.Module], nn.Module] = lambda m: m,
              report: Callable[[dict[str, float]], None] = lambda row: None) -> LoopResult:
    """The loop on one worker (``rank`` of ``world``); ``prepare`` wraps the model for DDP under Ray Train."""
    torch.manual_seed(settings.loop.seed)
    model = task.build()
    optimizer, scheduler = task.optimizer(model)
    generator = torch.Generator().manual_seed(settings.loop.seed)
    start, result = 0, LoopResult()
    checkpoint = latest_checkpoint(settings.checkpoint_dir)
    if checkpoint is not None:
        state = torch.load(checkpoint / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start = result.resumed_from = int(state["step"])
        log.info("resuming from %s (step %d)", checkpoint, start)
    model = prepare(model)
    model.train()
    device = next(model.parameters()).device
    ddp = model if isinstance(model, nn.parallel.DistributedDataParallel) else None
    last = settings.loop.steps if settings.stop_after is None else min(settings.loop.steps, start + settings.stop_after)
    for step in range(start, last):
        optimizer.zero_grad()
        total, logged = 0.0, dict[str, float]()
        for micro in range(settings.loop.micro_batches):
            part = BatchPart(rank, world, micro, settings.loop.micro_batches)
            accumulate = ddp is not None and micro < settings.loop.micro_batches - 1  # DDP syncs on the last only
            with (ddp.no_sync() if ddp is not None and accumulate else contextlib.nullcontext()), torch.autocast(
                    device.type, dtype=torch.bfloat16, enabled=settings.loop.precision == "bf16"):
                loss, metrics = task.loss(model, step, part, generator)
            (loss / settings.loop.micro_batches).backward()
            total += loss.item() / settings.loop.micro_batches
            for key, value in metrics.items():
                logged[key] = logged.get(key, 0.0) + value / settings.loop.micro_batches
        if not math.isfinite(total):
            raise _diverged(step + 1, total, result.history[-1]["loss"] if result.history else None)
        optimizer.step()
        scheduler.step()
        row = {"step": step + 1, "loss": total, **logged, "lr": scheduler.get_last_lr()[0]}
        result.history.append(row)
        report(row)
        if rank == 0 and ((step + 1) % settings.loop.checkpoint_every == 0 or step + 1 == settings.loop.steps):
            _save(settings.checkpoint_dir, step + 1, unwrap(model), optimizer, scheduler, generator)
    result.state_dict = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    return result


def train_on_ray(task: Task, settings: LoopSettings) -> LoopResult:
    """Run the loop on ``settings.loop.num_workers`` Ray Train workers (DDP); returns rank 0's result."""
    import ray.train
    import ray.train.torch

    cpus = settings.loop.cpus_per_worker or _cpus_per_worker(settings)

    def worker(config: dict[str, Any]) -> None:
        torch.set_num_threads(cpus)  # torch on a CPU worker uses the CPUs Ray gave it, no more
        context = ray.train.get_context()
        rank, world = context.get_world_rank(), context.get_world_size()
        result = run_steps(task, settings, rank, world, prepare=ray.train.torch.prepare_model)
        if rank == 0:
            torch.save({"history": result.history, "state_dict": result.state_dict,
                        "resumed_from": result.resumed_from}, settings.checkpoint_dir / "result.pt")
        ray.train.report({"steps": len(result.history)})

    settings.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    trainer = ray.train.torch.TorchTrainer(
        worker, scaling_config=ray.train.ScalingConfig(
            num_workers=settings.loop.num_workers, use_gpu=settings.loop.use_gpu, resources_per_worker={"CPU": cpus}),
        run_config=ray.train.RunConfig(storage_path=str(settings.checkpoint_dir.resolve() / "ray"), name="train"),
    )
    try:
        trainer.fit()
    except ray.train.TrainingFailedError as exc:  # a worker's UserError is the user's to read, not Ray's wrapping
        failures = getattr(exc, "worker_failures", {}) or {}
        raise next((e for e in failures.values() if isinstance(e, UserError)), exc) from exc
    saved = torch.load(settings.checkpoint_dir / "result.pt", map_location="cpu", weights_only=True)
    return LoopResult(history=saved["history"], state_dict=saved["state_dict"], resumed_from=saved["resumed_from"])


def _cpus_per_worker(settings: LoopSettings) -> int:
    """CPU threads per worker: with GPUs, 1 (the GPU does the work); on CPU, the cluster's CPUs shared among the
    workers, but no more than the largest node has (a worker runs on one node)."""
    import ray

    if settings.loop.use_gpu:
        return 1
    largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=1)
    return max(1, int(min(largest, ray.cluster_resources().get("CPU", 1) // settings.loop.num_workers)))
