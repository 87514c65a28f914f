"""Ops that move data without arithmetic: reshape, transpose, flatten, concat, split, slice, gather,
squeeze, unsqueeze. Their shape rules keep free dims symbolic."""

from __future__ import annotations

import numpy as np

from ..dims import Dim, as_dim, dim_max, dim_min, dim_prod, format_shape
from .base import Example, In, Op, ShapeError, TensorType, axis_index, same_dtype

DimValue = int | Dim
TO_END = 2**31   # slice ends at or beyond this mean "to the end", as ONNX's INT64_MAX does


class Reshape(Op):
    name = "reshape"
    onnx = "Reshape"
    shape: list[DimValue]
    examples = (Example((In((2, 3, 4)),), {"shape": [6, -1]}),
                Example((In((2, 12)),), {"shape": [2, 3, 2, 2]}))

    def infer(self, x: TensorType) -> TensorType:
        return TensorType(x.dtype, self.target(x.shape))

    def target(self, in_shape) -> tuple[Dim, ...]:
        dims = [as_dim(d) for d in self.shape]
        unknown = [i for i, d in enumerate(dims) if d == -1]
        if len(unknown) > 1:
            raise ShapeError(f"shape {format_shape(dims)} has more than one -1")
        for d in dims:
            if d != -1 and d.known_sign() != 1:
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

    def compute(self, x):
        return x.reshape([int(d) for d in self.shape])

    def to_onnx(self, b, x):
        return b.node("Reshape", [x, b.reshape_target(b.type_of(x).shape, self.shape)])


class Transpose(Op):
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
        axis = self.axis % (x.rank + 1) if self.axis < 0 else self.axis
        return TensorType(x.dtype, (dim_prod(x.shape[:axis]), dim_prod(x.shape[axis:])))

    def compute(self, x):
        axis = self.axis % (x.ndim + 1) if self.axis < 0 else self.axis
        return x.reshape(int(np.prod(x.shape[:axis])), -1)

    def to_onnx(self, b, x):
        return b.node("Flatten", [x], axis=self.axis)


class Concat(Op):
    name = "concat"
    onnx = "Concat"
    inputs = ("*xs",)
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

    def compute(self, *xs):
        return np.concatenate(xs, axis=self.axis)

    def to_onnx(self, b, *xs):
        return b.node("Concat", list(xs), axis=self.axis)


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
        sizes = [int(s) for s in self.parts(Dim(x.shape[self.axis]))]
        return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=self.axis))

    def to_onnx(self, b, x):
        sizes = self.parts(b.type_of(x).shape[self.axis % b.type_of(x).rank])
        return tuple(b.node("Split", [x, b.dims_tensor(sizes)], n_out=len(sizes), axis=self.axis))


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

    def compute(self, x):
        index = [slice(None)] * x.ndim
        for axis, start, end, step in self.plan(x.ndim):
            start, end = int(start), int(end)
            n = x.shape[axis]
            # NumPy and ONNX agree for in-range values; clamp the sentinels ONNX allows.
            if step < 0 and end < -n:
                end = None
            elif end >= TO_END:
                end = None
            index[axis] = slice(start, end, step)
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
    name = "gather"
    onnx = "Gather"
    inputs = ("data", "indices")
    axis: int = 0
    examples = (Example((In((10, 4)), In((2, 3), "int64", 0, 10))),
                Example((In((3, 5, 2)), In((4,), "int64", -5, 5)), {"axis": 1}))

    def infer(self, data: TensorType, indices: TensorType) -> TensorType:
        if indices.dtype not in ("int64", "int32"):
            raise ShapeError(f"indices must be int64 or int32, got {indices}")
        axis = axis_index(self.axis, data.rank)
        return TensorType(data.dtype, data.shape[:axis] + indices.shape + data.shape[axis + 1:])

    def compute(self, data, indices):
        n = data.shape[self.axis]
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"gather index out of range [-{n}, {n})")
        return np.take(data, indices, axis=self.axis)

    def to_onnx(self, b, data, indices):
        return b.node("Gather", [data, indices], axis=self.axis)


class Unsqueeze(Op):
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

    def compute(self, x):
        rank = x.ndim + len(self.axes)
        return np.expand_dims(x, tuple(sorted(a % rank for a in self.axes)))

    def to_onnx(self, b, x):
        return b.node("Unsqueeze", [x, b.ints(self.axes)])


class Squeeze(Op):
    name = "squeeze"
    onnx = "Squeeze"
    axes: list[int]
    examples = (Example((In((1, 3, 1, 4)),), {"axes": [0, 2]}),)

    def infer(self, x: TensorType) -> TensorType:
        axes = {axis_index(a, x.rank) for a in self.axes}
        for a in axes:
            if x.shape[a] != 1:
                raise ShapeError(f"cannot squeeze axis {a} of {x}: it is {x.shape[a]}, not 1")
        return TensorType(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in axes))

    def compute(self, x):
        return np.squeeze(x, tuple(a % x.ndim for a in self.axes))

    def to_onnx(self, b, x):
        return b.node("Squeeze", [x, b.ints(self.axes)])
