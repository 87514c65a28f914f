"""Each optimizer's update for one param, written as Graph IR in the order torch.optim's single-tensor
code does it (so the same float32 roundings happen in the same places), beside its hyperparameters
with PyTorch's names and defaults.

An update reads the param `p`, its gradient `g`, its state (by torch's state names), the group's
learning rate `lr` (a graph input, so a schedule never recompiles the graph) and the step count
`step` after this step's increment (1 on the first step). Hyperparameters other than lr are
constants in the graph."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..emit import GraphWriter

NonNegative = Field(ge=0.0)


class Optimizer(BaseModel):
    """Hyperparameters of one optimizer; `state` names the tensors it keeps per param."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: ClassVar[str]
    lr: float = Field(1e-3, ge=0.0)
    maximize: bool = False

    def state_names(self) -> tuple[str, ...]:
        return ()

    def init_state(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """The state before the first step, as torch.optim makes it."""
        return {k: np.zeros_like(p) for k in self.state_names()}

    def update(self, w: GraphWriter, p: str, g: str, s: dict[str, str], lr: str, step: str) -> tuple[str, dict[str, str]]:
        raise NotImplementedError

    def grad(self, w: GraphWriter, p: str, g: str, weight_decay: float) -> str:
        g = w.neg(g) if self.maximize else g
        return w.add(g, w.mul(p, weight_decay)) if weight_decay else g


class SGD(Optimizer):
    name = "sgd"
    momentum: float = Field(0.0, ge=0.0)
    dampening: float = 0.0
    weight_decay: float = Field(0.0, ge=0.0)
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov(self):
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov needs a momentum and zero dampening (as torch.optim.SGD)")
        return self

    def state_names(self):
        return ("momentum_buffer",) if self.momentum else ()

    def update(self, w, p, g, s, lr, step):
        g = self.grad(w, p, g, self.weight_decay)
        out = {}
        if self.momentum:
            # torch starts the buffer as the first gradient itself
            later = w.add(w.mul(s["momentum_buffer"], self.momentum), w.mul(g, 1 - self.dampening))
            buf = out["momentum_buffer"] = w.where(w.equal(step, 1.0), g, later)
            g = w.add(g, w.mul(buf, self.momentum)) if self.nesterov else buf
        return w.sub(p, w.mul(g, lr)), out


class Adagrad(Optimizer):
    name = "adagrad"
    lr: float = Field(1e-2, ge=0.0)
    lr_decay: float = Field(0.0, ge=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    initial_accumulator_value: float = Field(0.0, ge=0.0)
    eps: float = Field(1e-10, ge=0.0)

    def state_names(self):
        return ("sum",)

    def init_state(self, p):
        return {"sum": np.full_like(p, self.initial_accumulator_value)}

    def update(self, w, p, g, s, lr, step):
        g = self.grad(w, p, g, self.weight_decay)
        clr = w.div(lr, w.add(w.mul(w.sub(step, 1.0), self.lr_decay), 1.0))
        total = w.add(s["sum"], w.mul(g, g))
        std = w.add(w.sqrt(total), self.eps)
        return w.sub(p, w.mul(w.div(g, std), clr)), {"sum": total}


class Adadelta(Optimizer):
    name = "adadelta"
    lr: float = Field(1.0, ge=0.0)
    rho: float = Field(0.9, ge=0.0, le=1.0)
    eps: float = Field(1e-6, ge=0.0)
    weight_decay: float = Field(0.0, ge=0.0)

    def state_names(self):
        return ("square_avg", "acc_delta")

    def update(self, w, p, g, s, lr, step):
        g = self.grad(w, p, g, self.weight_decay)
        sq = w.add(w.mul(s["square_avg"], self.rho), w.mul(w.mul(g, g), 1 - self.rho))
        std = w.sqrt(w.add(sq, self.eps))
        delta = w.mul(w.div(w.sqrt(w.add(s["acc_delta"], self.eps)), std), g)
        acc = w.add(w.mul(s["acc_delta"], self.rho), w.mul(w.mul(delta, delta), 1 - self.rho))
        return w.sub(p, w.mul(delta, lr)), {"square_avg": sq, "acc_delta": acc}


class RMSprop(Optimizer):
    name = "rmsprop"
    lr: float = Field(1e-2, ge=0.0)
    alpha: float = Field(0.99, ge=0.0)
    eps: float = Field(1e-8, ge=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.0, ge=0.0)
    centered: bool = False

    def state_names(self):
        return ("square_avg",) + (("momentum_buffer",) if self.momentum else ()) + (("grad_avg",) if self.centered else ())

    def update(self, w, p, g, s, lr, step):
        g = self.grad(w, p, g, self.weight_decay)
        out = {"square_avg": w.add(w.mul(s["square_avg"], self.alpha), w.mul(w.mul(g, g), 1 - self.alpha))}
        if self.centered:
            ga = out["grad_avg"] = w.lerp(s["grad_avg"], g, 1 - self.alpha)
            avg = w.sqrt(w.sub(out["square_avg"], w.mul(ga, ga)))
        else:
            avg = w.sqrt(out["square_avg"])
        avg = w.add(avg, self.eps)
        if self.momentum:
            buf = out["momentum_buffer"] = w.add(w.mul(s["momentum_buffer"], self.momentum), w.div(g, avg))
            return w.sub(p, w.mul(buf, lr)), out
        return w.sub(p, w.mul(w.div(g, avg), lr)), out


Betas = tuple[float, float]


def _betas(betas: Betas) -> Betas:
    if not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"betas must each be in [0, 1), got {list(betas)}")
    return betas


class Adam(Optimizer):
    name = "adam"
    betas: Betas = (0.9, 0.999)
    eps: float = Field(1e-8, ge=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    amsgrad: bool = False
    decoupled: ClassVar[bool] = False

    @model_validator(mode="after")
    def _check_betas(self):
        _betas(self.betas)
        return self

    def state_names(self):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def update(self, w, p, g, s, lr, step):
        beta1, beta2 = self.betas
        if self.decoupled:
            g = self.grad(w, p, g, 0.0)
            if self.weight_decay:
                p = w.mul(p, w.sub(1.0, w.mul(lr, self.weight_decay)))
        else:
            g = self.grad(w, p, g, self.weight_decay)
        out = {"exp_avg": w.lerp(s["exp_avg"], g, 1 - beta1),
               "exp_avg_sq": w.add(w.mul(s["exp_avg_sq"], beta2), w.mul(w.mul(g, g), 1 - beta2))}
        bias1 = w.sub(1.0, w.pow(beta1, step))
        bias2_sqrt = w.sqrt(w.sub(1.0, w.pow(beta2, step)))
        second = out["exp_avg_sq"]
        if self.amsgrad:
            second = out["max_exp_avg_sq"] = w.maximum(s["max_exp_avg_sq"], second)
        denom = w.add(w.div(w.sqrt(second), bias2_sqrt), self.eps)
        return w.sub(p, w.mul(w.div(out["exp_avg"], denom), w.div(lr, bias1))), out


class AdamW(Adam):
    name = "adamw"
    weight_decay: float = Field(1e-2, ge=0.0)
    decoupled: ClassVar[bool] = True


class Adamax(Optimizer):
    name = "adamax"
    lr: float = Field(2e-3, ge=0.0)
    betas: Betas = (0.9, 0.999)
    eps: float = Field(1e-8, ge=0.0)
    weight_decay: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _check_betas(self):
        _betas(self.betas)
        return self

    def state_names(self):
        return ("exp_avg", "exp_inf")

    def update(self, w, p, g, s, lr, step):
        beta1, beta2 = self.betas
        g = self.grad(w, p, g, self.weight_decay)
        avg = w.lerp(s["exp_avg"], g, 1 - beta1)
        inf = w.maximum(w.mul(s["exp_inf"], beta2), w.add(w.abs(g), self.eps))
        clr = w.div(lr, w.sub(1.0, w.pow(beta1, step)))
        return w.sub(p, w.mul(w.div(avg, inf), clr)), {"exp_avg": avg, "exp_inf": inf}


class Rprop(Optimizer):
    """The learning rate is only each step size's first value, as in torch.optim.Rprop."""

    name = "rprop"
    lr: float = Field(1e-2, ge=0.0)
    etas: Betas = (0.5, 1.2)
    step_sizes: Betas = (1e-6, 50.0)

    @model_validator(mode="after")
    def _check_etas(self):
        if not 0.0 < self.etas[0] < 1.0 < self.etas[1]:
            raise ValueError(f"etas must be (etaminus, etaplus) with 0 < etaminus < 1 < etaplus, got {list(self.etas)}")
        if not 0.0 <= self.step_sizes[0] <= self.step_sizes[1]:
            raise ValueError(f"step_sizes must be (min, max) with 0 <= min <= max, got {list(self.step_sizes)}")
        return self

    def state_names(self):
        return ("prev", "step_size")

    def init_state(self, p):
        return {"prev": np.zeros_like(p), "step_size": np.full_like(p, self.lr)}

    def update(self, w, p, g, s, lr, step):
        g = self.grad(w, p, g, 0.0)
        agree = w.mul(g, s["prev"])
        flipped = w.less(agree, 0.0)
        factor = w.where(w.greater(agree, 0.0), self.etas[1], w.where(flipped, self.etas[0], 1.0, w.types[g].dtype))
        size = w.op("clip", w.mul(s["step_size"], factor), min=self.step_sizes[0], max=self.step_sizes[1])
        g = w.where(flipped, 0.0, g)        # after a sign change, no step and no memory of it
        return w.sub(p, w.mul(w.sign(g), size)), {"prev": g, "step_size": size}


class ASGD(Optimizer):
    name = "asgd"
    lr: float = Field(1e-2, ge=0.0)
    lambd: float = Field(1e-4, ge=0.0)
    alpha: float = 0.75
    t0: float = 1e6
    weight_decay: float = Field(0.0, ge=0.0)

    def state_names(self):
        return ("eta", "mu", "ax")

    def init_state(self, p):
        return {"eta": np.asarray(self.lr, p.dtype), "mu": np.ones((), p.dtype), "ax": np.zeros_like(p)}

    def update(self, w, p, g, s, lr, step):
        g = self.grad(w, p, g, self.weight_decay)
        eta, mu = s["eta"], s["mu"]
        p = w.sub(w.mul(p, w.sub(1.0, w.mul(eta, self.lambd))), w.mul(g, eta))
        # torch copies the param while mu is 1 (before t0), and averages after
        ax = w.where(w.equal(mu, 1.0), p, w.add(s["ax"], w.mul(w.sub(p, s["ax"]), mu)))
        new_eta = w.div(lr, w.pow(w.add(w.mul(w.mul(lr, self.lambd), step), 1.0), self.alpha))
        new_mu = w.div(1.0, w.maximum(w.sub(step, self.t0), 1.0))
        return p, {"eta": new_eta, "mu": new_mu, "ax": ax}


GRAPH_OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Adagrad, Adadelta, RMSprop, Adam, AdamW, Adamax, Rprop, ASGD)}
