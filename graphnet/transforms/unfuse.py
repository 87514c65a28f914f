"""The fused recurrent ops written back as the scans they fuse (the inverse of recurrent.py's fusion),
for their gradients: each of rnn, lstm and gru, with its ONNX semantics, as primitives and one scan
per direction, which autodiff (the ops' vjp asks it: `g.unfused_gradient`) then differentiates as
it does any scan (a reverse scan over the cell's gradient, backpropagation
through time). So the gradient of an `op: lstm` (one a spec calls, one an imported ONNX model
holds) is exactly the gradient of the cell the op computes, with no backward of its own to keep in
step with the kernel.

Per direction: the input projection of every step is one matmul outside the scan (x W^T + Wb); the
scan carries the state(s), and R^T and Rb as states it passes on unchanged, so that they may be any
tensors (a scan's params must be the graph's params) and their gradients are the carried sums of
every step's. The cost of that: the forward scan of the gradient graph saves them at every step,
T copies of R (docs/training.md).
"""

from __future__ import annotations

from ..dims import Dim
from ..errors import Location
from ..graph import Frame, Graph, Node
from ..ops import OPS
from ..types import TensorType


class _Builder:
    """Nodes of primitive ops, each typed by its op's shape rule as it is added."""

    def __init__(self, trace: tuple[Frame, ...]):
        self.trace = trace
        self.nodes: list[Node] = []
        self.types: dict[str, TensorType] = {}
        self.inputs: dict[str, TensorType] = {}

    def input(self, name: str, t: TensorType) -> str:
        self.inputs[name] = self.types[name] = t
        return name

    def __call__(self, op: str, *ins: str, **attrs):
        made = OPS[op](**attrs)
        out = made.infer(*[self.types[i] for i in ins])
        outs = (out,) if isinstance(out, TensorType) else tuple(out)
        name = f"{op}{len(self.nodes)}"
        names = (name,) if len(outs) == 1 else tuple(f"{name}:{k}" for k in range(len(outs)))
        self.types.update(zip(names, outs))
        self.nodes.append(Node(name, made, ins, names, self.trace))
        return names[0] if len(names) == 1 else names

    def graph(self, name: str, outputs: dict[str, str]) -> Graph:
        return Graph(name, dict(self.inputs), outputs, {}, list(self.nodes), dict(self.types),
                     source=self.trace[0].loc.file if self.trace else "")

    def part(self, x: str, axis: int, start, end) -> str:
        return self("slice", x, starts=[start], ends=[end], axes=[axis])

    def direction(self, x: str, d: int, axis: int = 0) -> str:
        """Direction d of a tensor stacked by direction along `axis`, that axis removed."""
        return self("squeeze", self.part(x, axis, d, d + 1), axes=[axis])


def unfused(op, types: list[TensorType | None], trace: tuple[Frame, ...] | None = None) -> Graph:
    """A graph of primitives (and a scan per direction) computing `op`'s outputs from inputs named
    as its ports (x, w, r, b, initial_h, initial_c), those of `types` that are given."""
    trace = trace or (Frame(Location(f"<{op.name}>"), op.name, ""),)
    b = _Builder(trace)
    ports = [p.name for p in op.inputs]
    given = {n: b.input(n, t) for n, t in zip(ports, types) if t is not None}
    x, hidden, gh = given["x"], op.hidden_size, op.gates * op.hidden_size
    xt = b.types[x]
    batch = xt.shape[0] if op.layout else xt.shape[1]
    state_axis, seq_axis = (1, 1) if op.layout else (0, 0)
    state_names = [n for n in op.output_names()[1:]]              # h (and c)
    ys, finals = [], {n: [] for n in state_names}
    for d in range(op.dirs):
        w_t = b("transpose", b.direction(given["w"], d), perm=[1, 0])                 # [I, G]
        projected = b("matmul", x, w_t)                                               # [T, B, G] or [B, T, G]
        r_t = b("transpose", b.direction(given["r"], d), perm=[1, 0])                 # [H, G]
        bias = b.direction(given["b"], d) if "b" in given else None
        if bias is not None:
            projected = b("add", projected, b.part(bias, 0, 0, gh))
            rb = b.part(bias, 0, gh, 2 * gh)
        else:
            rb = b("constant", value=0.0, dtype=xt.dtype, shape=[gh])
        initial = []
        for k, n in enumerate(state_names):
            port = f"initial_{n}"
            if port in given:
                initial.append(b.direction(given[port], d, state_axis))
            else:
                initial.append(b("constant", value=0.0, dtype=xt.dtype, shape=[batch, Dim(hidden)]))
        body = _cell(op, trace, b.types[initial[0]], b.types[r_t], b.types[rb],
                     TensorType(xt.dtype, (batch, Dim(gh))))
        outs = b("scan", *initial, r_t, rb, projected, body=body, carried=tuple(state_names) + ("r_t", "rb"),
                 sequences=("xw",), stacked=("y",), axis=seq_axis, reverse=op.direction == "reverse" or d == 1)
        for k, n in enumerate(state_names):
            finals[n].append(b("unsqueeze", outs[k], axes=[state_axis]))
        ys.append(b("unsqueeze", outs[-1], axes=[2 if op.layout else 1]))        # the direction axis
    stack = lambda parts, axis: parts[0] if len(parts) == 1 else b("concat", *parts, axis=axis)
    outputs = {op.output_names()[0]: stack(ys, 2 if op.layout else 1)}
    outputs.update({n: stack(finals[n], state_axis) for n in state_names})
    return b.graph(f"{op.name}/unfused", outputs)


def _cell(op, trace, state: TensorType, r_t: TensorType, rb: TensorType, xw: TensorType) -> Graph:
    """One step of `op` in ONNX's gate order: inputs the state(s), R^T, Rb and the step's projected
    input; outputs the next state(s), R^T and Rb unchanged, and y."""
    b = _Builder(trace)
    names = [n for n in op.output_names()[1:]]
    states = [b.input(n, state) for n in names]
    r, rb, x = b.input("r_t", r_t), b.input("rb", rb), b.input("xw", xw)
    h, hidden = states[0], op.hidden_size
    recurrent = b("add", b("matmul", h, r), rb)                           # h R^T + Rb, [B, G]
    gate = lambda t, k: b.part(t, 1, k * hidden, (k + 1) * hidden)
    if op.name == "rnn":
        new = {"h": b("tanh", b("add", x, recurrent))}
    elif op.name == "lstm":                                               # gates i, o, f, c
        z = b("add", x, recurrent)
        i, o, f = (b("sigmoid", gate(z, k)) for k in range(3))
        c = b("add", b("mul", f, states[1]), b("mul", i, b("tanh", gate(z, 3))))
        new = {"h": b("mul", o, b("tanh", c)), "c": c}
    else:                                                                 # gru: gates z, r, h
        update = b("sigmoid", b("add", gate(x, 0), gate(recurrent, 0)))
        reset = b("sigmoid", b("add", gate(x, 1), gate(recurrent, 1)))
        if op.linear_before_reset:
            inner = b("mul", reset, gate(recurrent, 2))
        else:
            inner = b("add", b("matmul", b("mul", reset, h), b.part(r, 1, 2 * hidden, 3 * hidden)), b.part(rb, 0, 2 * hidden, 3 * hidden))
        candidate = b("tanh", b("add", gate(x, 2), inner))
        new = {"h": b("add", candidate, b("mul", update, b("sub", h, candidate)))}
    outputs = {n: new[n] for n in names}
    outputs.update({"r_t": r, "rb": rb, "y": new["h"]})
    return b.graph(f"{op.name}_cell", outputs)
