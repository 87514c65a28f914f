"""Ops that move elements to other positions by a fixed rule: depth_to_space (pixel shuffle) and
roll (a cyclic shift, Swin's shifted windows)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..dims import Dim
from .base import Drawn, Example, In, Op, ShapeError, TensorType, axis_index, same_values


class DepthToSpace(Op):
    """ONNX DepthToSpace on [N, C, H, W]: blocks of blocksize² channels become blocksize x blocksize
    patches, giving [N, C/blocksize², H*blocksize, W*blocksize]. mode CRD reads the channels as
    (C', b, b), torch.nn.PixelShuffle's order; DCR (ONNX's default) as (b, b, C')."""

    name = "depth_to_space"
    onnx = "DepthToSpace"
    blocksize: int
    mode: Literal["DCR", "CRD"] = "DCR"
    examples = (Example((In((2, 8, 3, 4)),), {"blocksize": 2}),
                Example((In((1, 18, 2, 3)),), {"blocksize": 3, "mode": "CRD"}))

    def infer(self, x: TensorType) -> TensorType:
        if x.dtype not in ("float32", "float64", "float16"):
            raise ShapeError(f"depth_to_space takes a float tensor (onnxruntime's DepthToSpace has no other), got {x}")
        if x.rank != 4:
            raise ShapeError(f"depth_to_space needs [N, C, H, W], got {x}")
        if self.blocksize < 1:
            raise ShapeError(f"blocksize must be positive, got {self.blocksize}")
        area = self.blocksize * self.blocksize
        channels = x.shape[1] // area
        if channels * area != x.shape[1]:
            raise ShapeError(f"the {x.shape[1]} channels of {x} are not a multiple of blocksize² = {area}")
        n, _, h, w = x.shape
        return TensorType(x.dtype, (n, channels, h * self.blocksize, w * self.blocksize))

    value_bounds = same_values

    def compute(self, x):
        n, c, h, w = x.shape
        b = self.blocksize
        if self.mode == "DCR":
            y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        return y.reshape(n, c // (b * b), h * b, w * b)

    def vjp(self, g, xs, ys, dys):
        # a permutation of the elements: dy goes back by the inverse reshape and transpose
        t = g.type_of(xs[0])
        n, c, h, w = t.shape
        b, channels = self.blocksize, t.shape[1] // (self.blocksize * self.blocksize)
        blocks = g.emit("reshape", dys[0], shape=[n, channels, h, b, w, b])
        if self.mode == "DCR":      # forward (n, b, b, c', h, w) -> (n, c', h, b, w, b)
            moved = g.emit("transpose", blocks, perm=[0, 3, 5, 1, 2, 4])
        else:                       # forward (n, c', b, b, h, w) -> (n, c', h, b, w, b)
            moved = g.emit("transpose", blocks, perm=[0, 1, 3, 5, 2, 4])
        return (g.emit("reshape", moved, shape=[n, c, h, w]),)

    def to_onnx(self, b, x):
        return b.node("DepthToSpace", [x], blocksize=self.blocksize, mode=self.mode)

    def label(self, node: Drawn) -> str:
        return f"block {self.blocksize}"


class Roll(Op):
    """Shift the elements cyclically by `shifts[i]` along `axes[i]` (torch.roll, numpy.roll): the
    element at index j moves to (j + shift) mod n. Lowered to two Slices and a Concat per axis, so
    each rolled axis must be of known size."""

    name = "roll"
    onnx = "Slice + Concat"
    shifts: list[int]
    axes: list[int]
    examples = (Example((In((2, 5, 4)),), {"shifts": [2, -1], "axes": [1, 2]}),
                Example((In((7,), "int64", -9, 9),), {"shifts": [10], "axes": [0]}),
                Example((In((3, 4)),), {"shifts": [0], "axes": [-1]}))

    def plan(self, x: TensorType) -> list[tuple[int, int]]:
        """(axis, shift within 0..n-1) for each listed axis."""
        if len(self.shifts) != len(self.axes):
            raise ShapeError(f"shifts {self.shifts} and axes {self.axes} must have one length")
        axes = [axis_index(a, x.rank) for a in self.axes]
        if len(set(axes)) != len(axes):
            raise ShapeError(f"axes {self.axes} repeat an axis")
        out = []
        for axis, shift in zip(axes, self.shifts):
            d = x.shape[axis]
            if not d.is_const():
                raise ShapeError(f"roll along axis {axis} needs its size known, not the free dim {d}")
            out.append((axis, shift % d.value))
        return out

    def infer(self, x: TensorType) -> TensorType:
        self.plan(x)
        return x

    value_bounds = same_values

    def compute(self, x):
        plan = self.plan(TensorType(str(x.dtype), tuple(Dim(d) for d in x.shape)))
        if not plan:
            return x
        return np.roll(x, [s for _, s in plan], [a for a, _ in plan])

    def vjp(self, g, xs, ys, dys):
        # a cyclic shift is undone by the opposite shift
        return (g.emit("roll", dys[0], shifts=[-s for s in self.shifts], axes=list(self.axes)),)

    def to_onnx(self, b, x):
        y = x
        for axis, shift in self.plan(b.type_of(x)):
            if shift == 0:
                continue
            n = b.type_of(x).shape[axis].value
            tail = b.node("Slice", [y, b.ints([n - shift]), b.ints([n]), b.ints([axis])])
            head = b.node("Slice", [y, b.ints([0]), b.ints([n - shift]), b.ints([axis])])
            y = b.node("Concat", [tail, head], axis=axis)
        return y if y != x else b.node("Identity", [x])

    def label(self, node: Drawn) -> str:
        return ",".join(f"{s} on axis {a}" for s, a in zip(self.shifts, self.axes))
