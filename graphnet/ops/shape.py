"""Ops that move data without arithmetic: reshape, transpose, flatten, concat, split, slice, gather,
squeeze, unsqueeze, expand, tile, pad, flip. Their shape rules keep free dims symbolic."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..dims import Dim, as_dim, dim_max, dim_min, dim_prod, format_shape
from ..types import FLOAT_DTYPES, TensorType
from .base import (Bounds, Drawn, Example, In, KernelError, Op, ShapeError, axis_index, label_axis, label_folded, ports,
                   same_dtype, same_values, some_values)

DimValue = int | Dim
TO_END = 2**31   # slice ends at or beyond this mean "to the end", as ONNX's INT64_MAX does


class Reshape(Op):
    """To `shape`, one entry of which may be -1 (the rest of the elements); a 0 copies the input's
    dim at that position (ONNX's rule, allowzero 0); free dims stay symbolic."""

    name = "reshape"
    onnx = "Reshape"
    shape: list[DimValue]
    examples = (Example((In((2, 3, 4)),), {"shape": [6, -1]}),
                Example((In((2, 12)),), {"shape": [2, 3, 2, 2]}),
                Example((In((2, 3, 4)),), {"shape": [0, -1, 2]}))

    def infer(self, x: TensorType) -> TensorType:
        return TensorType(x.dtype, self.target(x.shape))

    def target(self, in_shape) -> tuple[Dim, ...]:
        dims = [as_dim(d) for d in self.shape]
        for i, d in enumerate(dims):
            if d == 0:
                if i >= len(in_shape):
                    raise ShapeError(f"shape {format_shape(dims)} has a 0 at position {i}, which copies the "
                                     f"input's dim {i} (ONNX's rule), but the input has rank {len(in_shape)}")
                dims[i] = as_dim(in_shape[i])
        unknown = [i for i, d in enumerate(dims) if d == -1]
        if len(unknown) > 1:
            raise ShapeError(f"shape {format_shape(dims)} has more than one -1")
        for d in dims:
            if d != -1 and not d.is_positive():
                raise ShapeError(f"shape {format_shape(dims)} has a dim that is not positive: {d}")
        total = dim_prod(in_shape)
        known = dim_prod(d for d in dims if d != -1)
        if unknown:
            try:
                rest = total // known
            except ValueError:
                rest = None
            if rest is None or rest * known != total:
                raise ShapeError(f"cannot reshape {format_shape(in_shape)} ({total} elements) to "
                                 f"{format_shape(dims)}: {total} is not a multiple of {known}")
            dims[unknown[0]] = rest
        elif known != total:
            raise ShapeError(f"cannot reshape {format_shape(in_shape)} ({total} elements) to "
                             f"{format_shape(dims)} ({known} elements)")
        return tuple(dims)

    value_bounds = same_values

    def compute(self, x):
        return x.reshape([x.shape[i] if int(d) == 0 else int(d) for i, d in enumerate(self.shape)])

    def to_onnx(self, b, x):
        return b.node("Reshape", [x, b.dims_tensor(self.onnx_target(b.type_of(x).shape))])

    def onnx_target(self, in_shape) -> list[Dim]:
        """ONNX Reshape's shape input: 0 copies an input dim in place, -1 infers one; only what is
        left unknown needs run-time shape arithmetic."""
        out = []
        unknown = 0
        for i, d in enumerate(as_dim(t) for t in self.shape):
            if d.is_const():
                out.append(d)
            elif i < len(in_shape) and in_shape[i] == d:
                out.append(Dim(0))
            else:
                out.append(d)
                unknown += 1
        if unknown == 1 and not any(d == -1 for d in out):
            out = [Dim(-1) if not d.is_const() else d for d in out]
        return out


class Transpose(Op):
    """Permute the axes by `perm` (reverse them when it is not given)."""

    name = "transpose"
    onnx = "Transpose"
    perm: list[int] | None = None
    examples = (Example((In((2, 3, 4)),), {"perm": [1, 2, 0]}), Example((In((3, 5)),)))

    def axes(self, rank: int) -> list[int]:
        return list(self.perm) if self.perm is not None else list(range(rank))[::-1]

    def infer(self, x: TensorType) -> TensorType:
        perm = self.axes(x.rank)
        if sorted(perm) != list(range(x.rank)):
            raise ShapeError(f"perm {perm} is not a permutation of the {x.rank} axes of {x}")
        return TensorType(x.dtype, tuple(x.shape[p] for p in perm))

    value_bounds = same_values

    def compute(self, x):
        return np.transpose(x, self.axes(x.ndim))

    def to_onnx(self, b, x):
        return b.node("Transpose", [x], perm=self.axes(b.type_of(x).rank))


class Flatten(Op):
    """ONNX Flatten: a 2-D result, the axes before `axis` and from `axis` on each multiplied out."""

    name = "flatten"
    onnx = "Flatten"
    axis: int = 1
    examples = (Example((In((2, 3, 4, 5)),)), Example((In((2, 3, 4)),), {"axis": 2}))

    def infer(self, x: TensorType) -> TensorType:
        if not -x.rank <= self.axis <= x.rank:
            raise ShapeError(f"axis {self.axis} is out of range for rank {x.rank}")
        axis = self.axis + x.rank if self.axis < 0 else self.axis    # ONNX: -1 is the last axis
        return TensorType(x.dtype, (dim_prod(x.shape[:axis]), dim_prod(x.shape[axis:])))

    value_bounds = same_values

    def compute(self, x):
        axis = self.axis + x.ndim if self.axis < 0 else self.axis
        return x.reshape(int(np.prod(x.shape[:axis])), -1)

    def to_onnx(self, b, x):
        return b.node("Flatten", [x], axis=self.axis)

    def label(self, node: Drawn) -> str:
        return label_axis(self.axis, node)

class Concat(Op):
    """Join the inputs along `axis`; every other dim must be equal."""

    name = "concat"
    fresh = True
    onnx = "Concat"
    inputs = ports(variadic="xs")
    axis: int
    examples = (Example((In((2, 3)), In((2, 5)), In((2, 1))), {"axis": 1}),
                Example((In((1, 4)), In((3, 4))), {"axis": 0}))

    def infer(self, *xs: TensorType) -> TensorType:
        if not xs:
            raise ShapeError("concat needs at least one input")
        dtype = same_dtype(*xs)
        rank = xs[0].rank
        axis = axis_index(self.axis, rank)
        for x in xs[1:]:
            if x.rank != rank:
                raise ShapeError(f"inputs must have one rank, got {', '.join(str(t) for t in xs)}")
            for i in range(rank):
                if i != axis and x.shape[i] != xs[0].shape[i]:
                    raise ShapeError(f"inputs differ in dim {i} (not the concat axis {axis}): "
                                     + ", ".join(str(t) for t in xs))
        shape = list(xs[0].shape)
        shape[axis] = sum((x.shape[axis] for x in xs), Dim(0))
        return TensorType(dtype, tuple(shape))

    def value_bounds(self, ins, bounds) -> Bounds | None:
        if any(b is None for b in bounds):
            return None
        return Bounds(min(b.lo for b in bounds), max(b.hi for b in bounds), all(b.exact for b in bounds))

    def compute(self, *xs):
        return np.concatenate(xs, axis=self.axis)

    def to_onnx(self, b, *xs):
        return b.node("Concat", list(xs), axis=self.axis)

    def label(self, node: Drawn) -> str:
        return label_axis(self.axis, node)

class Split(Op):
    """Split along an axis into given sizes, or into `num` equal parts; outputs y0, y1, ..."""

    name = "split"
    onnx = "Split"
    axis: int = 0
    sizes: list[DimValue] | None = None
    num: int | None = None
    examples = (Example((In((2, 6)),), {"axis": 1, "sizes": [1, 2, 3]}),
                Example((In((6, 4)),), {"num": 3}))

    def count(self) -> int:
        if (self.sizes is None) == (self.num is None):
            raise ShapeError("split needs exactly one of 'sizes' or 'num'")
        return len(self.sizes) if self.sizes is not None else self.num

    def output_names(self) -> tuple[str, ...]:
        n = len(self.sizes) if self.sizes is not None else (self.num or 0)
        return tuple(f"y{i}" for i in range(n))

    def parts(self, length: Dim) -> list[Dim]:
        n = self.count()
        if n < 1:
            raise ShapeError("split needs at least one part")
        if self.sizes is not None:
            sizes = [as_dim(s) for s in self.sizes]
            if sum(sizes, Dim(0)) != length:
                raise ShapeError(f"sizes {format_shape(sizes)} add up to {sum(sizes, Dim(0))}, not {length}")
            return sizes
        part = length // n
        if part * n != length:
            raise ShapeError(f"cannot split {length} into {n} equal parts")
        return [part] * n

    def infer(self, x: TensorType) -> tuple[TensorType, ...]:
        axis = axis_index(self.axis, x.rank)
        outs = []
        for size in self.parts(x.shape[axis]):
            shape = list(x.shape)
            shape[axis] = size
            outs.append(TensorType(x.dtype, tuple(shape)))
        return tuple(outs)

    def compute(self, x):
        if self.sizes is not None:
            sizes = [int(s) for s in self.sizes]      # bound: plain numbers
        else:
            sizes = [x.shape[self.axis] // self.num] * self.num
        lead = (slice(None),) * (self.axis % x.ndim)
        ends = np.cumsum(sizes).tolist()
        return tuple(x[lead + (slice(end - size, end),)] for size, end in zip(sizes, ends))

    def to_onnx(self, b, x):
        sizes = self.parts(b.type_of(x).shape[self.axis % b.type_of(x).rank])
        if len(sizes) == 1:         # the builder's one-output node is not Split's tuple of one
            return (b.node("Identity", [x]),)
        return tuple(b.node("Split", [x, b.dims_tensor(sizes)], n_out=len(sizes), axis=self.axis))

    def label(self, node: Drawn) -> str:
        return label_axis(self.axis, node)

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
            # Python's clamping of out-of-range bounds is ONNX's; a stop of -1 (before index 0, on
            # a negative step) must not reach NumPy, which reads it as the last element.
            r = range(*slice(int(start), int(end), step).indices(x.shape[axis]))
            index[axis] = slice(r.start, r.stop if r.stop >= 0 else None, step)
        return x[tuple(index)]

    def to_onnx(self, b, x):
        rank = b.type_of(x).rank
        plan = self.plan(rank)
        ints = lambda vals: b.dims_tensor([as_dim(v) if not (isinstance(v, int) and v >= TO_END) else Dim(2**62)
                                           for v in vals])
        return b.node("Slice", [x, ints([p[1] for p in plan]), ints([p[2] for p in plan]),
                                b.ints([p[0] for p in plan]), b.ints([p[3] for p in plan])])


def _slice_length(n: Dim, start: Dim, end: Dim, step: int) -> Dim:
    if n.is_const() and start.is_const() and end.is_const():
        s, e = start.value, min(end.value, 2**62)
        return Dim(len(range(*slice(s, e, step).indices(n.value))))
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

    def label(self, node: Drawn) -> str:
        return label_folded(node)

class Unsqueeze(Op):
    """Insert axes of size 1 at the listed positions of the result."""

    name = "unsqueeze"
    onnx = "Unsqueeze"
    axes: list[int]
    examples = (Example((In((3, 4)),), {"axes": [0, 3]}), Example((In((3,)),), {"axes": [-1]}))

    def infer(self, x: TensorType) -> TensorType:
        rank = x.rank + len(self.axes)
        axes = sorted(axis_index(a, rank) for a in self.axes)
        if len(set(axes)) != len(axes):
            raise ShapeError(f"axes {self.axes} repeat an axis")
        shape, it = [], iter(x.shape)
        for i in range(rank):
            shape.append(Dim(1) if i in axes else next(it))
        return TensorType(x.dtype, tuple(shape))

    value_bounds = same_values

    def compute(self, x):
        rank = x.ndim + len(self.axes)
        return np.expand_dims(x, tuple(sorted(a % rank for a in self.axes)))

    def to_onnx(self, b, x):
        return b.node("Unsqueeze", [x, b.ints(self.axes)])


class Squeeze(Op):
    """Remove the listed axes, each of which must be 1."""

    name = "squeeze"
    onnx = "Squeeze"
    axes: list[int]
    examples = (Example((In((1, 3, 1, 4)),), {"axes": [0, 2]}),)

    def infer(self, x: TensorType) -> TensorType:
        axes = {axis_index(a, x.rank) for a in self.axes}
        if len(axes) != len(self.axes):
            raise ShapeError(f"axes {self.axes} repeat an axis")
        for a in axes:
            if x.shape[a] != 1:
                raise ShapeError(f"cannot squeeze axis {a} of {x}: it is {x.shape[a]}, not 1")
        return TensorType(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in axes))

    value_bounds = same_values

    def compute(self, x):
        return np.squeeze(x, tuple(a % x.ndim for a in self.axes))

    def to_onnx(self, b, x):
        if not self.axes:        # ONNX Squeeze without axes removes every 1; ours removes none
            return b.node("Identity", [x])
        return b.node("Squeeze", [x, b.ints(self.axes)])


class Expand(Op):
    """ONNX Expand: broadcast x and `shape` against each other (NumPy rules, both ways), so a 1 in
    `shape` keeps x's dim. Dims in `shape` may be free (`[B, T, 64]`)."""

    name = "expand"
    onnx = "Expand"
    shape: list[DimValue]
    examples = (Example((In((3, 1)),), {"shape": [2, 3, 4]}),
                Example((In((2, 1, 5)),), {"shape": [4, 1]}),
                Example((In((1,), "int64"),), {"shape": [3]}),
                Example((In((4, 1), "bool"),), {"shape": [1, 1, 6]}))

    def infer(self, x: TensorType) -> TensorType:
        dims = [as_dim(d) for d in self.shape]
        for d in dims:
            if not d.is_positive():
                raise ShapeError(f"shape {format_shape(dims)} has a dim that is not positive: {d}")
        rank = max(x.rank, len(dims))
        xs = (Dim(1),) * (rank - x.rank) + tuple(x.shape)
        ts = (Dim(1),) * (rank - len(dims)) + tuple(dims)
        out = []
        for i, (a, t) in enumerate(zip(xs, ts)):
            if a == t or t == 1:
                out.append(a)
            elif a == 1:
                out.append(t)
            else:
                sure = a.is_const() and t.is_const()
                raise ShapeError(f"cannot expand {x} to shape {format_shape(dims)}: dim {i - rank} is {a} in x "
                                 f"but {t} in shape{'' if sure else ' (not provably equal)'}; "
                                 "each pair must match or one of them be 1")
        return TensorType(x.dtype, tuple(out))

    value_bounds = same_values

    def compute(self, x):
        target = np.broadcast_shapes(x.shape, tuple(int(d) for d in self.shape))
        return np.array(np.broadcast_to(x, target))

    def to_onnx(self, b, x):
        return b.node("Expand", [x, b.dims_tensor(self.shape)])


class Tile(Op):
    """ONNX Tile: repeat x `repeats[i]` times along axis i; one positive repeat per axis."""

    name = "tile"
    onnx = "Tile"
    repeats: list[DimValue]
    examples = (Example((In((2, 3)),), {"repeats": [2, 3]}),
                Example((In((2, 1, 3)),), {"repeats": [1, 4, 1]}),
                Example((In((3,), "int64"),), {"repeats": [2]}))

    def infer(self, x: TensorType) -> TensorType:
        repeats = [as_dim(r) for r in self.repeats]
        if len(repeats) != x.rank:
            raise ShapeError(f"repeats {format_shape(repeats)} has {len(repeats)} values but x {x} has rank {x.rank}")
        for r in repeats:
            if not r.is_positive():
                raise ShapeError(f"repeats {format_shape(repeats)} has a value that is not positive: {r}")
        return TensorType(x.dtype, tuple(d * r for d, r in zip(x.shape, repeats)))

    value_bounds = same_values

    def compute(self, x):
        return np.tile(x, [int(r) for r in self.repeats])

    def to_onnx(self, b, x):
        return b.node("Tile", [x, b.dims_tensor(self.repeats)])


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
        if self.mode == "constant":
            return np.pad(x, widths, constant_values=np.asarray(self.value).astype(x.dtype))
        return np.pad(x, widths, mode=self.mode)

    def to_onnx(self, b, x):
        inputs = [x, b.dims_tensor(self.pads)]
        if self.mode == "constant" and self.value != 0:
            inputs.append(b.const(np.asarray(self.value).astype(b.dtype_of(x))))
        return b.node("Pad", inputs, mode=self.mode)


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
