"""Normalizations: batch_norm (inference form, running statistics) and layer_norm."""

from __future__ import annotations

import numpy as np

from .base import Example, In, OnnxFloat, Op, ShapeError, TensorType, axis_index, ports, require_float


class BatchNorm(Op):
    """y = (x - mean) / sqrt(var + epsilon) * scale + bias, per channel (axis 1)."""

    name = "batch_norm"
    fresh = True
    onnx = "BatchNormalization"
    inputs = ports("x", "scale", "bias", "mean", "var")
    epsilon: OnnxFloat = 1e-5
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
            # ONNX types the statistics apart from x, but onnxruntime runs only one dtype for all five
            # and NumPy would promote the output to the widest: one dtype keeps the back ends as one.
            if t.dtype != x.dtype:
                raise ShapeError(f"{port.name} must have x's dtype {x.dtype}, got {t}")
        return x

    def compute(self, x, scale, bias, mean, var):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        inv = (scale / np.sqrt(var + x.dtype.type(self.epsilon))).astype(x.dtype)
        return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)

    def to_onnx(self, b, x, scale, bias, mean, var):
        return b.node("BatchNormalization", [x, scale, bias, mean, var], epsilon=float(self.epsilon))

    def vjp(self, g, xs, ys, dys):
        # the inference form, an affine map per channel of its statistics; train mode's batch
        # statistics are a rewrite into primitives before autodiff (transforms/mode.py)
        x, scale, bias, mean, var = xs
        dy, t = dys[0], g.type_of(x)
        per_channel = [0] + list(range(2, t.rank))
        shape = [1, t.shape[1]] + [1] * (t.rank - 2)
        column = lambda v: g.emit("reshape", v, shape=shape)
        rstd = g.emit("reciprocal", g.emit("sqrt", g.emit("add", var, g.const(self.epsilon, t.dtype))))
        inv = g.emit("mul", scale, rstd)
        total = lambda v: g.emit("reduce_sum", v, axes=per_channel, keepdims=False)
        centered = g.emit("sub", x, column(mean))
        dy_centered = total(g.emit("mul", dy, centered))
        dbias = total(dy)
        dvar = g.emit("mul", dy_centered, g.emit("mul", inv, g.emit("mul", rstd, rstd)))
        return (g.emit("mul", dy, column(inv)), g.emit("mul", dy_centered, rstd), dbias,
                g.emit("neg", g.emit("mul", dbias, inv)), g.emit("mul", dvar, g.const(-0.5, t.dtype)))


class LayerNorm(Op):
    """Normalize over the axes from `axis` to the last; scale and bias have those axes' shape."""

    name = "layer_norm"
    fresh = True
    onnx = "LayerNormalization"
    inputs = ports("x", "scale", optional=("bias",))
    axis: int = -1
    epsilon: OnnxFloat = 1e-5
    examples = (Example((In((2, 3, 8)), In((8,)), In((8,)))),
                Example((In((2, 3, 4)), In((3, 4)), None), {"axis": 1, "epsilon": 1e-6}))

    def infer(self, x: TensorType, scale: TensorType, bias: TensorType | None = None) -> TensorType:
        require_float(x)
        axis = axis_index(self.axis, x.rank)
        normalized = x.shape[axis:]
        for name, t in (("scale", scale), ("bias", bias)):
            if t is not None and t.shape != normalized:
                raise ShapeError(f"{name} must be [{', '.join(map(str, normalized))}] for {x}, got {t}")
            if t is not None and t.dtype != x.dtype:    # ONNX LayerNormalization: one dtype for all
                raise ShapeError(f"{name} must have x's dtype {x.dtype}, got {t}")
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

    def vjp(self, g, xs, ys, dys):
        # the statistics are recomputed (two reductions) rather than kept from the forward
        x, scale, bias = (tuple(xs) + (None,))[:3]
        dy, t = dys[0], g.type_of(x)
        axes = list(range(axis_index(self.axis, t.rank), t.rank))
        mean = lambda v: g.emit("reduce_mean", v, axes=axes, keepdims=True)
        centered = g.emit("sub", x, mean(x))
        rstd = g.emit("reciprocal", g.emit("sqrt", g.emit("add", mean(g.emit("mul", centered, centered)),
                                                          g.const(self.epsilon, t.dtype))))
        normed = g.emit("mul", centered, rstd)
        dnormed = g.emit("mul", dy, scale)
        inner = g.emit("add", mean(dnormed), g.emit("mul", normed, mean(g.emit("mul", dnormed, normed))))
        dx = g.emit("mul", rstd, g.emit("sub", dnormed, inner))
        dscale = g.unbroadcast(g.emit("mul", dy, normed), g.type_of(scale))
        return dx, dscale, (g.unbroadcast(dy, g.type_of(bias)) if bias is not None else None)
