"""N-d convolution (ONNX Conv): strides, explicit or "same"/"valid" padding, dilation, groups.

Padding that keeps ceil(size / stride) cells has two forms where the total is odd: ONNX's SAME_UPPER
(TensorFlow's `SAME`: the odd cell at the end) and SAME_LOWER (at the start). `same_upper` and
`same_lower` name them; `same` is PyTorch's `padding='same'`, which is SAME_UPPER at stride 1, and
is refused where a stride makes the two differ (or may, on a free dim), so that no one gets
TensorFlow's asymmetric padding without asking for it."""

from __future__ import annotations

import math

from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..dims import Dim, dim_max, dim_prod
from ..types import ITEMSIZE, TensorType, nbytes
from .base import (Drawn, Example, In, NoVjp, Op, ShapeError, as_list, const_int, label_ints, label_per_axis,
                   label_window, ports, require_float, same_dtype)
from .depthwise import flat_scratch, flat_windows, is_depthwise_2d

Pads = int | list[int] | Literal["same", "same_upper", "same_lower", "valid"]
SAME = ("same", "same_upper", "same_lower")


def resolve_pads(pads: Pads, n: int, what: str = "pads") -> list[int] | str:
    """Explicit pads as [begin_1..begin_n, end_1..end_n]; 'same...'/'valid' pass through."""
    if isinstance(pads, str):
        return pads
    if isinstance(pads, int):
        pads = [pads] * (2 * n)
    elif len(pads) == n:
        pads = list(pads) * 2
    elif len(pads) != 2 * n:
        raise ShapeError(f"{what} needs 1, {n} or {2 * n} values for {n} spatial axes, got {len(pads)}")
    if any(p < 0 for p in pads):
        raise ShapeError(f"{what} must be non-negative, got {pads}")
    return list(pads)


def window_output(size: Dim, kernel: int, stride: int, dilation: int, pads, axis: int, n: int,
                  ceil_mode: bool = False) -> tuple[Dim, tuple]:
    """Output length of a sliding window along one axis, and the (begin, end) pads when known."""
    span = dilation * (kernel - 1) + 1
    if pads in SAME:
        return size.ceil_div(stride), (pads,)
    begin, end = (0, 0) if pads == "valid" else (pads[axis], pads[axis + n])
    padded = size + begin + end
    if padded.is_const() and padded.value < span:
        raise ShapeError(f"window of {span} does not fit spatial dim {size} (padded to {padded})")
    if ceil_mode:
        out = (padded - span).ceil_div(stride) + 1
        # the last window must start inside the input or the begin padding (ONNX/PyTorch rule)
        if out.is_const() and size.is_const() and (out.value - 1) * stride >= size.value + begin:
            out = out - 1
    else:
        out = (padded - span) // stride + 1
    if out.is_const() and out.value < 1:
        raise ShapeError(f"output length {out} along spatial axis {axis} is not positive")
    return out, (begin, end)


def same_pads(size: int, kernel: int, stride: int, dilation: int, pads: str = "same") -> tuple[int, int]:
    """Output ceil(size/stride): the odd pad cell at the end (same, same_upper) or the start (same_lower)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    if pads == "same_lower":
        return total - total // 2, total // 2
    return total // 2, total - total // 2


def check_same(pads, spatial, kernel: list[int], strides: list[int], dilations: list[int]) -> None:
    """Refuse `same` where a stride makes SAME_UPPER and SAME_LOWER differ, or may (a free dim)."""
    if pads != "same":
        return
    for i, (d, k, s, dl) in enumerate(zip(spatial, kernel, strides, dilations)):
        if s == 1:
            continue
        total = same_pads(d.value, k, s, dl) if d.is_const() else None
        if total is None or (total[0] + total[1]) % 2:
            found = (f"pads {total[0]} + {total[1]} on spatial axis {i} ({d} cells)" if total else
                     f"the pads on spatial axis {i} depend on the free dim {d}")
            raise ShapeError(f"pads 'same' with stride {s}: {found}, so the odd cell could go at either end; write "
                             "same_upper (at the end, TensorFlow's SAME; PyTorch refuses padding='same' with a "
                             "stride) or same_lower (at the start), or explicit pads")


def onnx_pads(pads, spatial, kernel, strides, dilations) -> dict | None:
    """The ONNX padding attributes of a window op over these spatial dims, or None where no
    attribute can say them: 'same' on a free dim where onnxruntime's auto_pad would pad otherwise.
    'same' is written out as explicit pads wherever the dims are known."""
    if pads == "valid":
        return {}
    if pads not in SAME:
        return {"pads": pads}
    # at stride 1 the pads are the dilated kernel's span less one, whatever the size
    if not all(d.is_const() or s == 1 for d, s in zip(spatial, strides)):
        if not auto_pad_agrees(kernel, strides, dilations):
            return None
        return {"auto_pad": "SAME_LOWER" if pads == "same_lower" else "SAME_UPPER"}
    amounts = [same_pads(d.value if d.is_const() else 1, k, s, dl, pads)
               for d, k, s, dl in zip(spatial, kernel, strides, dilations)]
    return {"pads": [a for a, _ in amounts] + [e for _, e in amounts]}


def auto_pad_agrees(kernel, strides, dilations) -> bool:
    """Whether onnxruntime can run auto_pad SAME_UPPER/SAME_LOWER as same_pads pads: it refuses
    dilations with them when the model runs (and pads as same_pads does otherwise, strides past
    the kernel included)."""
    return all(d == 1 for d in dilations)


def same_pads_tensor(b, spatial, kernel, strides, dilations, pads) -> str:
    """ONNX Pad's pads input [0, 0, begins..., 0, 0, ends...] for 'same' on free dims, computed from
    the input's shape at run time by same_pads' formula."""
    begins, ends = [], []
    for size, k, s, dl in zip(spatial, kernel, strides, dilations):
        total = dim_max(size.ceil_div(s) * s - s + dl * (k - 1) + 1 - size, 0)
        half = total // 2
        begin, end = (total - half, half) if pads == "same_lower" else (half, total - half)
        begins.append(begin)
        ends.append(end)
    return b.dims_tensor([0, 0] + begins + [0, 0] + ends)


def windows(x: np.ndarray, kernel: list[int], strides: list[int], dilations: list[int],
            out: list[int]) -> np.ndarray:
    """A read-only view [N, C, *out, *kernel] of every window of an already padded x."""
    n = len(kernel)
    spatial = x.strides[2:]
    shape = x.shape[:2] + tuple(out) + tuple(kernel)
    # one window along an axis has no step to take: a stride past int64 (2^62) must not overflow
    strides = x.strides[:2] + tuple(spatial[i] * strides[i] if out[i] > 1 else 0 for i in range(n)) + \
        tuple(spatial[i] * dilations[i] for i in range(n))
    return as_strided(x, shape, strides, writeable=False)


def pad_amounts(shape: tuple, kernel, strides, dilations, pads, out) -> list[tuple[int, int]]:
    n = len(kernel)
    result = []
    for i in range(n):
        size = shape[2 + i]
        if pads in SAME:
            result.append(same_pads(size, kernel[i], strides[i], dilations[i], pads))
            continue
        begin, end = (0, 0) if pads == "valid" else (pads[i], pads[i + n])
        # ceil_mode may need cells past the end padding; they never win a max nor count in a mean
        need = (out[i] - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 - (size + begin)
        result.append((begin, max(end, need)))
    return result


# im2col is made for as many images at a time as fit in this many bytes (at least one): a batch's
# matrix at once would be as large as the activations themselves, and no faster to multiply.
IM2COL_BYTES = 16 << 20


def images_per_chunk(batch: int, per_image_bytes: int) -> int:
    """How many images' im2col matrices conv makes at a time."""
    return max(1, min(batch, IM2COL_BYTES // max(per_image_bytes, 1)))


class Conv(Op):
    """N-d convolution (ONNX Conv): x [N, C, *spatial], w [M, C/groups, *kernel], optional bias [M]."""

    name = "conv"
    fresh = True
    onnx = "Conv"
    convolution = True
    inputs = ports("x", "w", optional=("b",))
    strides: int | list[int] = 1
    pads: Pads = 0
    dilations: int | list[int] = 1
    groups: int = 1
    examples = (
        Example((In((2, 3, 9, 8)), In((4, 3, 3, 3)), In((4,))), {"strides": 2, "pads": 1}),
        Example((In((1, 4, 7, 7)), In((6, 2, 3, 3)), None), {"groups": 2, "dilations": 2, "pads": [1, 2, 0, 1]}),
        Example((In((2, 4, 10)), In((4, 1, 3)), In((4,))), {"groups": 4, "pads": "same", "strides": 3}),
        Example((In((1, 2, 6, 5)), In((3, 2, 2, 3)), None), {"pads": "same"}),
        Example((In((1, 2, 7, 6)), In((3, 2, 3, 2)), None), {"pads": "same_lower", "strides": 2}),
        Example((In((1, 2, 7, 6)), In((3, 2, 3, 3)), None), {"pads": "same_upper", "strides": [2, 3]}),
    )

    def geometry(self, x: TensorType, w: TensorType):
        n = x.rank - 2
        if n < 1 or w.rank != x.rank:
            raise ShapeError(f"conv needs x [N, C, *spatial] and w [M, C/groups, *kernel] of one rank, got x {x} and w {w}")
        kernel = [const_int(d, "kernel size") for d in w.shape[2:]]
        return (n, kernel, as_list(self.strides, n, "strides", positive=True), as_list(self.dilations, n, "dilations", positive=True),
                resolve_pads(self.pads, n))

    def infer(self, x: TensorType, w: TensorType, b: TensorType | None = None) -> TensorType:
        dtype = same_dtype(x, w)
        require_float(x)
        n, kernel, strides, dilations, pads = self.geometry(x, w)
        if self.groups < 1:
            raise ShapeError(f"groups must be positive, got {self.groups}")
        channels, out_channels = x.shape[1], w.shape[0]
        if channels != w.shape[1] * self.groups:
            raise ShapeError(f"input has {channels} channels but w {w} expects {w.shape[1]} per group "
                             f"x {self.groups} group{'s' if self.groups > 1 else ''} = {w.shape[1] * self.groups}")
        if out_channels.is_const() and out_channels.value % self.groups:
            raise ShapeError(f"{out_channels} output channels do not divide into {self.groups} groups")
        if b is not None and (b.rank != 1 or b.shape[0] != out_channels or b.dtype != dtype):
            raise ShapeError(f"bias must be {dtype}[{out_channels}], got {b}")
        check_same(pads, x.shape[2:], kernel, strides, dilations)
        spatial = [window_output(x.shape[2 + i], kernel[i], strides[i], dilations[i], pads, i, n)[0]
                   for i in range(n)]
        return TensorType(dtype, (x.shape[0], out_channels, *spatial))

    def compute(self, x, w, b=None):
        return self.prepare(x.shape, w.shape)(x, w, b)

    def prepare(self, x_shape, w_shape, b_shape=None):
        n = len(x_shape) - 2
        kernel = list(w_shape[2:])
        strides = as_list(self.strides, n, "strides", positive=True)
        dilations = as_list(self.dilations, n, "dilations", positive=True)
        pads = resolve_pads(self.pads, n)
        out = [int(window_output(Dim(x_shape[2 + i]), kernel[i], strides[i], dilations[i], pads, i, n)[0])
               for i in range(n)]
        amounts = pad_amounts(x_shape, kernel, strides, dilations, pads, out)
        padding = [(0, 0), (0, 0)] + amounts if any(a or e for a, e in amounts) else None
        g, (batch, channels), m = self.groups, x_shape[:2], w_shape[0]
        positions, taps = int(np.prod(out)), int(np.prod(kernel))
        y_shape, bias_shape = (batch, m) + tuple(out), (1, -1) + (1,) * n
        # a 1x1 kernel with stride 1 and no padding: the input already is the matrix
        pointwise = taps == 1 and strides == [1] * n and padding is None
        per_image = channels * taps * positions                    # one image's im2col entries
        order = (0, 1) + tuple(range(2 + n, 2 + 2 * n)) + tuple(range(2, 2 + n))
        flat = is_depthwise_2d(n, channels, g)

        def conv(x, w, b=None):
            if flat:
                y = np.empty(y_shape, x.dtype)
                flat_windows(x, w, b, y, amounts, strides, dilations)
                return y
            wg = w.reshape(g, m // g, -1)
            y = np.empty(y_shape, x.dtype)
            step = batch if pointwise else images_per_chunk(batch, per_image * x.itemsize)
            for start in range(0, batch, step):
                part = x[start:start + step]
                if pointwise:
                    cols = part.reshape(len(part), g, channels // g, positions)
                else:
                    view = windows(np.pad(part, padding) if padding else part, kernel, strides, dilations, out)
                    # im2col: [images, groups, C/groups * taps, positions], one copy, one GEMM per group
                    cols = view.transpose(order).reshape(len(part), g, -1, positions)
                np.matmul(wg, cols, out=y[start:start + step].reshape(len(part), g, m // g, positions))
            if b is not None:
                y += b.reshape(bias_shape)
            return y
        return conv

    def to_onnx(self, b, x, w, bias=None):
        n, kernel, strides, dilations, pads = self.geometry(b.type_of(x), b.type_of(w))
        spatial = b.type_of(x).shape[2:]
        padding = onnx_pads(pads, spatial, kernel, strides, dilations)
        if padding is None:
            x, padding = b.node("Pad", [x, same_pads_tensor(b, spatial, kernel, strides, dilations, pads)]), {}
        attrs = dict(strides=strides, dilations=dilations, group=self.groups, kernel_shape=kernel, **padding)
        return b.node("Conv", [x, w] + ([bias] if bias else []), **attrs)

    def macs(self, ins, outs) -> Dim:
        w = ins[1]
        return dim_prod(outs[0].shape) * dim_prod(w.shape[1:])

    def vjp(self, g, xs, ys, dys):
        # the input's cotangent is the transposed convolution of dy; the weight's, per kernel tap,
        # the product of dy with the input cells that tap read
        x, w, b = (tuple(xs) + (None,))[:3]
        tx, dy = g.type_of(x), dys[0]
        n, kernel, strides, dilations, pads = self.geometry(tx, g.type_of(w))
        geometry = explicit_geometry(tx, kernel, strides, dilations, pads, g.type_of(dy))
        begins, ends, extra = geometry
        dx = g.emit("conv_transpose", dy, w, strides=strides, pads=begins + ends, dilations=dilations,
                    output_padding=extra, groups=self.groups)
        dw = window_products(g, x, dy, kernel, strides, dilations, begins + ends, self.groups)
        db = g.emit("reduce_sum", dy, axes=[0] + list(range(2, 2 + n)), keepdims=False) if b is not None else None
        return dx, dw, db

    def scratch_bytes(self, ins, outs) -> int:
        # the padded images and their im2col matrix (every output position times C/groups * taps
        # for each group), for as many images at a time as compute takes
        x, w = ins[0], ins[1]
        images = int(x.shape[0])
        n, kernel, strides, dilations, pads = self.geometry(x, w)
        shape = tuple(int(d) for d in x.shape)
        out = [int(d) for d in outs[0].shape[2:]]
        if is_depthwise_2d(n, shape[1], self.groups):
            amounts = pad_amounts(shape, kernel, strides, dilations, pads, out)
            return flat_scratch(shape, [int(d) for d in w.shape], amounts, strides, dilations, out,
                                ITEMSIZE[x.dtype]) * ITEMSIZE[x.dtype]
        per_image = int(x.shape[1]) * int(np.prod([int(d) for d in w.shape[2:]])) * \
            int(np.prod([int(d) for d in outs[0].shape[2:]])) * ITEMSIZE[x.dtype]
        step = images_per_chunk(images, per_image)
        # the padded image, which pads 'same' with a huge dilation make huge
        amounts = pad_amounts(shape, kernel, strides, dilations, pads, out)
        padded = shape[1] * math.prod(shape[2 + i] + a + b for i, (a, b) in enumerate(amounts)) * ITEMSIZE[x.dtype]
        return (padded + per_image) * step

    def label(self, node: Drawn) -> str:
        return conv_label(self, node)

    def call_label(self, node: Drawn) -> str:
        return conv_label(self, node)


def refuse_free_spatial_dims(dims, what: str) -> None:
    """Refuse a vjp whose window geometry depends on free dims, saying which and how to fix them:
    the pads and output_padding of the backward depend on each size's value."""
    free = sorted({s for d in dims for s in d.symbols()})
    if free:
        given = " ".join(f"--dim {s}=N" for s in free)
        raise NoVjp(f"{what} over free spatial dims ({', '.join(free)}) has no vjp: give them sizes "
                    f"({given} on the command line, or gn.load(spec, {{{', '.join(repr(s) + ': N' for s in free)}}}))")


def explicit_geometry(x: TensorType, kernel, strides, dilations, pads, y: TensorType):
    """A window op's pads as explicit begins and ends (with the cells ceil_mode's last windows
    reach past them), and the cells at each end of x that no window reaches (the conv_transpose
    output_padding that gives x's length back)."""
    n = len(kernel)
    refuse_free_spatial_dims(list(x.shape[2:]) + list(y.shape[2:]), "a window op")
    sizes = [d.value for d in x.shape[2:]]
    amounts = pad_amounts((0, 0, *sizes), kernel, strides, dilations, pads, [d.value for d in y.shape[2:]])
    begins, ends = [a for a, _ in amounts], [e for _, e in amounts]
    extra = [sizes[i] + begins[i] + ends[i] - ((y.shape[2 + i].value - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1)
             for i in range(n)]
    return begins, ends, extra


def window_products(g, x: str, dy: str, kernel, strides, dilations, pads, groups: int) -> str:
    """The weight cotangent of conv(x, w) for dy, [M, C/groups, *kernel]: per kernel tap, the cells
    of padded x that tap reads (a strided slice) times dy, summed over the batch and positions
    as one matmul per group. (Also conv_transpose's, whose weight plays conv's for dy.)"""
    tx, ty = g.type_of(x), g.type_of(dy)
    n = len(kernel)
    channels, m = tx.shape[1], ty.shape[1]
    if any(pads):
        x = g.emit("pad", x, pads=[0, 0] + list(pads[:n]) + [0, 0] + list(pads[n:]))
    front = [1, 0] + list(range(2, 2 + n))
    per_group = lambda v, c: g.emit("reshape", g.emit("transpose", v, perm=front), shape=[groups, c // groups, -1])
    dy_rows = _swap_last(g, per_group(dy, m))                              # [groups, N*positions, M/groups]
    out = [d.value for d in ty.shape[2:]]
    taps = []
    for tap in np.ndindex(*kernel):
        starts = [k * d for k, d in zip(tap, dilations)]
        cells = g.emit("slice", x, starts=starts, ends=[s + (o - 1) * st + 1 for s, o, st in zip(starts, out, strides)],
                       axes=list(range(2, 2 + n)), steps=list(strides))
        product = g.emit("matmul", per_group(cells, channels), dy_rows)   # [groups, C/groups, M/groups]
        taps.append(g.emit("unsqueeze", product, axes=[3]))
    stacked = g.emit("concat", *taps, axis=3) if len(taps) > 1 else taps[0]
    return g.emit("reshape", g.emit("transpose", stacked, perm=[0, 2, 1, 3]),
                  shape=[m, channels // groups] + list(kernel))


def _swap_last(g, v: str) -> str:
    return g.emit("transpose", v, perm=[0, 2, 1])


def conv_label(op, node: Drawn) -> str:
    """A convolution's geometry: kernel, out channels, stride, groups, dilation (`3x3,128,stride 2`)."""
    x, w, out = node.ins[0], node.ins[1], node.outs[0]
    kernel = [node.dim(d) for d in w.shape[2:]]
    parts = label_window(kernel, label_per_axis(op.strides, len(kernel)))
    parts.insert(1, node.dim(out.shape[1]))
    if op.groups > 1:
        parts.append("depthwise" if x.shape[1] == op.groups else f"groups {op.groups}")
    if any(v != "1" for v in label_ints(op.dilations)):
        parts.append("dilation " + "x".join(label_ints(op.dilations)))
    return ",".join(parts)
