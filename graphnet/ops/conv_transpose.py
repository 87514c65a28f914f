"""N-d transposed convolution (ONNX ConvTranspose, PyTorch conv_transpose*d): the gradient of conv
with respect to its input, used to upsample. Weight layout [C_in, C_out/groups, *kernel]."""

from __future__ import annotations

import numpy as np

from ..dims import Dim, dim_prod
from .base import (Drawn, Example, In, NoVjp, Op, ShapeError, TensorType, as_list, const_int, ports, require_float,
                   same_dtype)
from .conv import conv_label, refuse_free_spatial_dims, resolve_pads, window_products


class ConvTranspose(Op):
    """Each input cell scatters kernel-weighted copies into the output, `strides` apart:
    out = (in - 1) * stride - pad_begin - pad_end + dilation * (kernel - 1) + 1 + output_padding.
    `pads` crop the full result (one number, one per axis, or [begins..., ends...]);
    `output_padding` adds cells at the end of each axis (smaller than the stride or the dilation,
    as PyTorch requires) to pick one of the input sizes a strided conv maps to the same output."""

    name = "conv_transpose"
    onnx = "ConvTranspose"
    convolution = True
    inputs = ports("x", "w", optional=("b",))
    strides: int | list[int] = 1
    pads: int | list[int] = 0
    dilations: int | list[int] = 1
    output_padding: int | list[int] = 0
    groups: int = 1
    examples = (
        Example((In((2, 3, 5, 4)), In((3, 4, 3, 3)), In((4,))), {"strides": 2, "pads": 1, "output_padding": 1}),
        Example((In((1, 4, 5, 5)), In((4, 1, 3, 3)), None), {"groups": 4, "dilations": 2, "pads": [1, 0, 2, 1]}),
        Example((In((2, 2, 7)), In((2, 3, 4)), In((3,))), {"strides": 3, "dilations": 2, "output_padding": 2}),
        Example((In((1, 2, 3, 3, 2)), In((2, 2, 2, 2, 2)), None), {"strides": [1, 2, 1], "pads": [0, 1, 0, 0, 0, 1]}),
        Example((In((1, 3, 4, 4)), In((3, 2, 1, 1)), In((2,))), {}),
        Example((In((1, 2, 3, 5)), In((2, 3, 2, 3)), None), {"strides": [2, 1], "output_padding": [1, 0],
                                                            "pads": [0, 2]}),
    )

    def geometry(self, x: TensorType, w: TensorType):
        n = x.rank - 2
        if n < 1 or w.rank != x.rank:
            raise ShapeError(f"conv_transpose needs x [N, C_in, *spatial] and w [C_in, C_out/groups, *kernel] "
                             f"of one rank, got x {x} and w {w}")
        kernel = [const_int(d, "kernel size") for d in w.shape[2:]]
        strides = as_list(self.strides, n, "strides")
        dilations = as_list(self.dilations, n, "dilations")
        output_padding = as_list(self.output_padding, n, "output_padding")
        pads = resolve_pads(self.pads, n)
        for what, values, least in (("strides", strides, 1), ("dilations", dilations, 1), ("pads", pads, 0),
                                    ("output_padding", output_padding, 0)):
            if any(v < least for v in values):
                raise ShapeError(f"{what} must be {'positive' if least else 'non-negative'}, got {values}")
        for i in range(n):
            if output_padding[i] >= max(strides[i], dilations[i]):
                raise ShapeError(f"output_padding {output_padding[i]} on spatial axis {i} must be smaller than "
                                 f"the stride {strides[i]} or the dilation {dilations[i]}")
            if output_padding[i] - pads[i + n] >= strides[i]:
                # onnxruntime refuses output_padding >= stride; the export crops less at the end instead
                raise ShapeError(f"output_padding {output_padding[i]} on spatial axis {i}, past the end pad "
                                 f"{pads[i + n]}, must be smaller than the stride {strides[i]} (onnxruntime's "
                                 "ConvTranspose refuses more, where PyTorch allows less than the dilation)")
        return n, kernel, strides, dilations, pads, output_padding

    def spatial(self, sizes, geometry) -> list[Dim]:
        n, kernel, strides, dilations, pads, output_padding = geometry
        out = []
        for i in range(n):
            size = sizes[i]
            d = (size - 1) * strides[i] - pads[i] - pads[i + n] + dilations[i] * (kernel[i] - 1) + 1 \
                + output_padding[i]
            if d.is_const() and d.value < 1:
                raise ShapeError(f"output length {d} along spatial axis {i} is not positive: pads "
                                 f"{pads[i]} + {pads[i + n]} crop more than the {d + pads[i] + pads[i + n]} "
                                 "cells the input spreads over")
            out.append(d)
        return out

    def infer(self, x: TensorType, w: TensorType, b: TensorType | None = None) -> TensorType:
        dtype = same_dtype(x, w)
        require_float(x)
        geometry = self.geometry(x, w)
        if self.groups < 1:
            raise ShapeError(f"groups must be positive, got {self.groups}")
        channels = x.shape[1]
        if channels != w.shape[0]:
            raise ShapeError(f"input has {channels} channels but w {w} expects {w.shape[0]} "
                             "(w is [C_in, C_out/groups, *kernel])")
        if channels.is_const() and channels.value % self.groups:
            raise ShapeError(f"{channels} input channels do not divide into {self.groups} groups")
        out_channels = w.shape[1] * self.groups
        if b is not None and (b.rank != 1 or b.shape[0] != out_channels or b.dtype != dtype):
            raise ShapeError(f"bias must be [{out_channels}] (C_out = {w.shape[1]} per group x {self.groups} "
                             f"group{'s' if self.groups > 1 else ''}), got {b}")
        return TensorType(dtype, (x.shape[0], out_channels, *self.spatial(x.shape[2:], geometry)))

    def compute(self, x, w, b=None):
        geometry = self.geometry(TensorType(str(x.dtype), x.shape), TensorType(str(w.dtype), w.shape))
        n, kernel, strides, dilations, pads, _ = geometry
        sizes = x.shape[2:]
        out = [int(d) for d in self.spatial([Dim(s) for s in sizes], geometry)]
        # The uncropped result, long enough for the cropped window and output_padding's extra cells.
        full = [(sizes[i] - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 for i in range(n)]
        length = [max(full[i], pads[i] + out[i]) for i in range(n)]
        g = self.groups
        batch, channels = x.shape[:2]
        per_in, per_out = channels // g, w.shape[1]
        # Every batch row in one GEMM per run of taps, [g, taps x C_out/g, C_in/g] @ [g, C_in/g, N x
        # area], each tap's products then added where they land (an einsum per tap ran without BLAS,
        # 100x slower). A run holds enough taps for 64 output rows, so few output channels (an
        # image's gradient) still read the input a few times, not once per tap.
        xr = np.ascontiguousarray(np.moveaxis(x.reshape((batch, g, per_in, -1)), 0, 2)).reshape(g, per_in, -1)
        wt = w.reshape((g, per_in, per_out, -1)).transpose(0, 3, 2, 1).reshape(g, -1, per_in)    # [g, tap x out, in]
        taps = list(np.ndindex(*kernel))
        run = max(1, 64 // per_out)
        y = np.zeros((g, per_out, batch) + tuple(length), dtype=x.dtype)
        for first in range(0, len(taps), run):
            some = taps[first:first + run]
            products = np.matmul(wt[:, first * per_out:(first + len(some)) * per_out], xr)
            products = products.reshape((g, len(some), per_out, batch) + sizes)
            for k, tap in enumerate(some):
                # input cell p lands at p * stride + tap * dilation
                where = tuple(slice(tap[i] * dilations[i], tap[i] * dilations[i] + (sizes[i] - 1) * strides[i] + 1,
                                    strides[i]) for i in range(n))
                y[(slice(None),) * 3 + where] += products[:, k]
        y = y[(slice(None),) * 3 + tuple(slice(pads[i], pads[i] + out[i]) for i in range(n))]
        y = np.moveaxis(y.reshape((g * per_out, batch) + tuple(out)), 1, 0)
        if b is not None:
            y = y + b.reshape((1, -1) + (1,) * n)
        return np.ascontiguousarray(y, dtype=x.dtype)

    def to_onnx(self, b, x, w, bias=None):
        n, kernel, strides, dilations, pads, output_padding = self.geometry(b.type_of(x), b.type_of(w))
        pads, output_padding = list(pads), list(output_padding)
        for i in range(n):
            if output_padding[i] >= strides[i]:
                # onnxruntime refuses it; cropping fewer cells at the end gives the same ones
                # (geometry refused what remains past the end pad unless it is under the stride)
                take = min(output_padding[i], pads[i + n])
                pads[i + n] -= take
                output_padding[i] -= take
        attrs = dict(strides=strides, dilations=dilations, group=self.groups, kernel_shape=kernel, pads=pads)
        if any(output_padding):
            attrs["output_padding"] = output_padding
        return b.node("ConvTranspose", [x, w] + ([bias] if bias else []), **attrs)

    def vjp(self, g, xs, ys, dys):
        # the adjoint of conv: dx is the convolution of dy, and the weight's cotangent is conv's
        # with dy as the input and x as the output's cotangent
        x, w, b = (tuple(xs) + (None,))[:3]
        dy = dys[0]
        n, kernel, strides, dilations, pads, _ = self.geometry(g.type_of(x), g.type_of(w))
        refuse_free_spatial_dims(g.type_of(dy).shape[2:], "conv_transpose")
        dx = g.emit("conv", dy, w, strides=strides, pads=pads, dilations=dilations, groups=self.groups)
        dw = window_products(g, dy, x, kernel, strides, dilations, pads, self.groups)
        db = g.emit("reduce_sum", dy, axes=[0] + list(range(2, 2 + n)), keepdims=False) if b is not None else None
        return dx, dw, db

    def macs(self, ins, outs) -> Dim:
        """Every input element meets C_out/groups x kernel-area weights: N x C_in x input area x
        (C_out/groups) x kernel area, the count of conv seen from the other side (cropping by
        pads is not subtracted, as fvcore and ptflops count it)."""
        x, w = ins[0], ins[1]
        return dim_prod(x.shape) * dim_prod(w.shape[1:])

    def label(self, node: Drawn) -> str:
        return conv_label(self, node)

    def call_label(self, node: Drawn) -> str:
        return conv_label(self, node)
