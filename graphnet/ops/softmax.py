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
    onnx = "Softmax"

    def compute(self, x):
        e = x - x.max(axis=self.axis, keepdims=True)    # the one new array; the rest is in place
        np.exp(e, out=e)
        e /= e.sum(axis=self.axis, keepdims=True)
        return e

    def vjp(self, g, xs, ys, dys):
        y, dy = ys[0], dys[0]
        inner = g.emit("reduce_sum", g.emit("mul", dy, y), axes=[self.axis], keepdims=True)
        return (g.emit("mul", y, g.emit("sub", dy, inner)),)


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
