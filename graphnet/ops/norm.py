"""Normalizations: batch_norm (inference form, running statistics), layer_norm and group_norm."""

from __future__ import annotations

import math

import numpy as np

from ..types import ITEMSIZE, nbytes
from .base import Drawn, Example, In, OnnxFloat, Op, ShapeError, TensorType, axis_index, ports, require_float


class BatchNorm(Op):
    """y = (x - mean) / sqrt(var + epsilon) * scale + bias, per channel (axis 1). `momentum` is
    ONNX's, the share of the old running statistics kept by a train-mode step (PyTorch's momentum
    0.1 is 0.9 here); inference does not read it."""

    name = "batch_norm"
    fresh = True
    onnx = "BatchNormalization"
    inputs = ports("x", "scale", "bias", "mean", "var")
    epsilon: OnnxFloat = 1e-5
    momentum: OnnxFloat = 0.9
    examples = (Example((In((2, 3, 4, 5)), In((3,)), In((3,)), In((3,)), In((3,), low=0.1, high=2.0))),
                Example((In((4, 6)), In((6,)), In((6,)), In((6,)), In((6,), low=0.1, high=2.0)), {"epsilon": 1e-3}))

    def infer(self, x: TensorType, *stats: TensorType) -> TensorType:
        require_float(x)
        if not 0.0 <= self.momentum <= 1.0:
            raise ShapeError(f"momentum must be from 0 to 1 (the share of the running statistics kept), "
                             f"got {self.momentum}")
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
        return b.node("BatchNormalization", [x, scale, bias, mean, var], epsilon=float(self.epsilon),
                      momentum=float(self.momentum))

    def vjp(self, g, xs, ys, dys):
        # the inference form, an affine map per channel of its statistics; train mode's batch
        # statistics are a rewrite into primitives before autodiff (transforms/train_mode.py)
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
        # The statistics of each row (the normalized axes flattened) are einsum's sums: 2-3x faster
        # than NumPy's reductions along a row, the variance's with no squared copy of x, and on
        # the calling thread (BLAS's matrix-vector products were as fast on one thread, but woke its
        # threads for a few microseconds of work: 4 ms a product beside a busy process)
        axis = axis_index(self.axis, x.ndim)
        n = math.prod(x.shape[axis:])
        rows = x.reshape(math.prod(x.shape[:axis]), n)
        dtype = np.result_type(x.dtype, np.float32)       # float16 statistics summed in float32
        inv_n = dtype.type(1 / max(n, 1))
        mean = np.einsum("ij->i", rows, dtype=dtype)[:, None]
        mean *= inv_n
        y = rows - mean                                    # the one array as large as x
        var = np.einsum("ij,ij->i", y, y)[:, None]
        var *= inv_n
        var += dtype.type(self.epsilon)
        np.sqrt(var, out=var)
        y /= var
        y = y.reshape(x.shape)
        y *= scale
        if bias is not None:
            y += bias
        return y.astype(x.dtype, copy=False)

    def scratch_bytes(self, ins: list[TensorType], outs: list[TensorType]) -> int:
        # the centred rows, in the statistics' dtype: a float16 x's are float32, twice its bytes
        return nbytes(outs[0]) * np.dtype(np.result_type(outs[0].dtype, np.float32)).itemsize // ITEMSIZE[outs[0].dtype]

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

class GroupNorm(Op):
    """Split the C channels of [N, C, *spatial] into `groups` groups and normalize each sample's
    group over its channels and positions (torch.nn.GroupNorm), then scale and shift per channel.
    groups = C is instance normalization, groups = 1 layer normalization over [C, *spatial]."""

    name = "group_norm"
    fresh = True
    onnx = "ReduceMean/Sub/Div arithmetic"
    inputs = ports("x", optional=("scale", "bias"))
    groups: int
    epsilon: OnnxFloat = 1e-5
    examples = (Example((In((2, 6, 3, 4)), In((6,)), In((6,))), {"groups": 3}),
                Example((In((2, 4, 5)), In((4,)), In((4,))), {"groups": 4, "epsilon": 1e-6}),
                Example((In((1, 4, 2, 3)),), {"groups": 1}))

    def infer(self, x: TensorType, scale: TensorType | None = None, bias: TensorType | None = None) -> TensorType:
        require_float(x)
        if x.rank < 2:
            raise ShapeError(f"group_norm needs [N, C, ...], got {x}")
        channels = x.shape[1]
        if self.groups < 1:
            raise ShapeError(f"groups must be positive, got {self.groups}")
        if not channels.is_const() or channels.value % self.groups:
            raise ShapeError(f"the {channels} channels of {x} do not split into {self.groups} groups")
        for what, t in (("scale", scale), ("bias", bias)):
            if t is not None and (t.rank != 1 or t.shape[0] != channels or t.dtype != x.dtype):
                raise ShapeError(f"{what} must be {x.dtype}[{channels}] for {x}, got {t}")
        return x

    def compute(self, x, scale=None, bias=None):
        grouped = x.astype(np.float64).reshape(x.shape[0], self.groups, -1)
        centred = grouped - grouped.mean(axis=2, keepdims=True)
        y = (centred / np.sqrt(np.square(centred).mean(axis=2, keepdims=True) + self.epsilon)).reshape(x.shape)
        per_channel = (1, -1) + (1,) * (x.ndim - 2)
        if scale is not None:
            y = y * scale.reshape(per_channel)
        if bias is not None:
            y = y + bias.reshape(per_channel)
        return y.astype(x.dtype)

    def to_onnx(self, b, x, scale=None, bias=None):
        t = b.type_of(x)
        grouped = b.node("Reshape", [x, b.ints([0, self.groups, -1])])
        centred = b.node("Sub", [grouped, b.reduce("ReduceMean", grouped, [2], True)])
        var = b.reduce("ReduceMean", b.node("Mul", [centred, centred]), [2], True)
        std = b.node("Sqrt", [b.node("Add", [var, b.scalar(self.epsilon, t.dtype)])])
        y = b.node("Reshape", [b.node("Div", [centred, std]), b.dims_tensor(t.shape)])
        spread = b.ints(list(range(1, t.rank - 1)))
        if scale is not None:
            y = b.node("Mul", [y, b.node("Unsqueeze", [scale, spread]) if t.rank > 2 else scale])
        if bias is not None:
            y = b.node("Add", [y, b.node("Unsqueeze", [bias, spread]) if t.rank > 2 else bias])
        return y

    def vjp(self, g, xs, ys, dys):
        # layer_norm's over each sample's group, x seen as [N, groups, rest]; the per-channel scale
        # is applied to dy before the grouping, and scale and bias sum dy over all but the channels
        x, scale, bias = (tuple(xs) + (None, None))[:3]
        dy, t = dys[0], g.type_of(x)
        shape = list(t.shape)
        column = [1, shape[1]] + [1] * (t.rank - 2)
        grouped = lambda v: g.emit("reshape", v, shape=[0, self.groups, -1])
        mean = lambda v: g.emit("reduce_mean", v, axes=[2], keepdims=True)
        xg = grouped(x)
        centered = g.emit("sub", xg, mean(xg))
        rstd = g.emit("reciprocal", g.emit("sqrt", g.emit("add", mean(g.emit("mul", centered, centered)),
                                                          g.const(self.epsilon, t.dtype))))
        normed = g.emit("mul", centered, rstd)
        dnormed = grouped(dy if scale is None else g.emit("mul", dy, g.emit("reshape", scale, shape=column)))
        inner = g.emit("add", mean(dnormed), g.emit("mul", normed, mean(g.emit("mul", dnormed, normed))))
        dx = g.emit("reshape", g.emit("mul", rstd, g.emit("sub", dnormed, inner)), shape=shape)
        others = [0] + list(range(2, t.rank))
        per_channel = lambda v: g.emit("reduce_sum", v, axes=others, keepdims=False)
        dscale = None if scale is None else per_channel(g.emit("mul", dy, g.emit("reshape", normed, shape=shape)))
        return dx, dscale, (None if bias is None else per_channel(dy))

    def label(self, node: Drawn) -> str:
        return ",".join([f"{self.groups} groups"] + node.folded_names())
