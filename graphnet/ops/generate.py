"""Ops that make tensors from attributes: constant, range, and trilu masks."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ..dims import Dim, as_dim, format_shape
from ..types import DTYPES, FLOAT_DTYPES, INT_DTYPES, TensorType
from .base import Bounds, Example, In, Op, ShapeError, ports

# what a constant may be made as: the dtype table less the one-byte integers
CONSTANT_DTYPES = tuple(d for d in DTYPES if d not in ("int8", "uint8"))

DimValue = int | Dim
Number = int | float | bool


def _nested_shape(value) -> tuple[int, ...]:
    if isinstance(value, list):
        if not value:
            return (0,)
        inner = {_nested_shape(v) for v in value}
        if len(inner) != 1:
            raise ShapeError("a constant's nested lists must be rectangular")
        return (len(value),) + inner.pop()
    return ()


def _flat(value):
    if isinstance(value, list):
        for item in value:
            yield from _flat(item)
    else:
        yield value


class Constant(Op):
    """A literal tensor (`value`, nested lists) or a scalar `value` filled into `shape`."""

    name = "constant"
    fresh = True
    onnx = "Constant / ConstantOfShape"
    inputs = ports()
    value: Number | list
    shape: list[DimValue] | None = None
    dtype: Literal[CONSTANT_DTYPES] = "float32"
    examples = (Example((), {"value": [[1.0, 2.0], [3.0, 4.0]]}),
                Example((), {"value": 0.5, "shape": [2, 3]}),
                Example((), {"value": 7, "dtype": "int64"}))

    def infer(self) -> TensorType:
        if self.shape is not None:
            if isinstance(self.value, list):
                raise ShapeError("give either a nested-list value or a scalar value with a shape")
            for d in self.shape:
                if not as_dim(d).is_positive():
                    raise ShapeError(f"shape {format_shape(self.shape)} has a dim that is not positive")
            return TensorType(self.dtype, tuple(self.shape))
        shape = _nested_shape(self.value)
        if self.dtype in INT_DTYPES:     # NumPy would overflow or truncate where ONNX gets another value
            info = np.iinfo(self.dtype)
            for v in _flat(self.value):
                if not (float(v).is_integer() and info.min <= v <= info.max):
                    raise ShapeError(f"value {v} is not an {self.dtype} (whole numbers {info.min} to {info.max})")
        return TensorType(self.dtype, shape)

    def value_bounds(self, ins, bounds) -> Bounds | None:
        values = list(_leaves(self.value))
        if self.dtype in FLOAT_DTYPES or not values or not all(isinstance(v, int) for v in values):
            return None
        return Bounds(int(min(values)), int(max(values)), exact=True).within(self.dtype)

    def compute(self):
        if self.shape is not None:
            return np.full([int(d) for d in self.shape], self.value, dtype=self.dtype)
        return np.asarray(self.value, dtype=self.dtype)

    def vjp(self, g, xs, ys, dys):
        return ()       # no inputs: nothing to pass a cotangent to

    def to_onnx(self, b):
        if self.shape is not None and not all(as_dim(d).is_const() for d in self.shape):
            fill = np.asarray([self.value], dtype=self.dtype)
            return b.node("ConstantOfShape", [b.dims_tensor(self.shape)], value=b.tensor_proto(fill))
        return b.const(self.compute())


class Range(Op):
    """start, start + delta, ... up to (not including) limit; ints may be free dims (positions 0..T)."""

    name = "range"
    fresh = True
    onnx = "Range"
    inputs = ports()
    start: DimValue | float = 0
    limit: DimValue | float
    delta: DimValue | float = 1
    dtype: Literal["int64", "int32", "float32", "float64"] = "int64"
    examples = (Example((), {"limit": 5}), Example((), {"start": 1.5, "limit": 4.0, "delta": 0.5, "dtype": "float32"}),
                Example((), {"start": 10, "limit": 2, "delta": -3}))

    def infer(self) -> TensorType:
        if self.dtype in FLOAT_DTYPES:
            if any(isinstance(v, Dim) and not v.is_const() for v in (self.start, self.limit, self.delta)):
                raise ShapeError("a float range needs known start, limit and delta")
            return TensorType(self.dtype, (Dim(_float_length(float(self.start), float(self.limit), float(self.delta))),))
        for v in (self.start, self.limit, self.delta):
            if isinstance(v, float):
                raise ShapeError(f"an {self.dtype} range needs whole-number start, limit and delta")
        delta = as_dim(self.delta)
        if not delta.is_const() or delta.value == 0:
            raise ShapeError("delta must be a known non-zero number")
        span = as_dim(self.limit) - as_dim(self.start)
        d = delta.value
        # ONNX's shape inference and onnxruntime count the values in double precision, exact only to 2^53
        if any(as_dim(v).is_const() and abs(as_dim(v).value) > 2**53 for v in (self.start, self.limit, self.delta)):
            raise ShapeError("an int range's start, limit and delta must be at most 2^53 in size, where ONNX "
                             "counts its values exactly")
        if span.is_const():
            return TensorType(self.dtype, (Dim(max(0, -(-span.value // d))),))
        if d < 0 or not span.is_positive():
            raise ShapeError(f"cannot show that the range from {self.start} to {self.limit} is not empty")
        return TensorType(self.dtype, (span.ceil_div(d),))

    def value_bounds(self, ins, bounds) -> Bounds | None:
        # an int range of known ends holds its first and last values: start and start + (n-1)*delta
        ends = [as_dim(v) for v in (self.start, self.limit, self.delta)]
        if self.dtype in FLOAT_DTYPES or not all(d.is_const() for d in ends):
            return None
        start, _, delta = (d.value for d in ends)
        n = self.infer().shape[0].value
        if n == 0:
            return None
        last = start + (n - 1) * delta
        return Bounds(min(start, last), max(start, last), exact=True).within(self.dtype)

    def compute(self):
        if self.infer().shape[0].value == 0:   # np.arange refuses an empty span past int64 (limit -9.2e18)
            return np.zeros(0, self.dtype)
        return np.arange(_num(self.start), _num(self.limit), _num(self.delta), dtype=self.dtype)

    def vjp(self, g, xs, ys, dys):
        return ()

    def to_onnx(self, b):
        if all(not isinstance(v, Dim) or v.is_const() for v in (self.start, self.limit, self.delta)):
            return b.const(self.compute())
        parts = [b.scalar_dim(as_dim(v)) for v in (self.start, self.limit, self.delta)]
        out = b.node("Range", parts)
        return b.node("Cast", [out], to=b.onnx_dtype(self.dtype)) if self.dtype != "int64" else out


def _num(v):
    return int(v) if isinstance(v, Dim) else v


def _float_length(start: float, limit: float, delta: float) -> int:
    """How many values np.arange (and ONNX Range) make, worked out as NumPy does, without the array."""
    if not all(math.isfinite(v) for v in (start, limit, delta)):
        raise ShapeError(f"a float range needs finite start, limit and delta, got {start}, {limit}, {delta}")
    if delta == 0:
        raise ShapeError("delta must be a known non-zero number")
    span = limit - start
    steps = span / delta
    if not math.isfinite(steps):
        raise ShapeError(f"the range from {start} to {limit} by {delta} has too many values")
    if steps == 0 and span != 0:    # the quotient underflowed: NumPy makes one value, or none
        return 0 if math.copysign(1.0, steps) < 0 else 1
    return max(0, math.ceil(steps))


def _leaves(value):
    if isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


class Trilu(Op):
    """Keep the upper (or lower) triangle of the last two axes, from diagonal k; zero the rest."""

    name = "trilu"
    onnx = "Trilu"
    upper: bool = True
    k: int = 0
    examples = (Example((In((4, 5)),)), Example((In((2, 4, 4)),), {"upper": False, "k": -1}),
                Example((In((3, 3), "int64", 0, 9),), {"k": 1}))

    def infer(self, x: TensorType) -> TensorType:
        if x.rank < 2:
            raise ShapeError(f"trilu needs rank >= 2, got {x}")
        return x

    def compute(self, x):
        return np.triu(x, self.k) if self.upper else np.tril(x, self.k)

    def to_onnx(self, b, x):
        return b.node("Trilu", [x, b.ints([self.k], scalar=True)], upper=int(self.upper))

    def vjp(self, g, xs, ys, dys):
        if g.type_of(xs[0]).dtype not in FLOAT_DTYPES:
            return (None,)
        return (g.emit("trilu", dys[0], upper=self.upper, k=self.k),)
