"""Resize (ONNX Resize, nearest and linear) over the spatial axes of [N, C, *spatial].

PyTorch's interpolate maps onto ONNX's coordinate modes: `nearest` is asymmetric with nearest_mode
floor; `nearest-exact` is half_pixel with round_prefer_ceil; `bilinear`/`linear` with
align_corners=False is half_pixel, with align_corners=True it is align_corners. (pytorch_half_pixel,
which maps an output of length 1 to the input's first cell, is what older PyTorch exports wrote;
PyTorch itself now samples such an output at the input's centre, as half_pixel does.)"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..dims import Dim, as_dim, format_shape
from .base import Drawn, Example, In, NoVjp, Op, ShapeError, TensorType, along_axis_transposed, label_number

DimValue = int | Dim
Coordinates = Literal["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
Rounding = Literal["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


class Resize(Op):
    """Resize the spatial axes of [N, C, *spatial] by `scales` (one per spatial axis; each output
    length, in * scale, must be a whole number) or to `sizes`, with `mode` nearest or linear
    (bilinear for two axes) and ONNX's `coordinate_transformation_mode` and `nearest_mode`.
    PyTorch's `nearest` is asymmetric + floor, `nearest-exact` half_pixel + round_prefer_ceil,
    `bilinear` half_pixel, or align_corners with align_corners=True."""

    name = "resize"
    fresh = True
    onnx = "Resize"
    scales: list[float] | None = None
    sizes: list[DimValue] | None = None
    mode: Literal["nearest", "linear"] = "nearest"
    coordinate_transformation_mode: Coordinates = "half_pixel"
    nearest_mode: Rounding = "round_prefer_floor"
    examples = (Example((In((1, 2, 3, 4)),), {"scales": [2.0, 2.0], "coordinate_transformation_mode": "asymmetric",
                                               "nearest_mode": "floor"}),
                Example((In((2, 3, 4, 5)),), {"sizes": [7, 3], "mode": "linear",
                                               "coordinate_transformation_mode": "pytorch_half_pixel"}),
                Example((In((1, 2, 3, 5)),), {"sizes": [5, 8], "mode": "linear",
                                               "coordinate_transformation_mode": "align_corners"}),
                Example((In((1, 2, 6)),), {"scales": [1.5], "mode": "linear"}),
                Example((In((1, 1, 5, 3)),), {"sizes": [3, 7], "coordinate_transformation_mode": "half_pixel",
                                               "nearest_mode": "round_prefer_ceil"}),
                Example((In((1, 2, 4, 4)),), {"scales": [0.5, 0.5], "mode": "linear"}))

    def spatial_out(self, spatial: tuple[Dim, ...]) -> tuple[Dim, ...]:
        n = len(spatial)
        if (self.scales is None) == (self.sizes is None):
            raise ShapeError("resize needs exactly one of 'scales' or 'sizes'")
        given = self.scales if self.scales is not None else self.sizes
        if len(given) != n:
            what = "scales" if self.scales is not None else "sizes"
            raise ShapeError(f"{what} has {len(given)} values but the input has {n} spatial axes")
        if self.sizes is not None:
            sizes = tuple(as_dim(s) for s in self.sizes)
            if not all(s.is_positive() for s in sizes):
                raise ShapeError(f"sizes {format_shape(sizes)} must be positive")
            return sizes
        out = []
        for d, s in zip(spatial, self.scales):
            if not (0 < s <= 2**16):
                raise ShapeError(f"scale {s} must be positive (at most 65536)")
            # ONNX floors in * scale in float32: only a whole product means one length everywhere
            exact = float(np.float32(s))
            if exact.is_integer():
                out.append(d * int(exact))
                continue
            if not d.is_const():
                raise ShapeError(f"scale {s} on the free dim {d} may not give a whole length; give `sizes`, "
                                 "or a whole scale")
            length = exact * d.value
            if not length.is_integer() or length < 1:
                raise ShapeError(f"scale {s} on the spatial dim {d} gives {length:g}, not a whole length; "
                                 "give `sizes` instead")
            out.append(Dim(int(length)))
        return tuple(out)

    def infer(self, x: TensorType) -> TensorType:
        if x.dtype not in ("float32", "float16"):
            raise ShapeError(f"resize takes float32 or float16 (onnxruntime's Resize has no kernel for others), "
                             f"got {x}")
        if x.rank < 3:
            raise ShapeError(f"resize needs [N, C, *spatial] (rank >= 3), got {x}")
        return TensorType(x.dtype, tuple(x.shape[:2]) + self.spatial_out(tuple(x.shape[2:])))

    def _scale(self, axis: int, size_in: int, size_out: int) -> np.float32:
        if self.scales is not None:
            return np.float32(self.scales[axis])
        return np.float32(size_out) / np.float32(size_in)

    def _source(self, axis: int, size_in: int, size_out: int) -> np.ndarray:
        """The input coordinate of each output cell, in float32 as onnxruntime computes it."""
        x = np.arange(size_out, dtype=np.float32)
        scale = self._scale(axis, size_in, size_out)
        half = np.float32(0.5)
        mode = self.coordinate_transformation_mode
        if mode == "asymmetric":
            return x / scale
        if mode == "align_corners":
            if size_out == 1:
                return np.zeros(1, np.float32)
            return x * np.float32(size_in - 1) / np.float32(size_out - 1)
        if mode == "pytorch_half_pixel" and size_out == 1:
            return np.zeros(1, np.float32)
        return (x + half) / scale - half

    def _nearest(self, source: np.ndarray, size_in: int) -> np.ndarray:
        rounding = self.nearest_mode
        if rounding == "floor":
            index = np.floor(source)
        elif rounding == "ceil":
            index = np.ceil(source)
        else:
            halfway = source - np.floor(source) == 0.5
            index = np.where(halfway, np.floor(source) if rounding == "round_prefer_floor" else np.ceil(source),
                             np.round(source))
        return np.clip(index, 0, size_in - 1).astype(np.int64)

    def compute(self, x):
        return self.prepare(x.shape)(x)

    def matrices(self, x_shape) -> list[np.ndarray]:
        """Per spatial axis, the [out, in] matrix this resize applies along it: one 1 per row for
        nearest, the two lerp weights for linear (adding up where the clamped ends meet)."""
        out = []
        for axis, ((_, low, high, weight), size_in) in enumerate(zip(self._steps(x_shape), x_shape[2:])):
            m = np.zeros((len(low), size_in))
            rows = np.arange(len(low))
            if weight is None:
                m[rows, low] = 1.0
            else:
                np.add.at(m, (rows, low), 1.0 - weight.astype(np.float64))
                np.add.at(m, (rows, high), weight.astype(np.float64))
            out.append(m)
        return out

    def vjp(self, g, xs, ys, dys):
        # separable: each axis a linear map, so the cotangent goes back through each one transposed
        t = g.type_of(xs[0])
        if not all(d.is_const() for d in t.shape[2:]):
            raise NoVjp("resize's vjp needs the spatial sizes known, not free dims")
        dx = dys[0]
        for axis, m in enumerate(self.matrices([int(d) for d in t.shape])):
            dx = along_axis_transposed(g, dx, 2 + axis, m)
        return (dx,)

    def _steps(self, x_shape):
        out_spatial = [int(d) for d in self.spatial_out(tuple(Dim(d) for d in x_shape[2:]))]
        steps = []
        for axis, (size_in, size_out) in enumerate(zip(x_shape[2:], out_spatial)):
            source = self._source(axis, size_in, size_out)
            if self.mode == "nearest":
                steps.append((2 + axis, self._nearest(source, size_in), None, None))
                continue
            source = np.clip(source, 0, size_in - 1)
            low = np.floor(source).astype(np.int64)
            high = np.minimum(low + 1, size_in - 1)
            steps.append((2 + axis, low, high, (source - low).astype(np.float32)))
        return steps

    def prepare(self, x_shape):
        steps = self._steps(x_shape)

        def resize(x):
            y = x
            for axis, low, high, weight in steps:
                if weight is None:
                    y = np.take(y, low, axis=axis)
                    continue
                shape = [1] * y.ndim
                shape[axis] = -1
                w = weight.reshape(shape)
                # float32 as onnxruntime lerps (float16 too); float64, which only the vjp's finite
                # differences feed the kernel, stays float64
                work = np.result_type(x.dtype, np.float32)
                a, b = np.take(y, low, axis=axis).astype(work), np.take(y, high, axis=axis).astype(work)
                y = (a + (b - a) * w).astype(x.dtype)
            return y
        return resize

    def to_onnx(self, b, x):
        t = b.type_of(x)
        attrs = dict(mode=self.mode, coordinate_transformation_mode=self.coordinate_transformation_mode)
        if self.mode == "nearest":
            attrs["nearest_mode"] = self.nearest_mode
        if self.scales is not None:
            scales = b.const(np.asarray([1.0, 1.0] + [float(s) for s in self.scales], np.float32))
            return b.node("Resize", [x, "", scales], **attrs)
        sizes = b.dims_tensor(tuple(t.shape[:2]) + self.spatial_out(tuple(t.shape[2:])))
        return b.node("Resize", [x, "", "", sizes], **attrs)

    def label(self, node: Drawn) -> str:
        how = self.mode if self.mode == "linear" else "nearest"
        if self.scales is not None:
            return f"×{'x'.join(label_number(s) for s in self.scales)},{how}"
        return f"to {node.shape(node.outs[0].shape[2:])},{how}"
