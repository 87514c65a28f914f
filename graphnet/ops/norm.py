"""Normalizations: batch_norm (inference form, running statistics) and layer_norm."""

from __future__ import annotations

import numpy as np

from .base import Example, In, Op, ShapeError, TensorType, axis_index, ports, require_float


class BatchNorm(Op):
    """y = (x - mean) / sqrt(var + epsilon) * scale + bias, per channel (axis 1)."""

    name = "batch_norm"
    fresh = True
    onnx = "BatchNormalization"
    inputs = ports("x", "scale", "bias", "mean", "var")
    epsilon: float = 1e-5
    examples = (Example((In((2, 3, 4, 5)), In((3,)), In((3,)), In((3,)), In((3,), low=0.1, high=2.0))),
                Example((In((4, 6)), In((6,)), In((6,)), In((6,)), In((6,), low=0.1, high=2.0)), {"epsilon": 1e-3}))

    def infer(self, x: TensorType, *stats: TensorType) -> TensorType:
        require_float(x)
        if x.rank < 2:
            raise ShapeError(f"batch_norm needs [N, C, ...], got {x}")
        channels = x.shape[1]
        for port, t in zip(self.inputs[1:], stats):
            if t.rank != 1 or t.shape[0] != channels:
                raise ShapeError(f"{port.name} must be [{channels}] for {x}, got {t}")
        return x

    def compute(self, x, scale, bias, mean, var):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        inv = (scale / np.sqrt(var + x.dtype.type(self.epsilon))).astype(x.dtype)
        return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)

    def to_onnx(self, b, x, scale, bias, mean, var):
        return b.node("BatchNormalization", [x, scale, bias, mean, var], epsilon=float(self.epsilon))


class LayerNorm(Op):
    """Normalize over the axes from `axis` to the last; scale and bias have those axes' shape."""

    name = "layer_norm"
    fresh = True
    onnx = "LayerNormalization"
    inputs = ports("x", "scale", optional=("bias",))
    axis: int = -1
    epsilon: float = 1e-5
    examples = (Example((In((2, 3, 8)), In((8,)), In((8,)))),
                Example((In((2, 3, 4)), In((3, 4)), None), {"axis": 1, "epsilon": 1e-6}))

    def infer(self, x: TensorType, scale: TensorType, bias: TensorType | None = None) -> TensorType:
        require_float(x)
        axis = axis_index(self.axis, x.rank)
        normalized = x.shape[axis:]
        for name, t in (("scale", scale), ("bias", bias)):
            if t is not None and t.shape != normalized:
                raise ShapeError(f"{name} must be [{', '.join(map(str, normalized))}] for {x}, got {t}")
        return x

    def compute(self, x, scale, bias=None):
        axes = tuple(range(axis_index(self.axis, x.ndim), x.ndim))
        y = x - x.mean(axis=axes, keepdims=True)         # the one array as large as x; the rest in place
        inv = np.square(y).mean(axis=axes, keepdims=True)
        inv += x.dtype.type(self.epsilon)
        np.sqrt(inv, out=inv)
        y /= inv
        y *= scale
        if bias is not None:
            y += bias
        return y.astype(x.dtype, copy=False)

    def to_onnx(self, b, x, scale, bias=None):
        return b.node("LayerNormalization", [x, scale] + ([bias] if bias else []),
                      axis=self.axis, epsilon=float(self.epsilon))
