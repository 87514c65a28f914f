"""Learning-rate schedules, as torch.optim.lr_scheduler's closed forms: each a pure function of how
many times it has stepped (`t`) and a group's base learning rate, so a resumed run needs only `t`.
The learning rate is an input of the update graph; a schedule never changes the graph.

`interval` says what `t` counts: epochs (torch's usual `scheduler.step()` after each epoch) or
optimizer steps."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    interval: Literal["epoch", "step"] = "epoch"

    def lr(self, base: float, t: int) -> float:
        raise NotImplementedError


class Constant(Schedule):
    name: Literal["constant"] = "constant"

    def lr(self, base, t):
        return base


class StepLR(Schedule):
    """lr * gamma ** (t // step_size): torch.optim.lr_scheduler.StepLR."""

    name: Literal["step"] = "step"
    step_size: int = Field(ge=1)
    gamma: float = Field(0.1, gt=0.0)

    def lr(self, base, t):
        return base * self.gamma ** (t // self.step_size)


class ExponentialLR(Schedule):
    """lr * gamma ** t: torch.optim.lr_scheduler.ExponentialLR."""

    name: Literal["exponential"] = "exponential"
    gamma: float = Field(gt=0.0)

    def lr(self, base, t):
        return base * self.gamma ** t


class CosineAnnealingLR(Schedule):
    """eta_min + (lr - eta_min) (1 + cos(pi t / T_max)) / 2: torch.optim.lr_scheduler.CosineAnnealingLR."""

    name: Literal["cosine"] = "cosine"
    T_max: int = Field(ge=1)
    eta_min: float = Field(0.0, ge=0.0)

    def lr(self, base, t):
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class LinearLR(Schedule):
    """Linear warmup: lr times a factor going from start_factor to end_factor over total_iters,
    then staying: torch.optim.lr_scheduler.LinearLR."""

    name: Literal["linear_warmup"] = "linear_warmup"
    start_factor: float = Field(1.0 / 3, gt=0.0, le=1.0)
    end_factor: float = Field(1.0, ge=0.0, le=1.0)
    total_iters: int = Field(5, ge=1)

    def lr(self, base, t):
        done = min(t, self.total_iters) / self.total_iters
        return base * (self.start_factor + (self.end_factor - self.start_factor) * done)


SCHEDULES: dict[str, type[Schedule]] = {
    cls.model_fields["name"].default: cls for cls in (Constant, StepLR, ExponentialLR, CosineAnnealingLR, LinearLR)}
