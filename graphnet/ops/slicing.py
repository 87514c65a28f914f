"""Ops that pick or place parts of a tensor: slice, gather, pad, flip, and scatter_nd, which places
what gather picks (gather's vjp). Their shape rules keep free dims symbolic."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..dims import Dim, as_dim, dim_max, dim_min, format_shape
from ..types import FLOAT_DTYPES, TensorType
from .base import (Bounds, Drawn, Example, In, KernelError, NoVjp, Op, ShapeError, axis_index, label_folded,
                   same_values, some_values, ports)

DimValue = int | Dim
TO_END = 2**31   # slice ends at or beyond this mean "to the end", as ONNX's INT64_MAX does


class Slice(Op):
    """ONNX Slice: per listed axis, start (inclusive), end (exclusive), step; negatives count from the end."""

    name = "slice"
    onnx = "Slice"
    starts: list[DimValue]
    ends: list[DimValue]
    axes: list[int] | None = None
    steps: list[int] | None = None
    examples = (Example((In((5, 6)),), {"starts": [1, 0], "ends": [4, 6], "steps": [1, 2]}),
                Example((In((4, 7)),), {"starts": [-2], "ends": [-10], "axes": [1], "steps": [-1]}),
                Example((In((3, 8)),), {"starts": [2], "ends": [2**40], "axes": [-1]}))

    def plan(self, rank: int):
        n = len(self.starts)
        axes = self.axes if self.axes is not None else list(range(n))
        steps = self.steps if self.steps is not None else [1] * n
        if not (len(self.ends) == len(axes) == len(steps) == n):
            raise ShapeError("starts, ends, axes and steps must have one length")
        if any(s == 0 for s in steps):
            raise ShapeError("a slice step cannot be 0")
        axes = [axis_index(a, rank) for a in axes]
        if len(set(axes)) != len(axes):
            raise ShapeError(f"axes {axes} repeat an axis")
        return list(zip(axes, self.starts, self.ends, steps))

    def infer(self, x: TensorType) -> TensorType:
        shape = list(x.shape)
        for axis, start, end, step in self.plan(x.rank):
            shape[axis] = _slice_length(x.shape[axis], as_dim(start), as_dim(end), step)
        return TensorType(x.dtype, tuple(shape))

    value_bounds = some_values

    def compute(self, x):
        index = [slice(None)] * x.ndim
        for axis, start, end, step in self.plan(x.ndim):
            # ONNX's clamping (onnx_slice_range); a stop of -1 (before index 0, on
            # a negative step) must not reach NumPy, which reads it as the last element.
            r = onnx_slice_range(int(start), int(end), step, x.shape[axis])
            index[axis] = slice(r.start, r.stop if r.stop >= 0 else None, step)
        return x[tuple(index)] if index else x

    def to_onnx(self, b, x):
        rank = b.type_of(x).rank
        plan = self.plan(rank)
        if not plan:        # onnxruntime cannot slice a 0-d tensor, even along no axis
            return b.node("Identity", [x])
        ints = lambda vals: b.dims_tensor([as_dim(v) if not (isinstance(v, int) and v >= TO_END) else Dim(2**62)
                                           for v in vals])
        return b.node("Slice", [x, ints([p[1] for p in plan]), ints([p[2] for p in plan]),
                                b.ints([p[0] for p in plan]), b.ints([p[3] for p in plan])])

    def vjp(self, g, xs, ys, dys):
        # dy goes back where the slice took it from, zeros elsewhere: per axis, a step of k puts
        # k - 1 zeros after each cell, a negative step is a flip, and the rest is padding
        x = g.type_of(xs[0])
        if x.dtype not in FLOAT_DTYPES:
            return (None,)
        dx, shape = dys[0], list(g.type_of(dys[0]).shape)
        for axis, start, end, step in self.plan(x.rank):
            n, m = x.shape[axis], shape[axis]
            if step == 1:
                begin = _clamped_start(n, as_dim(start))
            else:
                if not (n.is_const() and as_dim(start).is_const() and as_dim(end).is_const()):
                    raise NoVjp(f"a slice step of {step} over the free dim {n} has no vjp")
                taken = range(*slice(int(start), min(int(end), 2**62), step).indices(n.value))
                if step < 0:
                    dx = g.emit("flip", dx, axes=[axis])
                begin, m = Dim(min(taken, default=0)), Dim(len(taken))
                if abs(step) > 1 and len(taken):
                    dx = _spread(g, dx, axis, abs(step), len(taken))
                    m = Dim((len(taken) - 1) * abs(step) + 1)
            pads = [Dim(0)] * (2 * x.rank)
            pads[axis], pads[x.rank + axis] = begin, n - begin - m
            dx = g.emit("pad", dx, pads=pads)
            shape[axis] = n
        return (dx,)


def _clamped_start(n: Dim, start: Dim) -> Dim:
    if start.is_const() and start.value < 0:
        return dim_max(n + start.value, 0)
    return dim_min(start, n)


def _spread(g, dy: str, axis: int, step: int, m: int) -> str:
    """dy with step - 1 zeros after each cell along axis, less those after the last: m cells to
    (m - 1) * step + 1."""
    t = g.type_of(dy)
    inner = g.emit("unsqueeze", dy, axes=[axis + 1])
    pads = [Dim(0)] * (2 * (t.rank + 1))
    pads[t.rank + 1 + axis + 1] = Dim(step - 1)
    wide = g.emit("pad", inner, pads=pads)
    shape = list(t.shape)
    shape[axis] = Dim(m * step)
    flat = g.emit("reshape", wide, shape=shape)
    return g.emit("slice", flat, starts=[0], ends=[(m - 1) * step + 1], axes=[axis])


def onnx_slice_range(start: int, end: int, step: int, n: int) -> range:
    """The indices ONNX's Slice takes along an axis of n: a negative bound counts from the end, then
    start is clamped to [0, n] ([0, n - 1] stepping back) and end to [0, n] ([-1, n - 1]). Python's
    own clamping differs stepping back from before the start: slice(-2, -10, -1) of one element is
    empty in Python and holds it in ONNX."""
    s, e = (start + n if start < 0 else start), (end + n if end < 0 else end)
    if step > 0:
        return range(min(max(s, 0), n), min(max(e, 0), n), step)
    return range(min(max(s, 0), n - 1), min(max(e, -1), n - 1), step)


def _slice_length(n: Dim, start: Dim, end: Dim, step: int) -> Dim:
    if n.is_const() and start.is_const() and end.is_const():
        return Dim(len(onnx_slice_range(start.value, end.value, step, n.value)))
    if step < 0:
        raise ShapeError(f"a negative step over the free dim {n} is not supported")
    def clamp(v: Dim) -> Dim:
        if v.is_const() and v.value < 0:
            v = n + v.value
            return dim_max(v, 0)
        if v.is_const() and v.value >= TO_END:
            return n
        return dim_min(v, n)
    s, e = clamp(start), clamp(end)
    length = dim_max(e - s, 0)
    return length if step == 1 else (length + step - 1) // step


class Gather(Op):
    """Take `indices` along `axis` (ONNX Gather): an embedding lookup on axis 0."""

    name = "gather"
    fresh = True
    onnx = "Gather"
    inputs = ports("data", "indices")
    axis: int = 0
    examples = (Example((In((10, 4)), In((2, 3), "int64", 0, 10))),
                Example((In((3, 5, 2)), In((4,), "int64", -5, 5)), {"axis": 1}))

    def infer(self, data: TensorType, indices: TensorType) -> TensorType:
        if indices.dtype not in ("int64", "int32"):
            raise ShapeError(f"indices must be int64 or int32, got {indices}")
        axis = axis_index(self.axis, data.rank)
        return TensorType(data.dtype, data.shape[:axis] + indices.shape + data.shape[axis + 1:])

    def value_bounds(self, ins, bounds) -> Bounds | None:
        n, given = ins[0].shape[self.axis], bounds[1]
        if given is not None and given.exact and n.is_const():
            bad = given.hi if given.hi >= n.value else given.lo if given.lo < -n.value else None
            if bad is not None:
                raise ShapeError(f"indices reach {bad} (they run from {given.lo} to {given.hi}), "
                                 + self.valid(n.value))
        return some_values(self, ins, bounds)

    def compute(self, data, indices):
        n = data.shape[self.axis]
        if indices.size and (indices.min() < -n or indices.max() >= n):
            where = tuple(int(i) for i in np.argwhere((indices < -n) | (indices >= n))[0])
            at = f"indices[{', '.join(map(str, where))}] is" if where else "the index is"
            raise KernelError(f"{at} {indices[where]}, " + self.valid(n))
        return np.take(data, indices, axis=self.axis)

    def valid(self, n: int) -> str:
        return f"out of range for the {n} entries of data along axis {self.axis} (valid: {-n} to {n - 1})"

    def to_onnx(self, b, data, indices):
        return b.node("Gather", [data, indices], axis=self.axis)

    def vjp(self, g, xs, ys, dys):
        # each cotangent row is added to the row of data it was taken from: scatter_nd with add,
        # along axis 0 of data moved to the front, indices made non-negative
        data, indices = xs
        t, it = g.type_of(data), g.type_of(indices)
        if t.dtype not in FLOAT_DTYPES:
            return None, None
        axis = axis_index(self.axis, t.rank)
        n = t.shape[axis]
        # a negative index counts from the end: n is added, counted at run time when it is free
        length = g.const(n.value, it.dtype) if n.is_const() else g.emit(
            "reduce_sum", g.emit("constant", value=1, dtype=it.dtype, shape=[n]), keepdims=False)
        wrapped = g.emit("where", g.emit("less", indices, g.const(0, it.dtype)), g.emit("add", indices, length), indices)
        if it.dtype != "int64":
            wrapped = g.emit("cast", wrapped, to="int64")
        rows = g.emit("reshape", wrapped, shape=[-1, 1])
        dy = g.emit("transpose", dys[0], perm=_front(g.type_of(dys[0]).rank, axis, it.rank)) if axis else dys[0]
        moved = [t.shape[axis]] + [d for i, d in enumerate(t.shape) if i != axis]
        updates = g.emit("reshape", dy, shape=[-1] + moved[1:])
        dx = g.emit("scatter_nd", g.zeros(TensorType(t.dtype, tuple(moved))), rows, updates, reduction="add")
        if axis:
            back = list(range(1, axis + 1)) + [0] + list(range(axis + 1, t.rank))
            dx = g.emit("transpose", dx, perm=back)
        return dx, None

    def label(self, node: Drawn) -> str:
        return label_folded(node)

class Pad(Op):
    """ONNX Pad: `pads` is [begin_0, begin_1, ..., end_0, end_1, ...], one begin and one end per axis,
    none negative. mode constant fills with `value`; reflect mirrors without repeating the edge
    (each pad at most dim - 1); edge repeats the edge."""

    name = "pad"
    onnx = "Pad"
    pads: list[DimValue]
    mode: Literal["constant", "reflect", "edge"] = "constant"
    value: float = 0.0
    examples = (Example((In((2, 3)),), {"pads": [1, 0, 0, 2]}),
                Example((In((1, 2, 4, 5)),), {"pads": [0, 0, 1, 2, 0, 0, 2, 1], "value": -1.5}),
                Example((In((2, 4, 5)),), {"pads": [0, 3, 1, 0, 2, 4], "mode": "reflect"}),
                Example((In((3, 4)),), {"pads": [2, 1, 0, 3], "mode": "edge"}),
                Example((In((3, 2), "int64", -5, 5),), {"pads": [1, 1, 1, 1], "value": 7}))

    def amounts(self, rank: int) -> list[tuple[Dim, Dim]]:
        pads = [as_dim(p) for p in self.pads]
        if len(pads) != 2 * rank:
            raise ShapeError(f"pads has {len(pads)} values but a rank-{rank} input needs {2 * rank} "
                             "(begins for every axis, then ends)")
        for p in pads:
            if p.known_sign() not in (0, 1):
                raise ShapeError(f"pads {format_shape(pads)} has a negative value: {p}")
        return list(zip(pads[:rank], pads[rank:]))

    def infer(self, x: TensorType) -> TensorType:
        amounts = self.amounts(x.rank)
        if self.mode != "constant" and self.value != 0:
            raise ShapeError(f"value {self.value} is used only with mode constant, not {self.mode}")
        if x.dtype not in FLOAT_DTYPES and not float(self.value).is_integer():
            raise ShapeError(f"value {self.value} is not a whole number, but x is {x}")
        if x.dtype == "bool" and self.value not in (0, 1):
            raise ShapeError(f"value {self.value} must be 0 or 1 to pad a bool tensor")
        if self.mode == "reflect":
            for axis, (d, (begin, end)) in enumerate(zip(x.shape, amounts)):
                for p in (begin, end):
                    if d.is_const() and p.is_const() and p.value > d.value - 1:
                        raise ShapeError(f"reflect pad {p} on axis {axis} of {x} is too large: at most {d.value - 1} "
                                         "(the dim - 1)")
        return TensorType(x.dtype, tuple(d + begin + end for d, (begin, end) in zip(x.shape, amounts)))

    def compute(self, x):
        widths = [(int(begin), int(end)) for begin, end in self.amounts(x.ndim)]
        if not widths:     # a 0-d x: nothing to pad (np.pad refuses an empty width list)
            return x.copy()
        if self.mode == "constant":
            return np.pad(x, widths, constant_values=np.asarray(self.value).astype(x.dtype))
        return np.pad(x, widths, mode=self.mode)

    def to_onnx(self, b, x):
        if b.type_of(x).rank == 0:     # nothing to pad, and onnxruntime's Pad refuses a 0-d tensor
            return b.node("Identity", [x])
        inputs = [x, b.dims_tensor(self.pads)]
        if self.mode == "constant" and self.value != 0:
            inputs.append(b.const(np.asarray(self.value).astype(b.dtype_of(x))))
        return b.node("Pad", inputs, mode=self.mode)

    def vjp(self, g, xs, ys, dys):
        x = g.type_of(xs[0])
        if x.dtype not in FLOAT_DTYPES:
            return (None,)
        dx = dys[0]
        for axis, (begin, end) in enumerate(self.amounts(x.rank)):
            dx = self._fold_axis(g, dx, axis, x.shape[axis], begin, end)
        return (dx,)

    def _fold_axis(self, g, dy: str, axis: int, n: Dim, begin: Dim, end: Dim) -> str:
        """dy with the cells padded along `axis` taken off, and (reflect, edge) added to the cells
        of x they copy."""
        part = lambda start, stop: g.emit("slice", dy, starts=[start], ends=[stop], axes=[axis])
        dx = part(begin, begin + n) if begin != 0 or end != 0 else dy
        if self.mode == "constant":
            return dx
        rank = g.type_of(dy).rank

        def placed(v: str, before: Dim, after: Dim) -> str:
            pads = [Dim(0)] * (2 * rank)
            pads[axis], pads[rank + axis] = before, after
            return g.emit("pad", v, pads=pads)

        for size, start, at_begin in ((begin, Dim(0), True), (end, begin + n, False)):
            if size == 0:
                continue
            cells = part(start, start + size)
            if self.mode == "edge":        # every padded cell copies the edge cell
                total = g.emit("reduce_sum", cells, axes=[axis], keepdims=True)
                dx = g.emit("add", dx, placed(total, Dim(0), n - 1) if at_begin else placed(total, n - 1, Dim(0)))
            else:                          # reflect: the padded cells mirror x without its edge
                mirrored = g.emit("flip", cells, axes=[axis])
                dx = g.emit("add", dx, placed(mirrored, Dim(1), n - 1 - size) if at_begin
                            else placed(mirrored, n - 1 - size, Dim(1)))
        return dx


class Flip(Op):
    """Reverse the order of elements along `axes` (every axis when none are listed); lowered to an
    ONNX Slice with step -1."""

    name = "flip"
    onnx = "Slice (steps -1)"
    axes: list[int] | None = None
    examples = (Example((In((3, 4)),), {"axes": [1]}),
                Example((In((2, 3, 4)),), {"axes": [0, -1]}),
                Example((In((2, 5)),)),
                Example((In((5,), "int64", 0, 9),), {"axes": [0]}))

    def normalized(self, rank: int) -> list[int]:
        if self.axes is None:
            return list(range(rank))
        axes = [axis_index(a, rank) for a in self.axes]
        if len(set(axes)) != len(axes):
            raise ShapeError(f"axes {self.axes} repeat an axis")
        return axes

    def infer(self, x: TensorType) -> TensorType:
        self.normalized(x.rank)
        return x

    value_bounds = same_values

    def compute(self, x):
        return np.flip(x, self.normalized(x.ndim)).copy()

    def to_onnx(self, b, x):
        axes = self.normalized(b.type_of(x).rank)
        if not axes:
            return b.node("Identity", [x])
        n = len(axes)
        return b.node("Slice", [x, b.ints([-1] * n), b.ints([-2**63] * n), b.ints(axes), b.ints([-1] * n)])

    def vjp(self, g, xs, ys, dys):
        if g.type_of(xs[0]).dtype not in FLOAT_DTYPES:
            return (None,)
        return (g.emit("flip", dys[0], axes=self.axes),)


def _front(rank: int, axis: int, index_rank: int) -> list[int]:
    """The perm that moves the index axes of a gather's output (at axis..axis+index_rank) to the front."""
    taken = list(range(axis, axis + index_rank))
    return taken + [i for i in range(rank) if i not in taken]


class ScatterNd(Op):
    """ONNX ScatterND: a copy of data with `updates` written at `indices` (each index row picks a
    slice of data by its leading axes); reduction add adds them, so repeated indices accumulate.
    It places what gather takes: gather's vjp."""

    name = "scatter_nd"
    fresh = True
    onnx = "ScatterND"
    inputs = ports("data", "indices", "updates")
    reduction: Literal["none", "add"] = "none"
    no_vjp = "its vjp needs gather_nd, which graphnet does not have (it is only made by gather's vjp)"
    examples = (Example((In((5, 3)), In((4, 1), "int64", values=[[0], [3], [1], [4]]), In((4, 3)))),
                Example((In((6, 2)), In((2, 3, 1), "int64", values=[[[0], [2], [0]], [[5], [2], [2]]]), In((2, 3, 2))),
                        {"reduction": "add"}),
                Example((In((3, 4)), In((2, 2), "int64", values=[[0, 1], [2, 3]]), In((2,)))))

    def infer(self, data: TensorType, indices: TensorType, updates: TensorType) -> TensorType:
        if indices.dtype != "int64":
            raise ShapeError(f"indices must be int64, got {indices}")
        k = indices.shape[-1] if indices.rank else Dim(0)
        if indices.rank < 1 or not k.is_const() or not 1 <= k.value <= data.rank:
            raise ShapeError(f"indices must be [..., k] with k from 1 to data's rank {data.rank}, got {indices}")
        want = tuple(indices.shape[:-1]) + tuple(data.shape[k.value:])
        if updates.shape != want or updates.dtype != data.dtype:
            raise ShapeError(f"updates must be {data.dtype}[{', '.join(map(str, want))}] for data {data} and "
                             f"indices {indices}, got {updates}")
        return data

    def compute(self, data, indices, updates):
        k = indices.shape[-1]
        rows = indices.reshape(-1, k)
        bounds = np.asarray(data.shape[:k])
        if rows.size and ((rows < -bounds).any() or (rows >= bounds).any()):
            raise KernelError(f"an index of {rows.tolist()} is out of range for data of shape {list(data.shape)}")
        out = np.array(data)
        where = tuple(rows.T)
        values = updates.reshape((-1,) + data.shape[k:])
        if self.reduction == "add":
            np.add.at(out, where, values)
        else:
            out[where] = values
        return out

    def to_onnx(self, b, data, indices, updates):
        return b.node("ScatterND", [data, indices, updates], **({"reduction": "add"} if self.reduction == "add" else {}))
