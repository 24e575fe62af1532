"""The shared training loop: a run killed after a checkpoint resumes on exactly the same loss curve."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
from torch import nn

from songcorpus.schemas.train_configs import LoopConfig
from songcorpus.training.loop import (
    BatchPart,
    LoopSettings,
    TrainingDiverged,
    latest_checkpoint,
    run_steps,
    train_on_ray,
)


@dataclass
class Regression:
    """A tiny task whose batches come from the step number (the data position) and whose noise comes from the
    loop's generator: both must be restored for the curve to continue unchanged. (Without ``loop_noise`` the
    noise comes from the step too, so that the whole batch is the same however it is cut into parts.)"""

    loop_noise: bool = True

    def build(self) -> nn.Module:
        return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

    def optimizer(self, model: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)

    def loss(self, model: nn.Module, step: int, part: BatchPart,
             generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        data = torch.Generator().manual_seed(step)
        x = torch.randn(16, 4, generator=data)
        y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(16, 1, generator=generator if self.loop_noise else data)
        return nn.functional.mse_loss(model(x[part.index :: part.count]), y[part.index :: part.count]), {}


def test_a_killed_run_resumes_on_the_same_loss_curve(tmp_path: Path) -> None:
    whole = run_steps(Regression(), LoopSettings(LoopConfig(steps=12, checkpoint_every=3), tmp_path / "a"))
    killed = LoopSettings(LoopConfig(steps=12, checkpoint_every=3), tmp_path / "b", stop_after=7)
    first = run_steps(Regression(), killed)
    assert len(first.history) == 7 and latest_checkpoint(tmp_path / "b") == tmp_path / "b" / "step-00000006"
    second = run_steps(Regression(), replace(killed, stop_after=None))
    assert second.resumed_from == 6
    curve = [row["loss"] for row in whole.history]
    assert [row["loss"] for row in first.history] == curve[:7]  # the 7th step is redone after the kill
    assert [row["loss"] for row in second.history] == curve[6:]
    assert all(torch.equal(whole.state_dict[k], second.state_dict[k]) for k in whole.state_dict)
    assert curve[-1] < curve[0] / 4


def test_two_micro_batches_give_the_step_of_the_whole_batch(tmp_path: Path) -> None:
    whole = run_steps(Regression(loop_noise=False), LoopSettings(LoopConfig(steps=5), tmp_path / "a"))
    settings = LoopSettings(LoopConfig(steps=5, micro_batches=2), tmp_path / "b")
    accumulated = run_steps(Regression(loop_noise=False), settings)
    for key, value in whole.state_dict.items():
        torch.testing.assert_close(accumulated.state_dict[key], value, rtol=1e-5, atol=1e-6)
    assert [row["loss"] for row in accumulated.history] == pytest.approx([row["loss"] for row in whole.history])


@dataclass
class Diverging(Regression):
    """The regression, whose loss stops being a number at step 4."""

    def loss(self, model: nn.Module, step: int, part: BatchPart,
             generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        loss, metrics = super().loss(model, step, part, generator)
        return (loss * float("nan") if step == 3 else loss), metrics


def test_a_loss_that_stops_being_a_number_stops_the_run_before_the_weights_take_it(tmp_path: Path,
                                                                                  ray_cluster: object) -> None:
    settings = LoopSettings(LoopConfig(steps=8, checkpoint_every=2), tmp_path / "here")
    with pytest.raises(TrainingDiverged, match=r"the loss is nan at step 4 \(step 3: [0-9.]+\); lower the learning"):
        run_steps(Diverging(), settings)
    assert latest_checkpoint(tmp_path / "here") == tmp_path / "here" / "step-00000002"
    # on Ray Train workers too: the worker's error, not Ray's wrapping of it, so the CLI prints it as a user error
    with pytest.raises(TrainingDiverged, match="the loss is nan at step 4"):
        train_on_ray(Diverging(), replace(settings, checkpoint_dir=tmp_path / "ray"))
