"""Ops that move data without arithmetic: reshape, transpose, flatten, concat, split, squeeze,
unsqueeze, expand, tile (slice, gather, pad and flip are in slicing.py). Their shape rules keep free
dims symbolic; their vjps move the cotangent back the other way."""

from __future__ import annotations


import numpy as np

from ..dims import Dim, as_dim, dim_prod, format_shape
from ..types import FLOAT_DTYPES, TensorType
from .base import Bounds, Drawn, Example, In, Op, ShapeError, axis_index, label_axis, ports, same_dtype, same_values

DimValue = int | Dim


def reshape_back(g, dy: str, x: str) -> str:
    """dy reshaped to x's shape: the vjp of every op that only regroups its input's elements."""
    return g.emit("reshape", dy, shape=list(g.type_of(x).shape))


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

    def vjp(self, g, xs, ys, dys):
        return (reshape_back(g, dys[0], xs[0]),)

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
        shape = b.type_of(x).shape
        perm = self.axes(len(shape))
        # moving only axes of size 1 moves no data: a Reshape (as onnxslim would rewrite it), whose
        # 0 copies a free dim that stays where it was
        moved = [a for a in perm if shape[a] != 1]
        if perm != sorted(perm) and moved == sorted(moved) and all(
                shape[a].is_const() or a == i for i, a in enumerate(perm)):
            dims = [shape[a].value if shape[a].is_const() else 0 for a in perm]
            return b.node("Reshape", [x, b.ints(dims)])
        return b.node("Transpose", [x], perm=perm)

    def vjp(self, g, xs, ys, dys):
        perm = self.axes(g.type_of(xs[0]).rank)
        return (g.emit("transpose", dys[0], perm=[perm.index(i) for i in range(len(perm))]),)


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

    def vjp(self, g, xs, ys, dys):
        return (reshape_back(g, dys[0], xs[0]),)

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

    def vjp(self, g, xs, ys, dys):
        if g.type_of(xs[0]).dtype not in FLOAT_DTYPES:
            return (None,) * len(xs)
        axis = axis_index(self.axis, g.type_of(xs[0]).rank)
        parts = g.emit("split", dys[0], axis=axis, sizes=[g.type_of(x).shape[axis] for x in xs])
        return parts if isinstance(parts, tuple) else (parts,)

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
            if any(s.is_const() and s.value < 1 for s in sizes):
                # a negative size can still sum to the length ([-1, 3] of 2), which no back end takes
                raise ShapeError(f"split sizes must be positive, got {format_shape(sizes)}")
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

    def vjp(self, g, xs, ys, dys):
        parts = [d if d is not None else g.zeros(g.type_of(y)) for d, y in zip(dys, ys)]
        return (g.emit("concat", *parts, axis=self.axis),)

    def label(self, node: Drawn) -> str:
        return label_axis(self.axis, node)

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

    def vjp(self, g, xs, ys, dys):
        return (g.emit("squeeze", dys[0], axes=list(self.axes)),)


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

    def vjp(self, g, xs, ys, dys):
        return (reshape_back(g, dys[0], xs[0]),)


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

    def vjp(self, g, xs, ys, dys):
        if g.type_of(xs[0]).dtype not in FLOAT_DTYPES:
            return (None,)
        return (g.unbroadcast(dys[0], g.type_of(xs[0])),)


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

    def vjp(self, g, xs, ys, dys):
        # y along axis i is repeats[i] copies of x: split each axis into (copy, index), sum the copies
        x = g.type_of(xs[0])
        if x.dtype not in FLOAT_DTYPES:
            return (None,)
        split = [v for r, d in zip(self.repeats, x.shape) for v in (as_dim(r), d)]
        grouped = g.emit("reshape", dys[0], shape=split)
        return (g.emit("reduce_sum", grouped, axes=list(range(0, 2 * x.rank, 2)), keepdims=False),)
