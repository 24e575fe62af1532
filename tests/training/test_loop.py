"""The shared training loop: a run killed after a checkpoint resumes on exactly the same loss curve."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from songcorpus.training.loop import LoopSettings, latest_checkpoint, run_steps


class Regression:
    """A tiny task whose batches come from the step number (the data position) and whose noise comes from the
    loop's generator: both must be restored for the curve to continue unchanged."""

    def build(self) -> nn.Module:
        return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

    def optimizer(self, model: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)

    def loss(self, model: nn.Module, step: int, rank: int, world: int,
             generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        data = torch.Generator().manual_seed(step)
        x = torch.randn(16, 4, generator=data)
        y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(16, 1, generator=generator)
        return nn.functional.mse_loss(model(x[rank::world]), y[rank::world]), {}


def test_a_killed_run_resumes_on_the_same_loss_curve(tmp_path: Path) -> None:
    whole = run_steps(Regression(), LoopSettings(steps=12, checkpoint_dir=tmp_path / "a", checkpoint_every=3))
    killed = LoopSettings(steps=12, checkpoint_dir=tmp_path / "b", checkpoint_every=3, stop_after=7)
    first = run_steps(Regression(), killed)
    assert len(first.history) == 7 and latest_checkpoint(tmp_path / "b") == tmp_path / "b" / "step-00000006"
    second = run_steps(Regression(), replace(killed, stop_after=None))
    assert second.resumed_from == 6
    curve = [row["loss"] for row in whole.history]
    assert [row["loss"] for row in first.history] == curve[:7]  # the 7th step is redone after the kill
    assert [row["loss"] for row in second.history] == curve[6:]
    assert all(torch.equal(whole.state_dict[k], second.state_dict[k]) for k in whole.state_dict)
    assert curve[-1] < curve[0] / 4
