"""Fused recurrent layers with ONNX semantics: rnn, lstm, gru.

Weights are stacked per direction as ONNX lays them out: w [dirs, gates*H, I], r [dirs, gates*H, H],
b [dirs, 2*gates*H] (input biases, then recurrent biases). Gate order is ONNX's: LSTM i, o, f, c;
GRU z, r, h. PyTorch orders them i, f, g, o and r, z, n, so its weights need their gate blocks
reordered (not transposed) to load. The input projection of every step is one matmul, hoisted out of
the time loop.

A cell written from primitives declares the op a scan of it is (`fuses_to:` in its block, see
CellFusion), and graphnet/transforms/recurrent.py puts the op in the scan's place.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ..dims import Dim
from ..types import FLOAT_DTYPES, ITEMSIZE
from .base import Drawn, Example, In, Op, ShapeError, TensorType, ports, require_float, same_dtype
from .elementwise import _sigmoid
from .linalg import matmul


class _Recurrent(Op):
    inputs = ports("x", "w", "r", optional=("b", "initial_h"))
    gates: ClassVar[int]
    gate_names: ClassVar[tuple[str, ...]]     # ONNX's names of the gate blocks, in ONNX's order
    hidden_size: int
    direction: Literal["forward", "reverse", "bidirectional"] = "forward"
    layout: Literal[0, 1] = 0        # 0: x is [T, B, I]; 1: x is [B, T, I] (batch first)

    @property
    def dirs(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    def infer(self, x: TensorType, w: TensorType, r: TensorType, *rest: TensorType | None):
        require_float(x)
        same_dtype(x, w, r)
        if x.rank != 3:
            raise ShapeError(f"x must be [{'B, T' if self.layout else 'T, B'}, input], got {x}")
        steps, batch = (x.shape[1], x.shape[0]) if self.layout else (x.shape[0], x.shape[1])
        size, d, gh = x.shape[2], self.dirs, self.gates * self.hidden_size
        expected = {"w": (d, gh, size), "r": (d, gh, self.hidden_size), "b": (d, 2 * gh)}
        state = (batch, d, self.hidden_size) if self.layout else (d, batch, self.hidden_size)
        for port in self.inputs[4:]:      # initial states
            expected[port.name] = state
        for name, t in zip([port.name for port in self.inputs[1:]], (w, r) + rest):
            if t is not None and t.dtype != x.dtype:
                raise ShapeError(f"{name} must be {x.dtype} like x, got {t}")
            if t is not None and t.shape != tuple(Dim(v) if isinstance(v, int) else v for v in expected[name]):
                want = ", ".join(str(v) for v in expected[name])
                raise ShapeError(f"{name} must be [{want}] for {self.dirs} direction(s) and hidden size "
                                 f"{self.hidden_size}, got {t}")
        y = (batch, steps, d, self.hidden_size) if self.layout else (steps, d, batch, self.hidden_size)
        return (TensorType(x.dtype, y),) + (TensorType(x.dtype, state),) * (len(self.outputs) - 1)

    def compute(self, x, w, r, b=None, *states):
        time_axis = 1 if self.layout else 0
        if self.layout:
            states = tuple(s.transpose(1, 0, 2) if s is not None else None for s in states)
        steps, batch = x.shape[time_axis], x.shape[1 - time_axis]
        hidden, gh = self.hidden_size, self.gates * self.hidden_size
        ys, finals = [], []
        for d in range(self.dirs):
            bias = b[d] if b is not None else np.zeros(2 * gh, x.dtype)
            # every step's input projection at once: one GEMM over all (batch, time) rows
            projected = matmul(x.reshape(-1, x.shape[2]), w[d].T).reshape(x.shape[:2] + (gh,))
            projected += bias[:gh]
            state = [s[d] if s is not None else np.zeros((batch, hidden), x.dtype)
                     for s in (states + (None,) * (len(self.outputs) - 1 - len(states)))]
            backwards = self.direction == "reverse" or d == 1
            order = range(steps - 1, -1, -1) if backwards else range(steps)
            y, state = self.scan(projected.transpose(1, 0, 2) if self.layout else projected, state, r[d],
                                 bias[gh:], order)
            ys.append(y)
            finals.append(state)
        y = np.stack(ys, axis=1)                                  # [T, dirs, B, H]
        outs = [np.stack([f[k] for f in finals]) for k in range(len(self.outputs) - 1)]
        if self.layout:
            y = y.transpose(2, 0, 1, 3)
            outs = [o.transpose(1, 0, 2) for o in outs]
        return (y, *outs)

    def scan(self, projected, state, r, rb, order):
        """The steps of one direction in `order`: projected [T, B, gates*H] is every step's input
        projection with its input bias; returns y [T, B, H] and the final states."""
        y = np.empty(projected.shape[:2] + (self.hidden_size,), projected.dtype)
        for t in order:
            state = self.step(projected[t], state, r, rb)
            y[t] = state[0]
        return y, state

    def step(self, xw, state, r, rb):
        raise NotImplementedError

    def to_onnx(self, b, x, w, r, bias=None, *states):
        # onnxruntime runs only layout 0, so batch-first tensors are transposed around the op.
        if self.layout:
            x = b.node("Transpose", [x], perm=[1, 0, 2])
            states = tuple(b.node("Transpose", [s], perm=[1, 0, 2]) if s else None for s in states)
        # ONNX puts sequence_lens between B and the initial states; graphnet does not use it.
        ins = [x, w, r, bias or "", ""] + [s or "" for s in states]
        while ins and ins[-1] == "":
            ins.pop()
        outs = b.node(self.onnx, ins, n_out=len(self.outputs), hidden_size=self.hidden_size,
                      direction=self.direction, **self.onnx_attrs())
        if self.layout:
            outs = [b.node("Transpose", [outs[0]], perm=[2, 0, 1, 3])] + \
                   [b.node("Transpose", [o], perm=[1, 0, 2]) for o in outs[1:]]
        return tuple(outs)

    def onnx_attrs(self) -> dict:
        return {}

    def vjp(self, g, xs, ys, dys):
        # the gradient of the scan this op fuses: autodiff writes the op out as primitives and a scan
        # per direction (transforms/unfuse.py) and differentiates that, so no backward of its own
        # can drift from the kernel
        return g.unfused_gradient(self, xs, dys)

    def macs(self, ins, outs) -> Dim:
        x = ins[0]
        steps, batch = (x.shape[1], x.shape[0]) if self.layout else (x.shape[0], x.shape[1])
        gh = self.gates * self.hidden_size
        return steps * batch * self.dirs * gh * (x.shape[2] + self.hidden_size)

    def label(self, node: Drawn) -> str:
        text = f"hidden {self.hidden_size}"
        return text if self.direction == "forward" else f"{text},{self.direction}"

    def scratch_bytes(self, ins, outs) -> int:
        # per direction, the input projection [T, B, gates*H] and the steps' outputs [T, B, H] held
        # until they are stacked (two projections at once, when the second is made), and zero
        # initial states; per step, a few [B, gates*H] gate arrays
        x = ins[0]
        steps, batch = (int(x.shape[1]), int(x.shape[0])) if self.layout else (int(x.shape[0]), int(x.shape[1]))
        gh, hidden, states = self.gates * self.hidden_size, self.hidden_size, len(self.outputs) - 1
        per_direction = steps * batch * (gh + hidden) + states * batch * hidden
        return ITEMSIZE[x.dtype] * (self.dirs * per_direction + 8 * batch * gh)


def _examples(gates: int, states: int) -> tuple[Example, ...]:
    def weights(d, h, i):
        return (In((d, gates * h, i), low=-0.5, high=0.5), In((d, gates * h, h), low=-0.5, high=0.5),
                In((d, 2 * gates * h), low=-0.5, high=0.5))

    def state(shape):
        return (In(shape, low=-1, high=1),) * states

    return (
        Example((In((5, 2, 3)),) + weights(1, 4, 3), {"hidden_size": 4}),
        Example((In((4, 3, 2)),) + weights(2, 3, 2) + state((2, 3, 3)),
                {"hidden_size": 3, "direction": "bidirectional"}),
        Example((In((2, 6, 3)),) + weights(1, 5, 3) + state((2, 1, 5)),
                {"hidden_size": 5, "direction": "reverse", "layout": 1}),
        Example((In((3, 2, 4)), In((1, gates * 2, 4)), In((1, gates * 2, 2))), {"hidden_size": 2}),
    )


class Rnn(_Recurrent):
    """Elman RNN: H_t = tanh(X_t W^T + H_{t-1} R^T + Wb + Rb)."""

    name = "rnn"
    onnx = "RNN"
    outputs = ("y", "h")
    gates = 1
    gate_names = ("i",)
    examples = _examples(1, 1)

    def step(self, xw, state, r, rb):
        return [np.tanh(xw + matmul(state[0], r.T) + rb)]


class Lstm(_Recurrent):
    """LSTM, gates i, o, f, c: C_t = f*C_{t-1} + i*c~, H_t = o*tanh(C_t)."""

    name = "lstm"
    onnx = "LSTM"
    inputs = ports("x", "w", "r", optional=("b", "initial_h", "initial_c"))
    outputs = ("y", "h", "c")
    gates = 4
    gate_names = ("i", "o", "f", "c")
    examples = _examples(4, 2)

    def scan(self, projected, state, r, rb, order):
        # Gates laid out as rows, [gates*H, B], so that each step's product is r @ h^T, the fast
        # shape for OpenBLAS (few columns; see linalg.matmul), and every gate a contiguous block.
        # Every gate is a sigmoid of one exp pass: sigmoid(z) = 1/(1 + e^-z) and tanh(z) =
        # 2 sigmoid(2z) - 1, with the -1 and -2 folded into the rows of r and of the projection
        # (exact: powers of 2). NumPy's float32 tanh is scalar libm code on CPUs without AVX-512,
        # 2.5 times its SIMD exp here (docs/performance.md). Every step writes into buffers made
        # once: no array is allocated inside the loop.
        hidden, dtype = self.hidden_size, projected.dtype
        scale = np.full(4 * hidden, -1, dtype)
        scale[3 * hidden:] = -2
        projected += rb                                                 # the caller's own array
        projected *= scale
        xw = np.ascontiguousarray(projected.transpose(0, 2, 1))        # [T, 4H, B]
        r_scaled = r * scale[:, None]
        z = np.empty_like(xw[0])
        h_all = np.empty((len(xw), hidden, xw.shape[2]), dtype)         # every step's h^T, [T, H, B]
        h, c = (np.array(s.T, order="C") for s in state)     # copies: c is updated in place
        with np.errstate(over="ignore"):        # e^-z past float32's range is inf: the gate is 0, as it should be
            for t in order:
                np.matmul(r_scaled, h, out=z)
                z += xw[t]
                np.exp(z, out=z)
                z += 1
                np.reciprocal(z, out=z)
                i, o, f, g = z[:hidden], z[hidden:2 * hidden], z[2 * hidden:3 * hidden], z[3 * hidden:]
                g *= 2
                g -= 1
                c *= f
                g *= i
                c += g
                h = h_all[t]                    # o * tanh(c), tanh as above
                np.multiply(c, -2, out=h)
                np.exp(h, out=h)
                h += 1
                np.reciprocal(h, out=h)
                h *= 2
                h -= 1
                h *= o
        return h_all.transpose(0, 2, 1), [h.T, c.T]

    def scratch_bytes(self, ins, outs) -> int:
        # scan's copy of the projection with its gates as rows, beside the projection itself
        x = ins[0]
        steps, batch = (int(x.shape[1]), int(x.shape[0])) if self.layout else (int(x.shape[0]), int(x.shape[1]))
        return super().scratch_bytes(ins, outs) + ITEMSIZE[x.dtype] * steps * batch * self.gates * self.hidden_size


class Gru(_Recurrent):
    """GRU, gates z, r, h; linear_before_reset=1 applies the reset gate after the recurrent matmul
    (PyTorch's form), 0 before it (the original paper's)."""

    name = "gru"
    onnx = "GRU"
    outputs = ("y", "h")
    gates = 3
    gate_names = ("z", "r", "h")
    linear_before_reset: bool = False
    examples = _examples(3, 1) + (
        Example((In((4, 2, 3)), In((1, 12, 3), low=-0.5, high=0.5), In((1, 12, 4), low=-0.5, high=0.5),
                 In((1, 24), low=-0.5, high=0.5)), {"hidden_size": 4, "linear_before_reset": True}),)

    def step(self, xw, state, r, rb):
        h = state[0]
        xz, xr, xh = np.split(xw, 3, axis=-1)
        rz, rr, rh = np.split(r, 3, axis=0)
        bz, br, bh = np.split(rb, 3)
        z = _sigmoid(xz + matmul(h, rz.T) + bz)
        reset = _sigmoid(xr + matmul(h, rr.T) + br)
        if self.linear_before_reset:
            candidate = np.tanh(xh + reset * (matmul(h, rh.T) + bh))
        else:
            candidate = np.tanh(xh + matmul(reset * h, rh.T) + bh)
        return [(1 - z) * candidate + z * h]

    def onnx_attrs(self) -> dict:
        return {"linear_before_reset": int(self.linear_before_reset)}


RECURRENT: dict[str, type[_Recurrent]] = {cls.name: cls for cls in (Rnn, Lstm, Gru)}
ROLES = ("w", "r", "wb", "rb")    # the op's w and r, and the halves of its b


class CellFusion(BaseModel):
    """What a recurrent cell written from primitives declares (`fuses_to:` in its block; expansion
    carries it onto the scan of the block): a scan of it is this fused op. It states everything the
    fusion relies on, so that renaming a node inside the cell changes nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: str                        # the fused op: rnn, lstm or gru
    states: tuple[str, ...]        # the carried inputs, each an output of its name too, in the op's order
    output: str                    # the output stacked over the steps: the op's y, the next first state
    weights: dict[str, str]        # w, r, wb, rb -> the param (qualified name) that holds it
    gates: tuple[str, ...]         # the gate blocks of every weight in their order, by the op's gate names
    attrs: dict[str, Any] = {}     # the op's other attributes (gru: linear_before_reset)

    def op_class(self) -> type[_Recurrent]:
        return RECURRENT[self.op]

    def gate_order(self) -> list[int]:
        """The cell's gate blocks in the op's order: index into the cell's weights."""
        return [self.gates.index(g) for g in self.op_class().gate_names]

    def misfit(self, scan) -> tuple[tuple, str] | None:
        """What keeps a scan of the declaring cell from being the op, as (the declaration's key it is
        about, a message), or None when nothing does: what the declaration states, checked against
        the cell as expanded in `scan`."""
        return self._declaration_misfit() or self._cell_misfit(scan)

    def _declaration_misfit(self) -> tuple[tuple, str] | None:
        cls = RECURRENT.get(self.op)
        if cls is None:
            return ("op",), f"'{self.op}' is not a recurrent op ({', '.join(RECURRENT)})"
        if len(self.states) != len(cls.outputs) - 1:
            return ("states",), (f"the {self.op} op carries {len(cls.outputs) - 1} state(s) "
                                 f"({', '.join(cls.outputs[1:])}), not {len(self.states)}")
        if sorted(self.gates) != sorted(cls.gate_names):
            return ("gates",), (f"gates {list(self.gates)} are not the {self.op} op's gates in some order "
                                f"({', '.join(cls.gate_names)})")
        if sorted(self.weights) != sorted(ROLES):
            return ("weights",), (f"weights must name {', '.join(ROLES)} (the op's w, r and the two halves of "
                                  f"b), got {', '.join(self.weights)}")
        if set(self.attrs) & {"hidden_size", "layout", "direction"}:
            return ("attrs",), "attrs may not set hidden_size, layout or direction: the cell and its scan give them"
        return None

    def _cell_misfit(self, scan) -> tuple[tuple, str] | None:
        body = scan.body
        inputs = dict(zip(scan.carried + scan.sequences, scan.body_inputs()))    # cell input -> body tensor
        first = self.states[0]
        for name in self.states:
            if name not in inputs or name not in body.outputs:
                return ("states",), f"state '{name}' is not both an input and an output of the cell"
        if body.outputs.get(self.output) != body.outputs[first]:
            return ("output",), f"output '{self.output}' is not an output of the cell equal to its next '{first}'"
        rest = [n for n in inputs if n not in self.states]
        if len(rest) != 1:
            return ("states",), f"the cell must have one input besides its states, got {', '.join(rest) or 'none'}"
        x, h = body.inputs[inputs[rest[0]]], body.inputs[inputs[first]]
        if x.rank != 2 or h.rank != 2 or not h.shape[1].is_const() or x.dtype not in FLOAT_DTYPES:
            return ("states",), f"input '{rest[0]}' and state '{first}' must be float [batch, size], got {x} and {h}"
        for name in self.states[1:]:
            if body.inputs[inputs[name]] != h:
                return ("states",), f"state '{name}' is {body.inputs[inputs[name]]}, not {h} as '{first}'"
        hidden = h.shape[1].value
        gh = len(self.gates) * hidden
        want = {"w": (gh, x.shape[1]), "r": (gh, hidden), "wb": (gh,), "rb": (gh,)}
        for role, param in self.weights.items():
            local = param.rsplit(".", 1)[-1]
            if param not in scan.params:
                return ("weights", role), f"weight {role}: the cell reads no param '{local}'"
            t = body.params[param].type
            if t.shape != want[role] or t.dtype != x.dtype:
                shape = ", ".join(str(d) for d in want[role])
                return ("weights", role), f"weight {role} ('{local}') is {t}, the {self.op} op needs {x.dtype}[{shape}]"
        try:
            self.op_class()(hidden_size=hidden, **self.attrs)
        except ValidationError as e:
            return ("attrs",), f"attrs {self.attrs} do not fit the {self.op} op: {e.errors()[0]['msg']}"
        return None
