"""Reductions over listed axes (all axes when none are listed), ONNX keepdims semantics; cumsum, the
running sum along one axis."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..dims import Dim, dim_prod
from ..types import FLOAT_DTYPES
from .base import Example, In, Op, ShapeError, TensorType, axis_index, require_float


def _reduction(op_name: str, onnx_type: str, kernel: Callable, what: str, grad: Callable, floats_only: bool = False,
               over_none: str = "Identity") -> type[Op]:
    # over_none: the ONNX op that is this reduction over no axes, element by element; grad(g, x,
    # y, dy, axes): the cotangent of x from y and dy with the reduced axes kept
    class Reduce(Op):
        name = op_name
        onnx = onnx_type
        axes: list[int] | None = None
        keepdims: bool = True
        examples = (Example((In((2, 3, 4)),), {"axes": [1]}),
                    Example((In((2, 3, 4)),), {"axes": [0, -1], "keepdims": False}),
                    Example((In((3, 5)),)))

        def normalized(self, rank: int) -> tuple[int, ...]:
            if self.axes is None:
                return tuple(range(rank))
            axes = tuple(sorted(axis_index(a, rank) for a in self.axes))
            if len(set(axes)) != len(axes):
                raise ShapeError(f"axes {self.axes} repeat an axis")
            return axes

        def infer(self, x: TensorType) -> TensorType:
            if floats_only:
                require_float(x)
            elif x.dtype == "bool":
                raise ShapeError(f"{op_name} needs numbers, got {x}")
            axes = self.normalized(x.rank)
            shape = [Dim(1) if i in axes else d for i, d in enumerate(x.shape) if self.keepdims or i not in axes]
            return TensorType(x.dtype, tuple(shape))

        def compute(self, x):
            return kernel(x, axis=self.normalized(x.ndim), keepdims=self.keepdims).astype(x.dtype)

        def to_onnx(self, b, x):
            if not self.normalized(b.type_of(x).rank):   # ONNX reads no axes as every axis
                return b.node(over_none, [x])
            return b.reduce(onnx_type, x, list(self.normalized(b.type_of(x).rank)), self.keepdims)

        def vjp(self, g, xs, ys, dys):
            x = g.type_of(xs[0])
            if x.dtype not in FLOAT_DTYPES:
                return (None,)
            axes = list(self.normalized(x.rank))
            kept = [(d if self.keepdims or not axes else g.emit("unsqueeze", d, axes=axes)) for d in (ys[0], dys[0])]
            return (grad(g, xs[0], kept[0], kept[1], axes),)

    Reduce.__name__ = Reduce.__qualname__ = op_name.title().replace("_", "")
    Reduce.__doc__ = (f"The {what} over `axes` (every axis when none are listed); with keepdims the "
                      "reduced axes stay, with size 1.")
    return Reduce


def _spread(g, x: str, dy: str) -> str:
    return g.emit("expand", dy, shape=list(g.type_of(x).shape))


def _mean_grad(g, x, y, dy, axes):
    t = g.type_of(x)
    count = dim_prod(t.shape[a] for a in axes)
    if count.is_const():
        return g.emit("mul", _spread(g, x, dy), g.const(1 / count.value, t.dtype))
    # a mean over a free dim: its length is counted at run time
    ones = g.emit("constant", value=1.0, dtype=t.dtype, shape=list(t.shape))
    return g.emit("div", _spread(g, x, dy), g.emit("reduce_sum", ones, axes=axes, keepdims=True))


def _extreme_grad(g, x, y, dy, axes):
    # every element equal to the extreme gets the cotangent (PyTorch's amax/amin split it on ties)
    zero = g.const(0.0, g.type_of(x).dtype)
    return g.emit("where", g.emit("equal", x, _spread(g, x, y)), _spread(g, x, dy), zero)


def _l2_grad(g, x, y, dy, axes):
    return g.emit("mul", x, _spread(g, x, g.emit("div", dy, y)))


ReduceMean = _reduction("reduce_mean", "ReduceMean", np.mean, "mean", _mean_grad)
ReduceSum = _reduction("reduce_sum", "ReduceSum", np.sum, "sum", lambda g, x, y, dy, axes: _spread(g, x, dy))
ReduceMax = _reduction("reduce_max", "ReduceMax", np.max, "maximum", _extreme_grad)
ReduceMin = _reduction("reduce_min", "ReduceMin", np.min, "minimum", _extreme_grad)


def _l2(x, axis, keepdims):
    return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))


ReduceL2 = _reduction("reduce_l2", "ReduceL2", _l2, "L2 norm, sqrt(sum x^2),", _l2_grad, floats_only=True,
                      over_none="Abs")


class CumSum(Op):
    """The running sum along `axis` (ONNX CumSum): with exclusive, each sum stops before its own
    element; with reverse, the sums run from the end."""

    name = "cumsum"
    fresh = True
    onnx = "CumSum"
    axis: int = 0
    exclusive: bool = False
    reverse: bool = False
    examples = (Example((In((3, 4)),), {"axis": 1}),
                Example((In((4, 2, 3)),), {"axis": 0, "exclusive": True, "reverse": True}),
                Example((In((6,), "int64", -5, 5),), {"exclusive": True}))

    def infer(self, x: TensorType) -> TensorType:
        if x.dtype not in ("float32", "float64", "int32", "int64"):
            raise ShapeError(f"cumsum takes float32, float64, int32 or int64 (onnxruntime's CumSum), got {x}")
        axis_index(self.axis, x.rank)
        return x

    def compute(self, x):
        axis = axis_index(self.axis, x.ndim)
        y = np.flip(x, axis) if self.reverse else x
        total = np.cumsum(y, axis=axis, dtype=x.dtype)
        if self.exclusive:
            total = np.concatenate([np.zeros_like(np.take(total, [0], axis=axis)),
                                    np.take(total, np.arange(total.shape[axis] - 1), axis=axis)], axis=axis)
        return np.flip(total, axis).copy() if self.reverse else total

    def vjp(self, g, xs, ys, dys):
        # each input element counts in the sums that run past it: the same sum, run the other way
        if g.type_of(xs[0]).dtype not in ("float32", "float64"):
            return (None,)
        return (g.emit("cumsum", dys[0], axis=self.axis, exclusive=self.exclusive, reverse=not self.reverse),)

    def to_onnx(self, b, x):
        return b.node("CumSum", [x, b.ints([self.axis], scalar=True)], exclusive=int(self.exclusive),
                      reverse=int(self.reverse))
