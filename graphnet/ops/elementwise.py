"""Elementwise ops: the trivial ones as a table, each still one class with all four verbs."""

from __future__ import annotations

import functools
import operator
from typing import Callable, Literal

import numpy as np

from ..types import DTYPES, FLOAT_DTYPES
from .base import (Bounds, Drawn, Example, In, OnnxFloat, Op, ShapeError, TensorType, broadcast, label_folded, label_number,
                   ports, require_float, same_dtype, same_values)


class Elementwise(Op):
    """Applied per element (inputs broadcast as in NumPy): the output at an index reads only the
    inputs at that index, which lets rewrites batch such ops over a new leading axis."""


def _binary(op_name: str, onnx_type: str, kernel: Callable, doc: str, grad: Callable, numeric_only: bool = True,
            extra: tuple[Example, ...] = (), folds: bool = False, joins: bool = False,
            residual: bool = False, whole: Callable | None = None) -> type[Elementwise]:
    """A binary op; `grad(g, a, b, y, dy)`: the cotangents of a and b at the output's shape (the
    vjp sums them back to the inputs' shapes); `folds`: its label names the params and constants it
    reads; `joins`, `residual`: how a diagram draws it (Op.joins, Op.residual); `whole`: the op on
    Python ints, when value bounds follow it (its extremes over a box of inputs lie at the box's
    corners, as for +, - and *)."""
    class Binary(Elementwise):
        name = op_name
        onnx = onnx_type
        inputs = ports("a", "b")
        fresh = True
        inplace = (0, 1) if isinstance(kernel, np.ufunc) else ()
        examples = (
            Example((In((2, 3, 4)), In((3, 1)))),
            Example((In((5,)), In((4, 1, 5)))),
        ) + tuple(extra)

        def infer(self, a: TensorType, b: TensorType) -> TensorType:
            dtype = same_dtype(a, b)
            if numeric_only and dtype == "bool":
                raise ShapeError(f"{op_name} needs numbers, got {a} and {b}")
            return TensorType(dtype, broadcast(a.shape, b.shape))

        def value_bounds(self, ins, bounds) -> Bounds | None:
            out = Bounds.combine(*bounds, whole) if whole else None
            return out and out.within(ins[0].dtype)

        def compute(self, a, b, out=None):
            return kernel(a, b) if out is None else kernel(a, b, out=out)

        def to_onnx(self, b, x, y):
            return b.node(onnx_type, [x, y])

        def vjp(self, g, xs, ys, dys):
            if g.type_of(xs[0]).dtype not in FLOAT_DTYPES:
                return None, None
            return tuple(g.unbroadcast(d, g.type_of(x)) for d, x in zip(grad(g, *xs, ys[0], dys[0]), xs))

        def label(self, node: Drawn) -> str:
            return label_folded(node) if folds else ""

    Binary.joins, Binary.residual = joins, residual
    Binary.__name__ = Binary.__qualname__ = op_name.title().replace("_", "")
    Binary.__doc__ = doc
    return Binary


def _true_divide(a, b):
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)   # ONNX Div truncates integers
    return a / b


def _div_grad(g, a, b, y, dy):
    da = g.emit("div", dy, b)
    return da, g.emit("neg", g.emit("mul", da, y))


def _pick(g, first, dy, y, a):
    """dy where `first` is true, and 0 elsewhere, at the output's shape (y's)."""
    zero = g.const(0.0, g.type_of(dy).dtype)
    return g.emit("where", first, dy, zero), g.emit("where", first, zero, dy)


Add = _binary("add", "Add", np.add, "a + b, with NumPy broadcasting; one dtype.", lambda g, a, b, y, dy: (dy, dy),
              folds=True, joins=True, residual=True, whole=operator.add)
Sub = _binary("sub", "Sub", np.subtract, "a - b, with NumPy broadcasting.",
              lambda g, a, b, y, dy: (dy, g.emit("neg", dy)), folds=True, whole=operator.sub)
Mul = _binary("mul", "Mul", np.multiply, "a * b, with NumPy broadcasting.",
              lambda g, a, b, y, dy: (g.emit("mul", dy, b), g.emit("mul", dy, a)), folds=True, joins=True,
              whole=operator.mul)
Div = _binary("div", "Div", _true_divide, "a / b, with NumPy broadcasting; integers truncate toward zero (ONNX Div).",
              _div_grad, folds=True)
# a tie sends the whole cotangent to b (PyTorch splits it): ties between floats are rare, and pick one side
Max = _binary("max", "Max", np.maximum, "The elementwise maximum of a and b, with NumPy broadcasting.",
              lambda g, a, b, y, dy: _pick(g, g.emit("greater", a, b), dy, y, a),
              extra=(Example((In((3, 4), "int64", -5, 5), In((4,), "int64", -5, 5))),))
Min = _binary("min", "Min", np.minimum, "The elementwise minimum of a and b, with NumPy broadcasting.",
              lambda g, a, b, y, dy: _pick(g, g.emit("less", a, b), dy, y, a),
              extra=(Example((In((3, 4), "int64", -5, 5), In((4,), "int64", -5, 5))),))


class Pow(Elementwise):
    """a ** b, a float base; b broadcasts."""

    name = "pow"
    onnx = "Pow"
    inputs = ports("a", "b")
    examples = (Example((In((2, 3), low=0.1, high=3.0), In((3,), low=-2.0, high=2.0))),)

    def infer(self, a: TensorType, b: TensorType) -> TensorType:
        require_float(a, "base")
        if b.dtype == "bool":          # ONNX Pow takes numbers as exponents
            raise ShapeError(f"the exponent must be numbers, got {b}")
        return TensorType(a.dtype, broadcast(a.shape, b.shape))

    def compute(self, a, b):
        return np.power(a, b.astype(a.dtype))

    def to_onnx(self, b, x, y):
        return b.node("Pow", [x, y])

    def vjp(self, g, xs, ys, dys):
        (a, b), dtype = xs, g.type_of(xs[0]).dtype
        exponent = b if g.type_of(b).dtype == dtype else g.emit("cast", b, to=dtype)
        slope = g.emit("mul", exponent, g.emit("pow", a, g.emit("sub", exponent, g.const(1.0, dtype))))
        da = g.unbroadcast(g.emit("mul", dys[0], slope), g.type_of(a))
        if g.type_of(b).dtype != dtype:
            return da, None
        return da, g.unbroadcast(g.emit("mul", g.emit("mul", dys[0], ys[0]), g.emit("log", a)), g.type_of(b))


def _unary(op_name: str, onnx_type: str, kernel: Callable, doc: str, grad: Callable, low: float = -3.0,
           high: float = 3.0, writes_out: bool | None = None,
           floats_only: bool = True, extra: tuple[Example, ...] = ()) -> type[Elementwise]:
    """A unary op; `grad(g, x, y, dy)`: the cotangent of x."""
    if writes_out is None:     # whether kernel(x, out=...) writes its result there
        writes_out = isinstance(kernel, np.ufunc)

    class Unary(Elementwise):
        name = op_name
        onnx = onnx_type
        fresh = True
        inplace = (0,) if writes_out else ()
        examples = (Example((In((2, 3, 5), low=low, high=high),)),) + tuple(extra)

        def infer(self, x: TensorType) -> TensorType:
            if floats_only:
                require_float(x)
            elif x.dtype == "bool":
                raise ShapeError(f"{op_name} needs numbers, got {x}")
            return x

        def compute(self, x, out=None):
            return kernel(x) if out is None else kernel(x, out=out)

        def to_onnx(self, b, x):
            return b.node(onnx_type, [x])

        def vjp(self, g, xs, ys, dys):
            if g.type_of(xs[0]).dtype not in FLOAT_DTYPES:
                return (None,)
            return (grad(g, xs[0], ys[0], dys[0]),)

    Unary.__name__ = Unary.__qualname__ = op_name.title().replace("_", "")
    Unary.__doc__ = doc
    return Unary


def _sigmoid(x, out=None):
    # 1 / (1 + e^-x) in place: e^-x overflows to inf below x = -88 (float32), giving the right 0
    with np.errstate(over="ignore"):
        # on a 0-d x NumPy returns a scalar, which cannot be written in place
        y = np.negative(x, out=np.empty_like(x) if out is None else out)
        np.exp(y, out=y)
        y += 1
        return np.reciprocal(y, out=y)


_ROW = 8192


@functools.cache
def _zeros(dtype: np.dtype) -> np.ndarray:
    zeros = np.zeros(_ROW, dtype)
    zeros.flags.writeable = False
    return zeros


def _relu(x, out=None):
    # NumPy's maximum of an array and a scalar runs 2-3x slower than of two arrays (its SIMD loop
    # takes two arrays; a [1024, 2048] feed-forward: 1.0-1.4 against 0.34-0.48 ms), so a
    # contiguous x is taken in rows of a shared row of zeros, the few elements past them alone
    zero = x.dtype.type(0)
    if x.size < _ROW or not x.flags.c_contiguous or (out is not None and not out.flags.c_contiguous):
        return np.maximum(x, zero, out=out)
    out = np.empty_like(x) if out is None else out
    whole = x.size - x.size % _ROW
    xs, ys = x.reshape(-1), out.reshape(-1)
    np.maximum(xs[:whole].reshape(-1, _ROW), _zeros(x.dtype), out=ys[:whole].reshape(-1, _ROW))
    np.maximum(xs[whole:], zero, out=ys[whole:])
    return out


def _c(g, x, value: float) -> str:
    return g.const(value, g.type_of(x).dtype)


def _times(g, dy, *factors) -> str:
    for f in factors:
        dy = g.emit("mul", dy, f)
    return dy


def _hard_swish_grad(g, x, y, dy):
    # x/3 + 1/2 on (-3, 3), 0 from -3 down, 1 from 3 up: PyTorch's hardswish_backward, kinks included
    inside = _times(g, dy, g.emit("add", g.emit("mul", x, _c(g, x, 1 / 3)), _c(g, x, 0.5)))
    above = g.emit("where", g.emit("less", x, _c(g, x, 3.0)), inside, dy)
    return g.emit("where", g.emit("greater", x, _c(g, x, -3.0)), above, _c(g, dy, 0.0))


Neg = _unary("neg", "Neg", np.negative, "-x.", lambda g, x, y, dy: g.emit("neg", dy), floats_only=False)
Exp = _unary("exp", "Exp", np.exp, "e to the x.", lambda g, x, y, dy: g.emit("mul", dy, y))
Log = _unary("log", "Log", np.log, "The natural logarithm.", lambda g, x, y, dy: g.emit("div", dy, x),
             low=0.05, high=5.0)
Sqrt = _unary("sqrt", "Sqrt", np.sqrt, "The square root.",
              lambda g, x, y, dy: g.emit("div", dy, g.emit("mul", y, _c(g, y, 2.0))), low=0.0, high=5.0)
Tanh = _unary("tanh", "Tanh", np.tanh, "The hyperbolic tangent.",
              lambda g, x, y, dy: _times(g, dy, g.emit("sub", _c(g, y, 1.0), g.emit("mul", y, y))))
Sigmoid = _unary("sigmoid", "Sigmoid", _sigmoid, "The logistic function 1 / (1 + e^-x).",
                 lambda g, x, y, dy: _times(g, dy, y, g.emit("sub", _c(g, y, 1.0), y)), writes_out=True)
# the gradient at x = 0 is 0, as PyTorch's and TensorFlow's relu give it: a zero bias on a zero
# input (a padded row) then trains no weight through it in graphnet either. Read from y (y > 0
# exactly where x > 0): the backward then keeps the output, which the next layer keeps anyway,
# and not the input too.
Relu = _unary("relu", "Relu", _relu, "max(x, 0).",
              lambda g, x, y, dy: g.emit("where", g.emit("greater", y, _c(g, y, 0.0)), dy, _c(g, dy, 0.0)),
              writes_out=True)
# sign(x) dy, 0 at x = 0 as in PyTorch (an l1 loss whose prediction hits its target exactly)
Abs = _unary("abs", "Abs", np.abs, "|x|.",
             lambda g, x, y, dy: g.emit("where", g.emit("less", x, _c(g, x, 0.0)), g.emit("neg", dy),
                                        g.emit("where", g.emit("greater", x, _c(g, x, 0.0)), dy, _c(g, dy, 0.0))),
             floats_only=False, extra=(Example((In((3, 4), "int64", -9, 9),)),))
Reciprocal = _unary("reciprocal", "Reciprocal", np.reciprocal, "1 / x.",
                    lambda g, x, y, dy: g.emit("neg", _times(g, dy, y, y)), low=0.25, high=4.0,
                    extra=(Example((In((4, 3), low=-4.0, high=-0.25),)),))
Sin = _unary("sin", "Sin", np.sin, "The sine.", lambda g, x, y, dy: g.emit("mul", dy, g.emit("cos", x)),
             low=-7.0, high=7.0)
Cos = _unary("cos", "Cos", np.cos, "The cosine.",
             lambda g, x, y, dy: g.emit("neg", g.emit("mul", dy, g.emit("sin", x))), low=-7.0, high=7.0)
Softplus = _unary("softplus", "Softplus", lambda x: np.logaddexp(x.dtype.type(0), x).astype(x.dtype),
                  "log(1 + e^x).", lambda g, x, y, dy: g.emit("mul", dy, g.emit("sigmoid", x)), low=-12.0, high=12.0)
HardSwish = _unary("hard_swish", "HardSwish",
                   lambda x: (x * np.clip(x / x.dtype.type(6) + x.dtype.type(0.5), 0, 1)).astype(x.dtype),
                   "x * max(0, min(1, x / 6 + 1/2)): ONNX HardSwish, PyTorch's Hardswish.", _hard_swish_grad,
                   low=-5.0, high=5.0)


class Clip(Elementwise):
    """Clamp to [min, max]; relu6 is clip with min 0, max 6."""

    name = "clip"
    onnx = "Clip"
    min: OnnxFloat | None = None
    max: OnnxFloat | None = None
    examples = (Example((In((3, 4), low=-8, high=8),), {"min": 0.0, "max": 6.0}),
                Example((In((5,)),), {"min": -0.5}))

    def infer(self, x: TensorType) -> TensorType:
        require_float(x)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ShapeError(f"min {self.min} is greater than max {self.max}")
        return x

    fresh = True
    inplace = (0,)

    def compute(self, x, out=None):
        lo = None if self.min is None else x.dtype.type(self.min)
        hi = None if self.max is None else x.dtype.type(self.max)
        return np.clip(x, lo, hi, out=out)

    def to_onnx(self, b, x):
        lo = b.scalar(self.min, b.dtype_of(x)) if self.min is not None else ""
        hi = b.scalar(self.max, b.dtype_of(x)) if self.max is not None else ""
        return b.node("Clip", [x, lo, hi])

    def vjp(self, g, xs, ys, dys):
        # strictly inside the bounds only, as PyTorch's clamp and ReLU6 give it: 0 at a bound. y is
        # inside exactly where x is, and read instead of x it is all the backward keeps (as relu's)
        y, dy = ys[0], dys[0]
        zero = _c(g, dy, 0.0)
        if self.min is not None:
            dy = g.emit("where", g.emit("greater", y, _c(g, y, self.min)), dy, zero)
        if self.max is not None:
            dy = g.emit("where", g.emit("less", y, _c(g, y, self.max)), dy, zero)
        return (dy,)

    def label(self, node: Drawn) -> str:
        return f"{label_number(self.min)}..{label_number(self.max)}"

class LeakyRelu(Elementwise):
    """x where x >= 0, else alpha * x."""

    name = "leaky_relu"
    onnx = "LeakyRelu"
    alpha: OnnxFloat = 0.01
    examples = (Example((In((4, 5)),), {"alpha": 0.2}),)

    def infer(self, x: TensorType) -> TensorType:
        require_float(x)
        return x

    def compute(self, x):
        return np.where(x >= 0, x, x * x.dtype.type(self.alpha))

    def to_onnx(self, b, x):
        return b.node("LeakyRelu", [x], alpha=float(self.alpha))

    def vjp(self, g, xs, ys, dys):
        x, dy = xs[0], dys[0]
        # alpha at x = 0, as PyTorch gives it
        return (g.emit("where", g.emit("greater", x, _c(g, x, 0.0)), dy, g.emit("mul", dy, _c(g, x, self.alpha))),)


class Dropout(Elementwise):
    """Inference semantics, the identity; in train mode (transforms/train_mode.py) it drops each entry
    with probability `ratio`, on a keep mask fed as an input, and scales the rest by 1 / (1 - ratio)."""

    name = "dropout"
    onnx = "Identity"
    ratio: OnnxFloat = 0.5
    examples = (Example((In((2, 6)),), {"ratio": 0.1}),)

    def infer(self, x: TensorType) -> TensorType:
        if not 0.0 <= self.ratio < 1.0:
            raise ShapeError(f"ratio must be in [0, 1), got {self.ratio}")
        return x

    def compute(self, x):
        return x

    def to_onnx(self, b, x):
        return b.node("Identity", [x])

    def vjp(self, g, xs, ys, dys):
        return dys[:1]

    def label(self, node: Drawn) -> str:
        return label_number(self.ratio)

class Where(Elementwise):
    """a where cond is true, else b, all three broadcast together."""

    name = "where"
    fresh = True
    onnx = "Where"
    inputs = ports("cond", "a", "b")
    examples = (Example((In((3, 1), "bool"), In((3, 4)), In((4,)))),)

    def infer(self, cond: TensorType, a: TensorType, b: TensorType) -> TensorType:
        if cond.dtype != "bool":
            raise ShapeError(f"cond must be a bool tensor, got {cond}")
        return TensorType(same_dtype(a, b), broadcast(cond.shape, a.shape, b.shape))

    def compute(self, cond, a, b):
        return np.where(cond, a, b)

    def to_onnx(self, b, c, x, y):
        if b.dtype_of(x) == "bool":     # onnxruntime has no bool Where: (c and x) or (not c and y)
            return b.node("Or", [b.node("And", [c, x]), b.node("And", [b.node("Not", [c]), y])])
        return b.node("Where", [c, x, y])

    def vjp(self, g, xs, ys, dys):
        cond, a, b = xs
        if g.type_of(a).dtype not in FLOAT_DTYPES:
            return None, None, None
        da, db = _pick(g, cond, dys[0], ys[0], a)
        return None, g.unbroadcast(da, g.type_of(a)), g.unbroadcast(db, g.type_of(b))

    def label(self, node: Drawn) -> str:
        return label_folded(node)

class Identity(Elementwise):
    """y = x."""

    name = "identity"
    onnx = "Identity"
    examples = (Example((In((2, 3)),)), Example((In((4,), "bool"),)), Example((In((2, 2), "int64"),)))

    def infer(self, x: TensorType) -> TensorType:
        return x

    value_bounds = same_values

    def compute(self, x):
        return x

    def to_onnx(self, b, x):
        return b.node("Identity", [x])

    def vjp(self, g, xs, ys, dys):
        return dys[:1]


class Cast(Elementwise):
    """Convert to dtype `to` with ONNX Cast semantics: floats to integers truncate toward zero,
    numbers to bool are `!= 0`. Out-of-range conversions are undefined, as in ONNX."""

    name = "cast"
    onnx = "Cast"
    to: Literal[DTYPES]
    examples = (Example((In((3, 4), low=-5, high=5),), {"to": "int64"}),
                Example((In((3, 4), "int64", -100, 100),), {"to": "float32"}),
                Example((In((2, 5)),), {"to": "float16"}),
                Example((In((2, 5), values=[[0.0, 1.5, -2.0, 0.0, 3.0], [0.0, 0.0, -0.5, 7.0, 0.0]]),), {"to": "bool"}),
                Example((In((6,), "bool"),), {"to": "float32"}),
                Example((In((3, 3), "int32", 0, 200),), {"to": "uint8"}),
                Example((In((2, 3), "float64"),), {"to": "float32"}))

    def infer(self, x: TensorType) -> TensorType:
        return TensorType(self.to, x.shape)

    def value_bounds(self, ins, bounds) -> Bounds | None:
        # whole numbers the target holds exactly cast to themselves; past that Cast is undefined
        return bounds[0] and bounds[0].within(self.to)

    def compute(self, x):
        return np.asarray(x.astype(self.to))

    def to_onnx(self, b, x):
        return b.node("Cast", [x], to=b.onnx_dtype(self.to))

    def vjp(self, g, xs, ys, dys):
        # between floats the cotangent is cast back; a cast to or from integers passes none
        dtype = g.type_of(xs[0]).dtype
        if dtype not in FLOAT_DTYPES or self.to not in FLOAT_DTYPES:
            return (None,)
        return (g.emit("cast", dys[0], to=dtype),)


def _compare(op_name: str, onnx_type: str, kernel: Callable, bools: bool, extra: tuple[Example, ...]) -> type[Elementwise]:
    class Compare(Elementwise):
        name = op_name
        onnx = onnx_type
        inputs = ports("a", "b")
        examples = (Example((In((2, 3, 4), "int64", 0, 3), In((3, 1), "int64", 0, 3))),) + extra

        def infer(self, a: TensorType, b: TensorType) -> TensorType:
            dtype = same_dtype(a, b)
            if not bools and dtype == "bool":
                raise ShapeError(f"{op_name} needs numbers, got {a} and {b}")
            return TensorType("bool", broadcast(a.shape, b.shape))

        def compute(self, a, b):
            return np.asarray(kernel(a, b))

        def to_onnx(self, b, x, y):
            return b.node(onnx_type, [x, y])

        def vjp(self, g, xs, ys, dys):
            return None, None      # a bool output: the slope is zero wherever it is defined

    Compare.__doc__ = f"Elementwise {onnx_type} with broadcasting; the result is a bool tensor."
    Compare.__name__ = Compare.__qualname__ = op_name.title().replace("_", "")
    return Compare


Equal = _compare("equal", "Equal", np.equal, True, (
    Example((In((2, 3), values=[[1.0, 2.0, 3.0], [0.5, 2.0, -1.0]]), In((3,), values=[1.0, 2.0, -1.0]))),
    Example((In((3, 4), "bool"), In((4,), "bool"))),
))
Less = _compare("less", "Less", np.less, False, (
    Example((In((4, 1, 3)), In((5, 3)))),
    Example((In((2, 3), values=[[1.0, 2.0, 3.0], [0.5, 2.0, -1.0]]), In((3,), values=[1.0, 2.0, -1.0]))),
))
Greater = _compare("greater", "Greater", np.greater, False, (
    Example((In((4, 1, 3)), In((5, 3)))),
    Example((In((2, 3), values=[[1.0, 2.0, 3.0], [0.5, 2.0, -1.0]]), In((3,), values=[1.0, 2.0, -1.0]))),
))
