"""Train mode as a Graph IR -> Graph IR transform: batch_norm on batch statistics, dropout active.

The contract, for every caller (Network's `mode=`, the gradient transform's `vjp(mode="train")`):

    graph, extras = apply_mode(graph, mode, seed)

- The given graph is never changed; a new one is returned. `mode="eval"` returns the graph as it
  is but for its `metadata` (the inference semantics every op has by default); `mode="train"`:
- each `batch_norm` becomes primitives computing PyTorch's train-mode forward, (x - mean_B) *
  (scale / sqrt(var_B + eps)) + bias, with the biased mean and variance of the batch over every axis
  but 1. So the gradient transform differentiates through the statistics, as autograd does.
  When its mean and var inputs are params (the running statistics), the graph gains an output
  named after each param holding its updated value, PyTorch's update: new = (1 - momentum) * old
  + momentum * batch, the variance unbiased (divided by n - 1, n = the values per channel), with
  PyTorch's momentum 1 - the op's `momentum` (ONNX's: the share kept; 0.9 by default).
  `momentum=None` is PyTorch's cumulative average, momentum 1 / num_batches_tracked. Each such
  batch norm also reads a new int64 scalar param `<prefix>.num_batches_tracked` (PyTorch's
  buffer, beside `<prefix>.running_mean`; zeros when not given) and outputs it plus one.
  `extras.state` maps each updated param to the output holding its new value (the same name), so
  a caller carries the state on with `weights.update({p: outputs[o] for p, o in extras.state.items()})`;
  `extras.complete(weights)` adds the new params' initial values to weights that lack them.
  The state outputs are bookkeeping, not results: a gradient takes no cotangent from them.
- each `dropout` with a ratio p > 0 becomes where(keep, x / (1 - p), 0), reading its keep mask as a
  new bool graph input `<node>#mask` of x's shape. The host draws the masks
  (`extras.dropout_masks(dims, step)`, from `seed`, the step and the node's index, with NumPy's
  generator) and feeds them like any input. Why the host and not the graph: ONNX's Dropout draws
  from onnxruntime's own generator, which NumPy cannot reproduce (nor one execution provider
  another), and a counter-based generator written from integer primitives would need bit
  operations the op set lacks; a fed mask is identical on every back end by construction, and its
  gradient is the same where, with no generator to replay.
- `graph.metadata` records the mode, the seed and the names above (`graphnet.mode`,
  `graphnet.seed`, `graphnet.state`, `graphnet.dropout_masks`, JSON text), which the ONNX export
  writes into the model's metadata_props, so an exported train-mode model says what it needs fed.

Ops inside a scan's body keep their inference semantics (the transform does not enter bodies).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from ..dims import Dim, dim_prod
from ..graph import Graph, Node, Param, node_error
from ..init import Zeros
from ..ops import OPS, TensorType

MODES = ("eval", "train")
PER_OP = "per_op"            # apply_mode's momentum: each batch_norm's own attribute
BATCH_COUNTER = "num_batches_tracked"


@dataclass(frozen=True)
class Dropout:
    """One active dropout: its mask input, the drop ratio and the mask's shape (maybe free dims)."""

    mask: str
    ratio: float
    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class ModeExtras:
    """What a mode adds to the graph beyond the user's inputs, params and outputs."""

    mode: str
    seed: int
    state: dict[str, str] = field(default_factory=dict)        # param -> output with its new value
    new_params: dict[str, Param] = field(default_factory=dict)  # num_batches_tracked counters
    dropouts: tuple[Dropout, ...] = ()

    def complete(self, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The weights with every new param that they lack at its initial value (a zero count)."""
        out = dict(weights)
        for name, p in self.new_params.items():
            if name not in out:
                out[name] = np.zeros([d.value for d in p.type.shape], dtype=p.type.dtype)
        return out

    def dropout_masks(self, dims: dict[str, int], step: int = 0) -> dict[str, np.ndarray]:
        """The keep masks of one forward pass: each entry kept with probability 1 - ratio, drawn from
        (seed, step, the dropout's index), so every step and every dropout has its own stream."""
        masks = {}
        for index, d in enumerate(self.dropouts):
            shape = [s.subs(dims).value for s in d.shape]
            rng = np.random.default_rng([self.seed, step, index])
            masks[d.mask] = rng.random(shape) >= d.ratio
        return masks


def apply_mode(graph: Graph, mode: str, seed: int = 0, momentum: float | None | str = PER_OP,
               dropout: bool = True) -> tuple[Graph, ModeExtras]:
    """The graph in `mode` ('eval' or 'train') and what the mode adds (see the module docstring).
    `momentum` is PyTorch's for every batch norm, None its cumulative average; by default each
    batch norm's own, 1 - its ONNX `momentum` attribute (PyTorch's 0.1 unless the spec says).
    `dropout=False` keeps dropout the identity in train mode, as torch's `module.train()` with every
    Dropout put back in eval does (fine-tuning without dropout; comparing gradients exactly)."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    if mode == "eval":
        return dataclasses.replace(graph, metadata={**graph.metadata, "graphnet.mode": "eval"}), ModeExtras(mode, seed)
    return _Train(graph, seed, momentum, dropout).run()


class _Train:
    """One train-mode rewrite: the nodes, types, inputs, params and outputs it builds."""

    def __init__(self, graph: Graph, seed: int, momentum: float | None | str, dropout: bool = True):
        self.graph, self.seed, self.momentum, self.with_dropout = graph, seed, momentum, dropout
        self.nodes: list[Node] = []
        self.types = dict(graph.types)
        self.inputs = dict(graph.inputs)
        self.input_locs = dict(graph.input_locs)
        self.params = dict(graph.params)
        self.outputs = dict(graph.outputs)
        self.state: dict[str, str] = {}
        self.new_params: dict[str, Param] = {}
        self.dropouts: list[Dropout] = []

    def run(self) -> tuple[Graph, ModeExtras]:
        for node in self.graph.nodes:
            if node.op.name == "batch_norm":
                self._batch_norm(node)
            elif node.op.name == "dropout" and node.op.ratio > 0 and self.with_dropout:
                self._dropout(node)
            else:
                self.nodes.append(node)
        extras = ModeExtras("train", self.seed, self.state, self.new_params, tuple(self.dropouts))
        metadata = {**self.graph.metadata, "graphnet.mode": "train", "graphnet.seed": str(self.seed),
                    "graphnet.state": json.dumps(self.state),
                    "graphnet.dropout_masks": json.dumps({d.mask: d.ratio for d in self.dropouts})}
        graph = dataclasses.replace(self.graph, nodes=self.nodes, types=self.types, inputs=self.inputs,
                                    input_locs=self.input_locs, params=self.params, outputs=self.outputs,
                                    metadata=metadata)
        return graph, extras

    def emit(self, node: Node, suffix: str, op: str, inputs: tuple[str | None, ...], out: str | None = None,
             **attrs) -> str:
        """Add one primitive node made for `node` (named `<node>#<suffix>`, located where it is);
        returns its output tensor, typed by the op's own rule."""
        made = OPS[op](**attrs)
        name = f"{node.name}#{suffix}"
        out = out or name
        args = [self.types[t] for t in inputs]
        self.types[out] = made.infer(*args)
        self.nodes.append(Node(name, made, inputs, (out,), node.trace))
        return out

    def _batch_norm(self, node: Node) -> None:
        x, scale, bias, mean, var = node.inputs
        xt = self.types[x]
        dtype, rank, channels = xt.dtype, xt.rank, xt.shape[1]
        axes = [0] + list(range(2, rank))
        count = dim_prod(xt.shape[a] for a in axes)
        if count.is_const() and count.value < 2:
            # PyTorch refuses it too: the variance of one value is 0 and its unbiased form 0 / 0
            raise node_error(node.trace, "batch_norm", f"train mode needs more than one value per channel, "
                                                       f"got input {xt}")
        e = lambda *a, **k: self.emit(node, *a, **k)
        batch_mean = e("batch_mean", "reduce_mean", (x,), axes=axes, keepdims=True)
        centered = e("centered", "sub", (x, batch_mean))
        squared = e("squared", "mul", (centered, centered))
        batch_var = e("batch_var", "reduce_mean", (squared,), axes=axes, keepdims=True)
        eps = e("epsilon", "constant", (), value=float(node.op.epsilon), dtype=dtype)
        std = e("std", "sqrt", (e("var_eps", "add", (batch_var, eps)),))
        around = [0] + list(range(2, rank))
        scale_c = e("scale", "unsqueeze", (scale,), axes=around)
        bias_c = e("bias", "unsqueeze", (bias,), axes=around)
        # centered x (scale / std), not (centered / std) x scale: the backward then keeps one tensor
        # of x's size (centered, for the variance's and this product's vjps) where the other form
        # kept the normalized one too, as torch keeps only x
        factor = e("factor", "div", (scale_c, std))
        e("add", "add", (e("scaled", "mul", (centered, factor)), bias_c), out=node.outputs[0])
        if mean in self.graph.params and var in self.graph.params:
            self._running_stats(node, mean, var, batch_mean, squared, axes, count, channels, dtype)

    def _running_stats(self, node: Node, mean: str, var: str, batch_mean: str, squared: str, axes: list[int],
                       count: Dim, channels: Dim, dtype: str) -> None:
        e = lambda *a, **k: self.emit(node, *a, **k)
        for param in (mean, var):
            if param in self.state:
                raise node_error(node.trace, "batch_norm", f"'{param}' is already the running statistic of "
                                                           "another batch_norm; train mode updates each once")
            if param in self.outputs:
                raise node_error(node.trace, "batch_norm", f"train mode outputs the updated '{param}', "
                                                           "but the graph has an output of that name")
        prefix = mean.rpartition(".")[0]
        counter = f"{prefix}.{BATCH_COUNTER}" if prefix else BATCH_COUNTER
        self.new_params[counter] = self.params[counter] = Param(
            counter, TensorType("int64", ()), init=Zeros(), trainable=False, loc=self.graph.params[mean].loc)
        self.types[counter] = self.params[counter].type
        one_step = e("one_step", "constant", (), value=1, dtype="int64")
        tracked = e("num_batches_tracked", "add", (counter, one_step))
        if self.momentum is None:   # PyTorch's cumulative moving average: the mean of every batch so far
            steps = e("steps", "cast", (tracked,), to=dtype)
            momentum = e("momentum", "reciprocal", (steps,))
        else:
            share = 1.0 - node.op.momentum if self.momentum == PER_OP else float(self.momentum)
            momentum = e("momentum", "constant", (), value=share, dtype=dtype)
        one = e("one", "constant", (), value=1.0, dtype=dtype)
        keep = e("keep", "sub", (one, momentum))
        mean_c = e("batch_mean_c", "reshape", (batch_mean,), shape=[channels])
        # the unbiased variance, the sum of squares over n - 1; n may hold free dims, so n - 1 is
        # made at run time as the one value of range(n - 1, n)
        n_minus_1 = e("count_minus_1", "cast", (e("count_range", "range", (), start=count - 1, limit=count),), to=dtype)
        unbiased = e("unbiased_var", "div", (e("sum_squares", "reduce_sum", (squared,), axes=axes, keepdims=False),
                                             n_minus_1))
        for param, batch, suffix in ((mean, mean_c, "running_mean"), (var, unbiased, "running_var")):
            old = e(f"{suffix}_kept", "mul", (param, keep))
            new = e(suffix, "add", (old, e(f"{suffix}_batch", "mul", (batch, momentum))))
            self.outputs[param] = new
            self.state[param] = param
        self.outputs[counter] = tracked
        self.state[counter] = counter

    def _dropout(self, node: Node) -> None:
        x = node.inputs[0]
        xt = self.types[x]
        mask = f"{node.name}#mask"
        if mask in self.inputs:
            raise node_error(node.trace, "dropout", f"train mode feeds its mask as the input '{mask}', "
                                                    "which the graph already has")
        self.inputs[mask] = self.types[mask] = TensorType("bool", xt.shape)
        self.input_locs[mask] = node.trace[0].loc
        self.dropouts.append(Dropout(mask, float(node.op.ratio), xt.shape))
        e = lambda *a, **k: self.emit(node, *a, **k)
        scale = e("scale", "constant", (), value=1.0 / (1.0 - float(node.op.ratio)), dtype=xt.dtype)
        zero = e("zero", "constant", (), value=0.0, dtype=xt.dtype)
        e("where", "where", (mask, e("scaled", "mul", (x, scale)), zero), out=node.outputs[0])
