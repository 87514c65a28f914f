"""Ops that rank values along an axis: argmax, argmin (ONNX ArgMax, ArgMin) and topk (ONNX TopK).
Ties go to the lowest index, as ONNX says."""

from __future__ import annotations

import numpy as np

from ..dims import Dim
from ..types import FLOAT_DTYPES, INT_DTYPES
from .base import Drawn, Example, In, Op, ShapeError, TensorType, axis_index, ports, some_values

NUMBERS = ("float32", "float64", "float16") + tuple(INT_DTYPES)


def require_numbers(x: TensorType, op: str) -> None:
    if x.dtype not in NUMBERS:
        raise ShapeError(f"{op} needs numbers, got {x}")


class _ArgExtreme(Op):
    fresh = True
    axis: int = 0
    keepdims: bool = True
    examples = (Example((In((3, 4, 5)),), {"axis": 1}),
                Example((In((4, 6)),), {"axis": -1, "keepdims": False}),
                Example((In((5, 3), "int64", -3, 3),)))

    def infer(self, x: TensorType) -> TensorType:
        require_numbers(x, self.name)
        axis = axis_index(self.axis, x.rank)
        shape = [Dim(1) if i == axis else d for i, d in enumerate(x.shape) if self.keepdims or i != axis]
        return TensorType("int64", tuple(shape))

    def compute(self, x):
        pick = np.argmax if self.name == "argmax" else np.argmin
        return pick(x, axis=self.axis, keepdims=self.keepdims).astype(np.int64)

    def to_onnx(self, b, x):
        return b.node(self.onnx, [x], axis=self.axis, keepdims=int(self.keepdims))

    def label(self, node: Drawn) -> str:
        return f"axis {self.axis}"


class ArgMax(_ArgExtreme):
    """The index of the largest value along `axis` (the first, on a tie), as int64; with keepdims
    the axis stays, with size 1."""

    name = "argmax"
    no_vjp = "not differentiable: its output is integer indices, through which no gradient flows"
    onnx = "ArgMax"


class ArgMin(_ArgExtreme):
    """The index of the smallest value along `axis` (the first, on a tie), as int64; with keepdims
    the axis stays, with size 1."""

    name = "argmin"
    no_vjp = "not differentiable: its output is integer indices, through which no gradient flows"
    onnx = "ArgMin"


class TopK(Op):
    """The `k` largest (or, with largest false, smallest) values along `axis`, sorted, and their
    int64 indices: outputs values and indices. Equal values keep their order along the axis."""

    name = "topk"
    fresh = True
    onnx = "TopK"
    outputs = ("values", "indices")
    k: int
    axis: int = -1
    largest: bool = True
    examples = (Example((In((3, 7)),), {"k": 3}),
                Example((In((5, 2, 3)),), {"k": 2, "axis": 0, "largest": False}),
                Example((In((2, 9), "int32", -3, 3),), {"k": 4}))

    def infer(self, x: TensorType) -> tuple[TensorType, TensorType]:
        require_numbers(x, "topk")
        axis = axis_index(self.axis, x.rank)
        n = x.shape[axis]
        if self.k < 1:
            raise ShapeError(f"k must be positive, got {self.k}")
        if n.is_const() and self.k > n.value:
            raise ShapeError(f"k {self.k} is more than the {n} values along axis {axis} of {x}")
        if not n.is_const():
            raise ShapeError(f"topk along axis {axis} needs its size known, not the free dim {n}")
        shape = tuple(Dim(self.k) if i == axis else d for i, d in enumerate(x.shape))
        return TensorType(x.dtype, shape), TensorType("int64", shape)

    def value_bounds(self, ins, bounds):
        return None

    def compute(self, x):
        keys = x.astype(np.float64)
        order = np.argsort(-keys if self.largest else keys, axis=self.axis, kind="stable")
        index = np.take(order, np.arange(self.k), axis=self.axis)
        return np.take_along_axis(x, index, axis=self.axis), index.astype(np.int64)

    def vjp(self, g, xs, ys, dys):
        # each value's cotangent goes back to the place it was taken from: a one-hot of the
        # indices along the axis (k x n per row), weighted by dy and summed over the k
        t = g.type_of(xs[0])
        if dys[0] is None or t.dtype not in FLOAT_DTYPES:
            return (None,)
        axis = axis_index(self.axis, t.rank)
        perm = [i for i in range(t.rank) if i != axis] + [axis]
        last = (lambda v: v) if axis == t.rank - 1 else (lambda v: g.emit("transpose", v, perm=perm))
        places = g.emit("range", limit=t.shape[axis])
        hits = g.emit("equal", g.emit("unsqueeze", last(ys[1]), axes=[-1]), places)          # [..., k, n]
        weighted = g.emit("mul", g.emit("cast", hits, to=t.dtype), g.emit("unsqueeze", last(dys[0]), axes=[-1]))
        dx = g.emit("reduce_sum", weighted, axes=[-2], keepdims=False)
        return (dx if axis == t.rank - 1 else g.emit("transpose", dx, perm=[perm.index(i) for i in range(t.rank)]),)

    def to_onnx(self, b, x):
        return tuple(b.node("TopK", [x, b.ints([self.k])], n_out=2, axis=self.axis, largest=int(self.largest),
                            sorted=1))

    def label(self, node: Drawn) -> str:
        return f"k {self.k},axis {self.axis}" + ("" if self.largest else ",smallest")
