"""Optimizer updates as Graph IR: (params, grads, state, learning rates) -> (new params, new state),
one graph of primitive ops for every trainable param, which the NumPy back end runs with its plan
and the ONNX exporter lowers, alone or appended to a gradient graph as one training step.

Names in the update graph, chosen so that none can be a spec's input or param name:
- inputs: each param by its name, its gradient `grad:NAME`, its state `state:NAME:KEY` (KEY as
  torch.optim's state_dict names it: exp_avg, momentum_buffer...), the shared step count
  `state:step` (0 before the first step) and one learning rate per param group: `lr`, `lr:1`, ...
- outputs: `new:` before each of those it updates (`new:NAME`, `new:state:NAME:KEY`, `new:state:step`).

Param groups are torch's: group 0 holds every param no pattern selects; group i takes the params
whose name matches one of its glob patterns (first group wins), with its own hyperparameters
(typically `weight_decay: 0` for norms and biases). L-BFGS, which re-evaluates its closure within a
step, is not a graph: graphnet/training/lbfgs.py drives it from the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import numpy as np

from ...graph import Graph
from ...types import TensorType
from ..emit import GraphWriter
from .rules import GRAPH_OPTIMIZERS, Optimizer

STEP = "state:step"


def grad_name(param: str) -> str:
    return f"grad:{param}"


def state_name(param: str, key: str) -> str:
    return f"state:{param}:{key}"


def lr_name(group: int) -> str:
    return "lr" if group == 0 else f"lr:{group}"


def new(name: str) -> str:
    return f"new:{name}"


@dataclass(frozen=True)
class Groups:
    """The optimizer of group 0 and, per further group, its glob patterns and optimizer."""

    default: Optimizer
    selected: tuple[tuple[tuple[str, ...], Optimizer], ...] = ()

    def index_of(self, param: str) -> int:
        for i, (patterns, _) in enumerate(self.selected, start=1):
            if any(fnmatchcase(param, p) for p in patterns):
                return i
        return 0

    def optimizer(self, index: int) -> Optimizer:
        return self.default if index == 0 else self.selected[index - 1][1]

    def __len__(self) -> int:
        return 1 + len(self.selected)


@dataclass(frozen=True)
class Update:
    """An update graph and how its names map onto params, gradients, state and learning rates."""

    graph: Graph
    params: tuple[str, ...]                       # the params it updates, in order
    group: dict[str, int] = field(default_factory=dict)
    state: dict[str, tuple[str, ...]] = field(default_factory=dict)   # param -> its state keys

    def state_inputs(self) -> list[str]:
        return [STEP] + [state_name(p, k) for p in self.params for k in self.state[p]]


def update_graph(groups: Groups, params: dict[str, TensorType], clip_norm: float | None = None,
                 name: str = "update") -> Update:
    """The update of `params` (name -> type, all of one float dtype) by their groups' optimizers,
    with the gradients first scaled to a global L2 norm of at most `clip_norm` when given, as
    torch.nn.utils.clip_grad_norm_ does."""
    dtypes = {t.dtype for t in params.values()}
    if len(dtypes) > 1:
        raise ValueError(f"the trained params mix dtypes ({', '.join(sorted(dtypes))}); one float dtype is needed")
    dtype = dtypes.pop() if dtypes else "float32"
    w = GraphWriter(name, f"<optimizer {groups.default.name}>")
    scalar = TensorType(dtype, ())
    step = w.input(STEP, scalar)
    lrs = [w.input(lr_name(i), scalar) for i in range(len(groups))]
    grads = {}
    for p, t in params.items():
        w.input(p, t)
        grads[p] = w.input(grad_name(p), t)
    outputs = {}
    w.scope("update:step")
    step_now = outputs[new(STEP)] = w.add(step, 1.0)
    if clip_norm is not None:
        grads = clip_by_global_norm(w, grads, clip_norm)
    group, state = {}, {}
    for p, t in params.items():
        index = group[p] = groups.index_of(p)
        opt = groups.optimizer(index)
        keys = state[p] = opt.state_names()
        shapes = opt.init_state(np.zeros([int(d.value) for d in t.shape], dtype))
        s = {k: w.input(state_name(p, k), TensorType(dtype, tuple(t.shape) if shapes[k].ndim else ()))
             for k in keys}
        w.scope(f"update:{p}")
        new_p, new_s = opt.update(w, p, grads[p], s, lrs[index], step_now)
        outputs[new(p)] = new_p
        outputs.update({new(state_name(p, k)): new_s[k] for k in keys})
    return Update(w.graph(outputs), tuple(params), group, state)


def clip_by_global_norm(w: GraphWriter, grads: dict[str, str], max_norm: float) -> dict[str, str]:
    """Gradients scaled by min(1, max_norm / (norm + 1e-6)), the norm over all of them together."""
    w.scope("update:clip_grad_norm")
    squares = [w.op("reduce_sum", w.mul(g, g), keepdims=False) for g in grads.values()]
    total = squares[0]
    for s in squares[1:]:
        total = w.add(total, s)
    coef = w.op("clip", w.div(max_norm, w.add(w.sqrt(total), 1e-6)), max=1.0)
    return {p: w.mul(g, coef) for p, g in grads.items()}


def init_state(update: Update, groups: Groups, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every state input of `update` before the first step, named as the update graph names them."""
    out = {STEP: np.zeros((), update.graph.inputs[STEP].dtype)}
    for p in update.params:
        made = groups.optimizer(update.group[p]).init_state(np.asarray(weights[p]))
        out.update({state_name(p, k): made[k] for k in update.state[p]})
    return out


__all__ = ["GRAPH_OPTIMIZERS", "Groups", "Optimizer", "STEP", "Update", "clip_by_global_norm", "grad_name",
           "init_state", "lr_name", "new", "state_name", "update_graph"]
