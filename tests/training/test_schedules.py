"""The schedules equal torch.optim.lr_scheduler's learning rates, step for step, for two groups."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from graphnet.training.schedules import SCHEDULES

CASES = [
    ("step", {"step_size": 3, "gamma": 0.5}, lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    ("exponential", {"gamma": 0.9}, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)),
    ("cosine", {"T_max": 10, "eta_min": 0.001}, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.001)),
    ("linear_warmup", {"start_factor": 0.1, "total_iters": 4},
     lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=4)),
    ("linear_warmup", {"start_factor": 0.5, "end_factor": 0.2, "total_iters": 6},
     lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.5, end_factor=0.2, total_iters=6)),
]


@pytest.mark.parametrize("name, options, make", CASES, ids=[c[0] for c in CASES])
def test_schedule_equals_torch(name, options, make):
    bases = [0.1, 0.03]
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in bases]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, bases)])
    scheduler = make(opt)
    ours = SCHEDULES[name](**options)
    for t in range(25):      # past T_max and total_iters
        for group, base in zip(opt.param_groups, bases):
            assert ours.lr(base, t) == pytest.approx(group["lr"], rel=1e-12, abs=1e-15), (t, base)
        opt.step()
        scheduler.step()
