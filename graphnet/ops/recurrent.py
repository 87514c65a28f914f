"""Fused recurrent layers with ONNX semantics: rnn, lstm, gru.

Weights are stacked per direction as ONNX lays them out: w [dirs, gates*H, I], r [dirs, gates*H, H],
b [dirs, 2*gates*H] (input biases, then recurrent biases). Gate order is ONNX's: LSTM i, o, f, c;
GRU z, r, h. PyTorch orders them i, f, g, o and r, z, n, so its weights need their gate blocks
reordered (not transposed) to load.

The kernels are laid out for the time loop, which is serial: every step's input projection, both
biases included where they only add, is one GEMM before the loop; each step is then one GEMM of the
state by the recurrent weight into a [B, gates*H] array made once, a few in-place passes over it,
and the new state written straight into the output sequence. docs/performance.md ("Recurrent
steps") has the measurements behind each choice.

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
        if self.layout:
            x = x.transpose(1, 0, 2)
            states = tuple(s.transpose(1, 0, 2) if s is not None else None for s in states)
        steps, batch, size = x.shape
        hidden, gh, dtype = self.hidden_size, self.gates * self.hidden_size, x.dtype
        states = states + (None,) * (len(self.outputs) - 1 - len(states))
        # x with a column of ones, rows in (time, batch) order: a weight with its bias as one more
        # column then gives every step's input projection, bias included, from one GEMM, each
        # step's [B, gates*H] a contiguous block
        xs = np.empty((steps, batch, size + 1), dtype)
        xs[..., :size] = x
        xs[..., size] = 1
        xs = xs.reshape(steps * batch, size + 1)
        y = np.empty((steps, self.dirs, batch, hidden), dtype)     # each step writes its h into y
        outs = [np.empty((self.dirs, batch, hidden), dtype) for _ in range(len(self.outputs) - 1)]
        for d in range(self.dirs):
            scale = self.gate_scale(dtype)
            wb, rb = (b[d, :gh], b[d, gh:]) if b is not None else (np.zeros(gh, dtype),) * 2
            # [w | bias] and r, scaled, in their own layout: BLAS reads them transposed as fast
            # as a transposed copy, which would cost a pass (0.6 ms for a [1024, 257] w)
            w_biased = np.empty((gh, size + 1), dtype)
            np.multiply(w[d], scale[:, None], out=w_biased[:, :size])
            np.multiply(self.input_bias(wb, rb), scale, out=w_biased[:, size])
            projected = np.matmul(xs, w_biased.T).reshape(steps, batch, gh)
            del w_biased
            r_t = np.multiply(r[d], scale[:, None]).T               # [H, gates*H]
            first = [s[d] if s is not None else np.zeros((batch, hidden), dtype) for s in states]
            first[1:] = [np.array(s) for s in first[1:]]            # copies: updated in place
            backwards = self.direction == "reverse" or d == 1
            order = range(steps - 1, -1, -1) if backwards else range(steps)
            with np.errstate(over="ignore"):    # e^-z past the float range is inf: its gate is 0, as it should be
                last = self.scan(projected, r_t, rb * scale, first, order, y[:, d])
            for out, state in zip(outs, last):
                out[d] = state
            del projected, r_t, first, last     # before the next direction makes its own
        if self.layout:
            y = y.transpose(2, 0, 1, 3)
            outs = [o.transpose(1, 0, 2) for o in outs]
        return (y, *outs)

    def gate_scale(self, dtype) -> np.ndarray:
        """The factor of each gate's pre-activation that scan's formulas expect, folded into w, r
        and b (exact: powers of 2): -1 where a sigmoid is 1/(1 + e^-z) from one exp, -2 where a
        tanh is 2 sigmoid(2z) - 1, 1 where the kernel takes np.tanh."""
        return np.ones(self.gates * self.hidden_size, dtype)

    def input_bias(self, wb, rb):
        """The bias added with the input projection: both halves, where the gates only add them."""
        return wb + rb

    def scan(self, projected, r_t, rb, first, order, y):
        """The steps of one direction in `order`. projected [T, B, gates*H] is every step's input
        projection with input_bias, r_t [H, gates*H] the recurrent weight transposed, rb its bias,
        all scaled by gate_scale; first holds the initial states [B, H]. Step t writes its h into
        y[t]; returns the final states."""
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
        # x with its column of ones, then for one direction at a time: its input projection
        # [T, B, gates*H], the scaled weights and biases, the states, the step's gates; and what
        # NumPy and Python allocate around the calls (iterators, views), a few KiB at any size
        x = ins[0]
        steps, batch = (int(x.shape[1]), int(x.shape[0])) if self.layout else (int(x.shape[0]), int(x.shape[1]))
        size, hidden, gh = int(x.shape[2]), self.hidden_size, self.gates * self.hidden_size
        states = len(self.outputs) - 1
        direction = gh * (steps * batch + size + hidden + 4 + batch) + (states + 1) * batch * hidden
        return ITEMSIZE[x.dtype] * (steps * batch * (size + 1) + direction) + 16384


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

    def scan(self, projected, r_t, rb, first, order, y):
        h, z = first[0], np.empty(projected.shape[1:], projected.dtype)
        for t in order:
            np.matmul(h, r_t, out=z)
            z += projected[t]
            h = y[t]
            np.tanh(z, out=h)
        return [h]


class Lstm(_Recurrent):
    """LSTM, gates i, o, f, c: C_t = f*C_{t-1} + i*c~, H_t = o*tanh(C_t)."""

    name = "lstm"
    onnx = "LSTM"
    inputs = ports("x", "w", "r", optional=("b", "initial_h", "initial_c"))
    outputs = ("y", "h", "c")
    gates = 4
    gate_names = ("i", "o", "f", "c")
    examples = _examples(4, 2)

    def gate_scale(self, dtype) -> np.ndarray:
        scale = np.full(4 * self.hidden_size, -1, dtype)
        scale[3 * self.hidden_size:] = -2
        return scale

    def scan(self, projected, r_t, rb, first, order, y):
        # The four gates are one exp pass over the step's [B, 4H] array (gate_scale): NumPy's
        # float32 tanh takes 1.7 times its exp per element here, so the candidate's tanh is
        # 2 sigmoid(2a) - 1; tanh(c) stays np.tanh, whose exp form is 6 calls for no gain.
        hidden = self.hidden_size
        (h, c), z = first, np.empty(projected.shape[1:], projected.dtype)
        i, o, f, g = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
        for t in order:
            np.matmul(h, r_t, out=z)
            z += projected[t]
            np.exp(z, out=z)
            z += 1
            np.divide(1, z, out=z)
            g *= 2                      # tanh(a) = 2 sigmoid(2a) - 1
            g -= 1
            g *= i
            c *= f
            c += g
            h = y[t]
            np.tanh(c, out=h)
            h *= o
        return [h, c]


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

    def gate_scale(self, dtype) -> np.ndarray:
        scale = np.ones(3 * self.hidden_size, dtype)
        scale[:2 * self.hidden_size] = -1
        return scale

    def input_bias(self, wb, rb):
        # linear_before_reset: the candidate's recurrent bias is added before the reset gate
        # multiplies, so it stays with the step's product
        bias = wb + rb
        if self.linear_before_reset:
            bias[2 * self.hidden_size:] = wb[2 * self.hidden_size:]
        return bias

    def scan(self, projected, r_t, rb, first, order, y):
        hidden = self.hidden_size
        h, z = first[0], np.empty(projected.shape[1:], projected.dtype)
        gates, candidate = z[:, :2 * hidden], z[:, 2 * hidden:]
        update, reset = z[:, :hidden], z[:, hidden:2 * hidden]
        r_gates, r_candidate, rb_candidate = r_t[:, :2 * hidden], r_t[:, 2 * hidden:], rb[2 * hidden:]
        reset_h = np.empty_like(candidate)
        for t in order:
            xw = projected[t]
            if self.linear_before_reset:
                np.matmul(h, r_t, out=z)
                candidate += rb_candidate
            else:
                np.matmul(h, r_gates, out=gates)
            gates += xw[:, :2 * hidden]
            np.exp(gates, out=gates)
            gates += 1
            np.divide(1, gates, out=gates)
            if self.linear_before_reset:
                candidate *= reset
            else:
                np.multiply(reset, h, out=reset_h)
                np.matmul(reset_h, r_candidate, out=candidate)
            candidate += xw[:, 2 * hidden:]
            np.tanh(candidate, out=candidate)
            new = y[t]                  # (1 - update) * candidate + update * h
            np.subtract(h, candidate, out=new)
            new *= update
            new += candidate
            h = new
        return [h]

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
