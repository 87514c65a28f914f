"""L-BFGS, host-driven, takes torch.optim.LBFGS's steps on a small problem, with and without its
strong Wolfe line search; its state survives a checkpoint's round trip."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from graphnet.training.lbfgs import LBFGS, LBFGSState, lbfgs_step


def _problem():
    rng = np.random.default_rng(1)
    a = torch.tensor(rng.standard_normal((6, 5)).astype(np.float32))
    b = torch.tensor(rng.standard_normal(6).astype(np.float32))
    x0 = rng.standard_normal(5).astype(np.float32)

    def loss(x):
        return (torch.log(torch.cosh(a @ x - b))).sum() + 0.1 * (x ** 4).sum()

    def closure(flat):
        x = torch.tensor(flat, requires_grad=True)
        value = loss(x)
        (g,) = torch.autograd.grad(value, [x])
        return float(value.detach()), g.numpy()
    return loss, closure, x0


# few iterations a step, so that no step starts at the optimum, where rounding decides when to stop
@pytest.mark.parametrize("options", [{"max_iter": 3}, {"line_search_fn": "strong_wolfe", "history_size": 3, "max_iter": 3},
                                     {"lr": 0.5, "max_iter": 2}], ids=["plain", "strong_wolfe", "lr-max_iter"])
def test_lbfgs_follows_torch(options):
    loss, closure, x0 = _problem()
    p = torch.nn.Parameter(torch.tensor(x0.copy()))
    opt = torch.optim.LBFGS([p], **options)

    def torch_closure():
        opt.zero_grad()
        value = loss(p)
        value.backward()
        return value
    ours, state, x = LBFGS(**options), LBFGSState(), x0
    for step in range(5):
        opt.step(torch_closure)
        x, _ = lbfgs_step(ours, state, x, closure)
        if step == 2:    # the state as a checkpoint stores it
            state = LBFGSState.from_arrays(state.arrays(), x.size, ours.history_size, AssertionError)
        theirs = p.detach().numpy()
        assert np.linalg.norm(x - theirs) <= 1e-5 * np.linalg.norm(theirs), step
    assert state.func_evals == opt.state[p]["func_evals"]
    assert np.linalg.norm(x - x0) > 0.1
