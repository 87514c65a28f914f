"""Pooling: max_pool, avg_pool, lp_pool (ONNX semantics; strides default to the kernel, as in
PyTorch), global_avg_pool and global_max_pool."""

from __future__ import annotations

import numpy as np

from ..dims import Dim, dim_prod, format_shape
from ..types import ITEMSIZE
from .base import (Drawn, Example, In, NoVjp, Op, ShapeError, TensorType, along_axis_transposed, as_list, const_int,
                   label_per_axis, label_window, require_float)
from .conv import SAME, Pads, check_same, explicit_geometry, onnx_pads, pad_amounts, resolve_pads, window_output, windows
from .reduce import ReduceMax, ReduceMean


class _Pool(Op):
    kernel: int | list[int]
    strides: int | list[int] | None = None
    pads: Pads = 0
    dilations: int | list[int] = 1
    ceil_mode: bool = False

    def geometry(self, rank: int):
        n = rank - 2
        if n < 1:
            raise ShapeError(f"pooling needs [N, C, *spatial], got rank {rank}")
        kernel = as_list(self.kernel, n, "kernel", positive=True)
        strides = as_list(self.strides if self.strides is not None else kernel, n, "strides", positive=True)
        return n, kernel, strides, as_list(self.dilations, n, "dilations", positive=True), resolve_pads(self.pads, n)

    def infer(self, x: TensorType) -> TensorType:
        require_float(x)
        n, kernel, strides, dilations, pads = self.geometry(x.rank)
        if pads in SAME and self.ceil_mode:
            raise ShapeError(f"ceil_mode has no effect with pads '{pads}'; drop one of them")
        check_same(pads, x.shape[2:], kernel, strides, dilations)
        if self.ceil_mode:
            self._refuse_window_past_input(x)
        padding = onnx_pads(pads, x.shape[2:], kernel, strides, dilations)
        if padding is None:
            # a Pad before the pool would count its cells in a mean and shift max_pool's indices
            raise ShapeError(f"pads '{pads}' with dilations {dilations} and strides {strides} on the free spatial "
                             f"dims {format_shape(x.shape[2:])}: the pads depend on the sizes, and onnxruntime "
                             "refuses auto_pad with dilations; give explicit pads, stride 1, or fixed sizes")
        explicit = padding.get("pads")
        if explicit:     # onnxruntime's rule, for 'same' too once it is written out (PyTorch's is half the kernel)
            for i in range(n):
                if max(explicit[i], explicit[i + n]) >= kernel[i]:
                    written = "" if explicit is pads else f" (pads 'same' with dilations {dilations[i]})"
                    raise ShapeError(f"padding {max(explicit[i], explicit[i + n])}{written} must be smaller than "
                                     f"the kernel {kernel[i]}")
        spatial = [window_output(x.shape[2 + i], kernel[i], strides[i], dilations[i], pads, i, n, self.ceil_mode)[0]
                   for i in range(n)]
        return TensorType(x.dtype, tuple(x.shape[:2]) + tuple(spatial))

    def _refuse_window_past_input(self, x: TensorType) -> None:
        # Where ceil_mode would add a window starting past the input, PyTorch and onnxruntime drop it
        # but ONNX's shape rule keeps it: the exported model would disagree with itself.
        n, kernel, strides, dilations, pads = self.geometry(x.rank)
        if isinstance(pads, str):
            return
        for i in range(n):
            size = x.shape[2 + i]
            if not size.is_const():
                continue
            padded, span = size.value + pads[i] + pads[i + n], dilations[i] * (kernel[i] - 1) + 1
            if padded < span:
                continue
            windows = -(-(padded - span) // strides[i]) + 1
            if (windows - 1) * strides[i] >= size.value + pads[i]:
                raise ShapeError(f"with ceil_mode, the last window along spatial axis {i} would start past "
                                 f"the input ({size.value} padded by {pads[i]}), where ONNX and onnxruntime "
                                 "disagree on the output length; drop ceil_mode or change the padding")

    def _layout(self, shape: tuple[int, ...]):
        """The concrete geometry for an input of this shape, with the padding the windows need."""
        n, kernel, strides, dilations, pads = self.geometry(len(shape))
        out = [int(window_output(Dim(shape[2 + i]), kernel[i], strides[i], dilations[i], pads, i, n,
                                 self.ceil_mode)[0]) for i in range(n)]
        return n, kernel, strides, dilations, pads, out, pad_amounts(shape, kernel, strides, dilations, pads, out)

    def _windows(self, x: np.ndarray, fill: float):
        """Windows [N, C, *out, *kernel] over x padded with `fill`, plus the concrete geometry used."""
        geometry = self._layout(x.shape)
        n, kernel, strides, dilations, pads, out, amounts = geometry
        padded = np.pad(x, [(0, 0), (0, 0)] + amounts, constant_values=fill)
        return windows(padded, kernel, strides, dilations, out), geometry

    @staticmethod
    def _reduce_windows(padded: np.ndarray, geometry, ufunc) -> np.ndarray:
        """ufunc (max or add) over every window of an already padded x, one spatial axis at a time
        and one kernel tap at a time: a k x k window costs 2k vectorised passes over strided rows,
        where reducing a window view's k x k axes directly is many times slower."""
        n, kernel, strides, dilations, _, out, _ = geometry
        y = padded
        for d in reversed(range(n)):
            lead = (slice(None),) * (2 + d)
            taps = [y[lead + (slice(k * dilations[d], k * dilations[d] + strides[d] * (out[d] - 1) + 1, strides[d]),)]
                    for k in range(kernel[d])]
            acc = np.array(taps[0])
            for tap in taps[1:]:
                ufunc(acc, tap, out=acc)
            y = acc
        return y

    def scratch_bytes(self, ins, outs) -> int:
        # the input padded for the windows (a huge kernel with pads 'same' pads hugely), the output
        x = ins[0]
        amounts = self._layout(tuple(int(d) for d in x.shape))[-1]
        padded = int(np.prod([int(d) for d in x.shape[:2]], dtype=object)) * int(
            np.prod([int(s) + a + e for s, (a, e) in zip(x.shape[2:], amounts)], dtype=object))
        return (padded + sum(int(np.prod([int(d) for d in o.shape], dtype=object)) for o in outs)) * ITEMSIZE[x.dtype]

    def _onnx_attrs(self, x: TensorType) -> dict:
        n, kernel, strides, dilations, pads = self.geometry(x.rank)
        attrs = dict(kernel_shape=kernel, strides=strides, ceil_mode=int(self.ceil_mode),
                     **onnx_pads(pads, x.shape[2:], kernel, strides, dilations))
        if any(d != 1 for d in dilations):
            attrs["dilations"] = dilations
        return attrs

    def label(self, node: Drawn) -> str:
        n = node.ins[0].rank - 2
        kernel = label_per_axis(self.kernel, n)
        strides = kernel if self.strides is None else label_per_axis(self.strides, n)
        return ",".join(label_window(kernel, strides))

    def call_label(self, node: Drawn) -> str:
        return self.label(node)

class MaxPool(_Pool):
    """The maximum over each window; strides default to the kernel (as in PyTorch)."""

    name = "max_pool"
    fresh = True
    onnx = "MaxPool"
    examples = (Example((In((2, 3, 8, 8)),), {"kernel": 2}),
                Example((In((1, 2, 9, 7)),), {"kernel": 3, "strides": 2, "pads": 1}),
                Example((In((1, 2, 8, 8)),), {"kernel": 3, "strides": 2, "ceil_mode": True}),
                Example((In((1, 2, 11)),), {"kernel": 3, "strides": 2, "dilations": 2}))

    def compute(self, x):
        return self.prepare(x.shape)(x)

    def prepare(self, x_shape):
        geometry = self._layout(x_shape)
        padding = [(0, 0), (0, 0)] + geometry[-1]
        return lambda x: self._reduce_windows(np.pad(x, padding, constant_values=-np.inf), geometry, np.maximum)

    def to_onnx(self, b, x):
        return b.node("MaxPool", [x], **self._onnx_attrs(b.type_of(x)))

    def vjp(self, g, xs, ys, dys):
        # each window's cotangent goes to the cell that won it (the first of equal ones, as in
        # PyTorch): scatter_nd adds them at the winners' flat indices into a flat x
        x, t = xs[0], g.type_of(xs[0])
        winners = g.emit("max_pool_indices", x, **self.model_dump())
        rows = g.emit("reshape", winners, shape=[-1, 1])
        flat = g.zeros(TensorType(t.dtype, (dim_prod(t.shape),)))
        placed = g.emit("scatter_nd", flat, rows, g.emit("reshape", dys[0], shape=[-1]), reduction="add")
        return (g.emit("reshape", placed, shape=list(t.shape)),)


class MaxPoolIndices(_Pool):
    """Where each max_pool window's maximum is: ONNX MaxPool's Indices output, the flat index into
    x [N, C, *spatial] (row-major over all of x) of the window's first maximal cell. max_pool's vjp
    places the cotangents there."""

    name = "max_pool_indices"
    fresh = True
    onnx = "MaxPool (output Indices)"
    no_vjp = "its output is integer indices"
    examples = (Example((In((2, 3, 6, 6)),), {"kernel": 2}),
                Example((In((1, 2, 9, 7)),), {"kernel": 3, "strides": 2, "pads": 1}),
                Example((In((1, 2, 8, 8)),), {"kernel": 3, "strides": 2, "ceil_mode": True}),
                Example((In((1, 2, 11)),), {"kernel": 3, "strides": 2, "dilations": 2}))

    def infer(self, x: TensorType) -> TensorType:
        return TensorType("int64", super().infer(x).shape)

    def compute(self, x):
        view, (n, kernel, strides, dilations, pads, out, amounts) = self._windows(x, -np.inf)
        lead = view.shape[:2 + n]
        best = view.reshape(lead + (-1,)).argmax(axis=-1)       # the first maximum, row-major in the window
        taps = np.unravel_index(best, kernel)
        flat = np.arange(x.shape[0] * x.shape[1]).reshape(x.shape[:2] + (1,) * n)
        for i in range(n):
            start = np.arange(out[i]).reshape((-1,) + (1,) * (n - 1 - i)) * strides[i] - amounts[i][0]
            flat = flat * x.shape[2 + i] + start + taps[i] * dilations[i]
        return flat.astype(np.int64)

    def to_onnx(self, b, x):
        return b.node("MaxPool", [x], n_out=2, **self._onnx_attrs(b.type_of(x)))[1]


class AvgPool(_Pool):
    """Mean over each window; padded cells are left out of the count unless count_include_pad."""

    name = "avg_pool"
    fresh = True
    onnx = "AveragePool"
    count_include_pad: bool = False
    examples = (Example((In((2, 3, 8, 8)),), {"kernel": 2}),
                Example((In((1, 2, 9, 7)),), {"kernel": 3, "strides": 2, "pads": 1}),
                Example((In((1, 2, 9, 7)),), {"kernel": 3, "strides": 2, "pads": 1, "count_include_pad": True}),
                Example((In((1, 2, 8, 8)),), {"kernel": 3, "strides": 2, "ceil_mode": True}))

    def infer(self, x: TensorType) -> TensorType:
        if self.dilations not in (1, [1] * max(x.rank - 2, 0)):
            raise ShapeError("avg_pool does not support dilations")
        if x.dtype == "float64":
            raise ShapeError(f"avg_pool takes float32 or float16 (onnxruntime has no float64 AveragePool), got {x}")
        return super().infer(x)


    def compute(self, x):
        return self.prepare(x.shape)(x)

    def prepare(self, x_shape):
        geometry = self._layout(x_shape)
        n, kernel, strides, dilations, pads, out, amounts = geometry
        # Which padded cells count: the input, plus the declared padding if count_include_pad;
        # never the cells past it that ceil_mode adds. The counts depend on the shape alone.
        counted = np.zeros((1, 1) + tuple(s + a + e for s, (a, e) in zip(x_shape[2:], amounts)))
        region = [slice(None), slice(None)]
        for i, (begin, end) in enumerate(amounts):
            size = x_shape[2 + i]
            declared_end = end if pads in SAME else (0 if pads == "valid" else pads[i + n])
            region.append(slice(0, begin + size + declared_end) if self.count_include_pad
                          else slice(begin, begin + size))
        counted[tuple(region)] = 1
        counts = self._reduce_windows(counted, geometry, np.add)
        padding = [(0, 0), (0, 0)] + amounts

        def average(x):
            total = self._reduce_windows(np.pad(x, padding), geometry, np.add)
            total /= counts.astype(x.dtype)
            return total
        return average

    def to_onnx(self, b, x):
        attrs = self._onnx_attrs(b.type_of(x))
        return b.node("AveragePool", [x], count_include_pad=int(self.count_include_pad), **attrs)

    def vjp(self, g, xs, ys, dys):
        # a depthwise convolution by ones, divided by each window's count: its adjoint spreads
        # dy / count back over each window (conv_transpose by ones)
        x, dy = xs[0], dys[0]
        t = g.type_of(x)
        n, kernel, strides, dilations, pads = self.geometry(t.rank)
        begins, ends, extra = explicit_geometry(t, kernel, strides, dilations, pads, g.type_of(dy))
        channels = t.shape[1]
        ones = lambda shape: g.emit("constant", value=1.0, dtype=t.dtype, shape=shape)
        # each window's count: the cells of the counted region it covers (the input, with the
        # declared padding if count_include_pad; never the cells ceil_mode reaches past it)
        declared = self._layout((0, 0) + tuple(d.value for d in t.shape[2:]))[4]
        counted = list(t.shape[2:])
        reach = [(b, e) for b, e in zip(begins, ends)]
        if self.count_include_pad and declared not in ("valid",):
            own = [(begins[i], ends[i] if declared == "same" else declared[i + n]) for i in range(n)]
            counted = [d + b + e for d, (b, e) in zip(counted, own)]
            reach = [(0, e - own_e) for (_, e), (_, own_e) in zip(reach, own)]
        counts = g.emit("conv", ones([1, 1] + counted), ones([1, 1] + kernel), strides=strides,
                        pads=[b for b, _ in reach] + [e for _, e in reach])
        share = g.emit("div", dy, counts)
        return (g.emit("conv_transpose", share, ones([channels, 1] + kernel), strides=strides, pads=begins + ends,
                       output_padding=extra, groups=const_int(channels, "channels")),)


class _GlobalPool(Op):
    fresh = True

    def infer(self, x: TensorType) -> TensorType:
        require_float(x)
        if x.rank < 3:
            raise ShapeError(f"{self.name} needs [N, C, *spatial] (rank >= 3), got {x}")
        return TensorType(x.dtype, tuple(x.shape[:2]) + (Dim(1),) * (x.rank - 2))

    def to_onnx(self, b, x):
        return b.node(self.onnx, [x])


class GlobalAvgPool(_GlobalPool):
    """The mean over every spatial axis of [N, C, *spatial], kept with size 1."""

    name = "global_avg_pool"
    onnx = "GlobalAveragePool"
    examples = (Example((In((2, 3, 5, 4)),)), Example((In((2, 3, 7)),)))

    def compute(self, x):
        return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)

    def vjp(self, g, xs, ys, dys):
        # the mean over the spatial axes, kept: reduce_mean's vjp
        return ReduceMean(axes=list(range(2, g.type_of(xs[0]).rank))).vjp(g, xs, ys, dys)


class GlobalMaxPool(_GlobalPool):
    """The maximum over every spatial axis of [N, C, *spatial], kept with size 1."""

    name = "global_max_pool"
    onnx = "GlobalMaxPool"
    # onnx.reference's GlobalMaxPool reduces the wrong axes unless there are two spatial axes, so the
    # contract examples are 2-D; tests/ops/test_pool.py checks 1-D and 3-D against onnxruntime.
    examples = (Example((In((2, 3, 5, 4)),)), Example((In((1, 4, 1, 6), low=-5, high=-1),)))

    def compute(self, x):
        return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)

    def vjp(self, g, xs, ys, dys):
        return ReduceMax(axes=list(range(2, g.type_of(xs[0]).rank))).vjp(g, xs, ys, dys)


class LpPool(_Pool):
    """The p-norm of each window, (sum |x|^p)^(1/p); p = 2 is L2-norm pooling (PyTorch's lp_pool2d
    with norm_type 2, which has no padding). Padded cells are zeros, so they add nothing. ONNX
    LpPool has no dilations or ceil_mode before opset 18, so neither is offered here."""

    name = "lp_pool"
    onnx = "LpPool"
    p: int = 2
    examples = (Example((In((2, 3, 8, 8)),), {"kernel": 2}),
                Example((In((1, 2, 9, 7)),), {"kernel": 3, "strides": 2, "pads": 1}),
                Example((In((1, 2, 9, 7)),), {"kernel": [3, 2], "strides": [1, 2], "pads": [0, 1, 2, 0], "p": 1}),
                Example((In((2, 3, 10)),), {"kernel": 4, "strides": 3, "p": 3}),
                Example((In((1, 2, 7, 6)),), {"kernel": 3, "strides": 2, "pads": "same_upper"}),
                Example((In((1, 2, 7, 6)),), {"kernel": 3, "strides": 2, "pads": "same_lower"}))

    def infer(self, x: TensorType) -> TensorType:
        if self.p < 1:
            raise ShapeError(f"p must be at least 1, got {self.p}")
        if self.ceil_mode:
            raise ShapeError("lp_pool does not support ceil_mode (ONNX LpPool lacks it before opset 18)")
        if self.dilations not in (1, [1] * max(x.rank - 2, 0)):
            raise ShapeError(f"lp_pool does not support dilations, got {self.dilations} "
                             "(ONNX LpPool lacks them before opset 18)")
        return super().infer(x)

    def compute(self, x):
        cols, geometry = self._windows(x, 0.0)
        axes = tuple(range(-geometry[0], 0))
        if self.p == 1:
            return np.abs(cols).sum(axis=axes).astype(x.dtype)
        if self.p == 2:
            return np.sqrt((cols * cols).sum(axis=axes)).astype(x.dtype)
        total = (np.abs(cols) ** self.p).sum(axis=axes)
        return (total ** (1.0 / self.p)).astype(x.dtype)

    def to_onnx(self, b, x):
        attrs = self._onnx_attrs(b.type_of(x))
        attrs.pop("ceil_mode")
        return b.node("LpPool", [x], p=self.p, **attrs)

    def vjp(self, g, xs, ys, dys):
        # d y / d x_i = y^(1-p) |x_i|^(p-1) sign(x_i) for each window holding x_i: the windows'
        # dy * y^(1-p) spread back over them (conv_transpose by ones), times |x|^(p-1) sign(x)
        x, y, t = xs[0], ys[0], g.type_of(xs[0])
        n, kernel, strides, dilations, pads = self.geometry(t.rank)
        begins, ends, extra = explicit_geometry(t, kernel, strides, dilations, pads, g.type_of(y))
        if not t.shape[1].is_const():
            raise NoVjp("lp_pool over a free number of channels has no vjp")
        c = lambda v: g.const(v, t.dtype)
        share = g.emit("mul", dys[0], g.emit("pow", y, c(1.0 - self.p))) if self.p != 1 else dys[0]
        ones = g.emit("constant", value=1.0, dtype=t.dtype, shape=[t.shape[1], 1] + kernel)
        spread = g.emit("conv_transpose", share, ones, strides=strides, pads=begins + ends, output_padding=extra,
                        groups=t.shape[1].value)
        sign = g.emit("where", g.emit("less", x, c(0.0)), c(-1.0), c(1.0))
        slope = g.emit("mul", sign, g.emit("pow", g.emit("abs", x), c(float(self.p - 1)))) if self.p != 1 else sign
        return (g.emit("mul", spread, slope),)

def adaptive_bins(size_in: int, size_out: int) -> list[tuple[int, int]]:
    """torch's adaptive pooling windows: output cell i averages input cells floor(i * in / out) up to
    ceil((i + 1) * in / out), so windows may overlap or differ in length by one."""
    return [((i * size_in) // size_out, -(-((i + 1) * size_in) // size_out)) for i in range(size_out)]


def adaptive_matrix(size_in: int, size_out: int, dtype) -> np.ndarray:
    """[size_out, size_in]: row i holds 1/len over output cell i's window, 0 elsewhere."""
    m = np.zeros((size_out, size_in), dtype=np.float64)
    for i, (start, end) in enumerate(adaptive_bins(size_in, size_out)):
        m[i, start:end] = 1.0 / (end - start)
    return m.astype(dtype)


class AdaptiveAvgPool(Op):
    """The mean over windows that tile [N, C, *spatial] (one or two spatial axes) into `output_size`
    cells per axis, as torch.nn.AdaptiveAvgPool1d/2d place them: cell i of an axis of length n
    covers floor(i*n/out) to ceil((i+1)*n/out). Lowered to one MatMul per axis with a constant
    averaging matrix, so the spatial dims must be known unless output_size is 1."""

    name = "adaptive_avg_pool"
    fresh = True
    onnx = "MatMul (ReduceMean for size 1)"
    output_size: int | list[int]
    examples = (Example((In((2, 3, 7, 5)),), {"output_size": [3, 2]}),
                Example((In((1, 2, 6, 6)),), {"output_size": 6}),
                Example((In((1, 4, 10)),), {"output_size": 4}),
                Example((In((2, 3, 5, 4)),), {"output_size": 1}),
                Example((In((1, 2, 3, 3)),), {"output_size": [5, 7]}))

    def sizes(self, x: TensorType) -> list[int]:
        n = x.rank - 2
        if n not in (1, 2):
            raise ShapeError(f"adaptive_avg_pool needs [N, C, L] or [N, C, H, W], got {x}")
        sizes = as_list(self.output_size, n, "output_size", positive=True)
        for d, s in zip(x.shape[2:], sizes):
            if s != 1 and not d.is_const():
                raise ShapeError(f"adaptive_avg_pool to {s} cells needs a known spatial dim, not the free dim {d} "
                                 "(only output_size 1 works on any size)")
        return sizes

    def infer(self, x: TensorType) -> TensorType:
        if x.dtype not in ("float32", "float64", "float16"):
            raise ShapeError(f"adaptive_avg_pool needs a float tensor, got {x}")
        return TensorType(x.dtype, tuple(x.shape[:2]) + tuple(Dim(s) for s in self.sizes(x)))

    def compute(self, x):
        return self.prepare(x.shape)(x)

    def prepare(self, x_shape):
        sizes = as_list(self.output_size, len(x_shape) - 2, "output_size", positive=True)
        mats = [None if s == 1 else adaptive_matrix(d, s, np.float64) for d, s in zip(x_shape[2:], sizes)]

        def pool(x):
            y = x.astype(np.float64)
            # the last axis by a matrix on the right, the one before it (2-D) by one on the left
            y = y.mean(axis=-1, keepdims=True) if mats[-1] is None else y @ mats[-1].T
            if len(mats) == 2:
                y = y.mean(axis=2, keepdims=True) if mats[0] is None else mats[0] @ y
            return y.astype(x.dtype)
        return pool

    def vjp(self, g, xs, ys, dys):
        # each axis a mean over windows, a constant matrix: back through it transposed (an axis
        # pooled to one cell spreads dy / n, n counted at run time when free)
        t = g.type_of(xs[0])
        dx = dys[0]
        for axis, (d, s) in enumerate(zip(t.shape[2:], self.sizes(t))):
            if s != 1:
                dx = along_axis_transposed(g, dx, 2 + axis, adaptive_matrix(int(d), s, np.float64))
                continue
            shape = list(g.type_of(dx).shape)
            shape[2 + axis] = d
            spread = g.emit("expand", dx, shape=shape)
            dx = g.emit("mul", spread, g.const(1 / d.value, t.dtype)) if d.is_const() else g.emit(
                "div", spread, g.emit("reduce_sum", g.emit("constant", value=1.0, dtype=t.dtype, shape=shape),
                                      axes=[2 + axis], keepdims=True))
        return (dx,)

    def to_onnx(self, b, x):
        t = b.type_of(x)
        sizes = self.sizes(t)
        spatial = t.shape[2:]
        if sizes[-1] == 1:
            y = b.reduce("ReduceMean", x, [t.rank - 1], True)
        else:
            y = b.node("MatMul", [x, b.const(np.ascontiguousarray(adaptive_matrix(int(spatial[-1]), sizes[-1], t.dtype).T))])
        if len(sizes) == 2:
            if sizes[0] == 1:
                y = b.reduce("ReduceMean", y, [2], True)
            else:
                y = b.node("MatMul", [b.const(adaptive_matrix(int(spatial[0]), sizes[0], t.dtype)), y])
        return y

    def label(self, node: Drawn) -> str:
        return "to " + node.shape(node.outs[0].shape[2:])

    def call_label(self, node: Drawn) -> str:
        return self.label(node)
