"""softmax and log_softmax along one axis (ONNX opset >= 13 semantics)."""

from __future__ import annotations

import numpy as np

from .base import Drawn, Example, In, Op, TensorType, axis_index, label_axis, require_float


class _AlongAxis(Op):
    axis: int = -1
    examples = (Example((In((2, 3, 5), low=-10, high=10),)), Example((In((4, 6)),), {"axis": 0}))

    def infer(self, x: TensorType) -> TensorType:
        require_float(x)
        axis_index(self.axis, x.rank)
        return x

    def to_onnx(self, b, x):
        return b.node(self.onnx, [x], axis=self.axis)

    def label(self, node: Drawn) -> str:
        return label_axis(self.axis, node)

class Softmax(_AlongAxis):
    """exp(x) / sum(exp(x)) along `axis`, computed stably."""

    name = "softmax"
    fresh = True
    inplace = (0,)
    onnx = "Softmax"

    def compute(self, x, out=None):
        # into `out` (the scores, when nothing reads them after: attention's) or one new array
        e = np.subtract(x, x.max(axis=self.axis, keepdims=True), out=out)
        np.exp(e, out=e)
        e *= np.reciprocal(_sums(e, self.axis))
        return e

    def vjp(self, g, xs, ys, dys):
        y, dy = ys[0], dys[0]
        inner = g.emit("reduce_sum", g.emit("mul", dy, y), axes=[self.axis], keepdims=True)
        return (g.emit("mul", y, g.emit("sub", dy, inner)),)


def _sums(e: np.ndarray, axis: int) -> np.ndarray:
    """The sums along `axis`, kept as an axis of 1. Along the last axis they are einsum's, about
    3x faster than NumPy's sum of rows 128 long (attention's [8, 8, 128, 128] scores: 0.10-0.14
    against 0.37-0.41 ms); float16 is summed in float32, as its sum does."""
    if axis_index(axis, e.ndim) != e.ndim - 1:
        return e.sum(axis=axis, keepdims=True)
    return np.einsum("...i->...", e, dtype=np.result_type(e.dtype, np.float32))[..., None]


class LogSoftmax(_AlongAxis):
    """log(softmax(x)) along `axis`, computed stably."""

    name = "log_softmax"
    fresh = True
    onnx = "LogSoftmax"

    def compute(self, x):
        shifted = x - x.max(axis=self.axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=self.axis, keepdims=True))

    def vjp(self, g, xs, ys, dys):
        total = g.emit("reduce_sum", dys[0], axes=[self.axis], keepdims=True)
        return (g.emit("sub", dys[0], g.emit("mul", g.emit("exp", ys[0]), total)),)
