"""Elementwise ops: the trivial ones as a table, each still one class with all four verbs."""

from __future__ import annotations

import math
import operator
from typing import Callable, Literal

import numpy as np

from ..types import DTYPES
from .base import (Bounds, Drawn, Example, In, OnnxFloat, Op, ShapeError, TensorType, broadcast, label_folded, label_number,
                   ports, require_float, same_dtype, same_values)


class Elementwise(Op):
    """Applied per element (inputs broadcast as in NumPy): the output at an index reads only the
    inputs at that index, which lets rewrites batch such ops over a new leading axis."""


def _binary(op_name: str, onnx_type: str, kernel: Callable, doc: str, numeric_only: bool = True,
            extra: tuple[Example, ...] = (), folds: bool = False, joins: bool = False,
            residual: bool = False, whole: Callable | None = None) -> type[Elementwise]:
    """A binary op; `folds`: its label names the params and constants it reads; `joins`, `residual`:
    how a diagram draws it (Op.joins, Op.residual); `whole`: the op on Python ints, when value bounds
    follow it (its extremes over a box of inputs lie at the box's corners, as for +, - and *)."""
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


Add = _binary("add", "Add", np.add, "a + b, with NumPy broadcasting; one dtype.", folds=True, joins=True,
              residual=True, whole=operator.add)
Sub = _binary("sub", "Sub", np.subtract, "a - b, with NumPy broadcasting.", folds=True, whole=operator.sub)
Mul = _binary("mul", "Mul", np.multiply, "a * b, with NumPy broadcasting.", folds=True, joins=True,
              whole=operator.mul)
Div = _binary("div", "Div", _true_divide, "a / b, with NumPy broadcasting; integers truncate toward zero (ONNX Div).",
              folds=True)
Max = _binary("max", "Max", np.maximum, "The elementwise maximum of a and b, with NumPy broadcasting.", extra=(Example((In((3, 4), "int64", -5, 5), In((4,), "int64", -5, 5))),))
Min = _binary("min", "Min", np.minimum, "The elementwise minimum of a and b, with NumPy broadcasting.", extra=(Example((In((3, 4), "int64", -5, 5), In((4,), "int64", -5, 5))),))


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


def _unary(op_name: str, onnx_type: str, kernel: Callable, doc: str, low: float = -3.0, high: float = 3.0,
           writes_out: bool | None = None,
           floats_only: bool = True, extra: tuple[Example, ...] = ()) -> type[Elementwise]:
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

    Unary.__name__ = Unary.__qualname__ = op_name.title().replace("_", "")
    Unary.__doc__ = doc
    return Unary


def _sigmoid(x, out=None):
    # 1 / (1 + e^-x) in place: e^-x overflows to inf below x = -88 (float32), giving the right 0
    with np.errstate(over="ignore"):
        y = np.negative(x, out=out)
        np.exp(y, out=y)
        y += 1
        return np.reciprocal(y, out=y)


Neg = _unary("neg", "Neg", np.negative, "-x.", floats_only=False)
Exp = _unary("exp", "Exp", np.exp, "e to the x.")
Log = _unary("log", "Log", np.log, "The natural logarithm.", low=0.05, high=5.0)
Sqrt = _unary("sqrt", "Sqrt", np.sqrt, "The square root.", low=0.0, high=5.0)
Tanh = _unary("tanh", "Tanh", np.tanh, "The hyperbolic tangent.")
Sigmoid = _unary("sigmoid", "Sigmoid", _sigmoid, "The logistic function 1 / (1 + e^-x).", writes_out=True)
def _relu(x, out=None):
    return np.maximum(x, x.dtype.type(0), out=out)


Relu = _unary("relu", "Relu", _relu, "max(x, 0).", writes_out=True)
Abs = _unary("abs", "Abs", np.abs, "|x|.", floats_only=False, extra=(Example((In((3, 4), "int64", -9, 9),)),))
Reciprocal = _unary("reciprocal", "Reciprocal", np.reciprocal, "1 / x.", low=0.25, high=4.0,
                    extra=(Example((In((4, 3), low=-4.0, high=-0.25),)),))
Sin = _unary("sin", "Sin", np.sin, "The sine.", low=-7.0, high=7.0)
Cos = _unary("cos", "Cos", np.cos, "The cosine.", low=-7.0, high=7.0)
Softplus = _unary("softplus", "Softplus", lambda x: np.logaddexp(x.dtype.type(0), x).astype(x.dtype),
                  "log(1 + e^x).", low=-12.0, high=12.0)
HardSwish = _unary("hard_swish", "HardSwish",
                   lambda x: (x * np.clip(x / x.dtype.type(6) + x.dtype.type(0.5), 0, 1)).astype(x.dtype),
                   "x * max(0, min(1, x / 6 + 1/2)): ONNX HardSwish, PyTorch's Hardswish.",
                   low=-5.0, high=5.0)


class Clip(Elementwise):
    """Clamp to [min, max]; relu6 is clip with min 0, max 6."""

    name = "clip"
    onnx = "Clip"
    min: float | None = None
    max: float | None = None
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


def erf(x: np.ndarray) -> np.ndarray:
    """Error function, computed in float64 from the Chebyshev fit of erfc in Numerical Recipes
    (fractional error below 1.2e-7 everywhere, finer than float32 needs); NumPy has no erf."""
    x64 = x.astype(np.float64)
    z = np.abs(x64)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x64 >= 0, 1.0 - erfc, erfc - 1.0).astype(x.dtype)


class Gelu(Elementwise):
    """x * Phi(x), exactly with erf (`approximate: none`) or with the tanh approximation."""

    name = "gelu"
    onnx = "Gelu (opset 20) or Erf/Tanh arithmetic"
    approximate: Literal["none", "tanh"] = "none"
    examples = (Example((In((3, 7), low=-4, high=4),)),
                Example((In((3, 7), low=-4, high=4),), {"approximate": "tanh"}))

    def infer(self, x: TensorType) -> TensorType:
        require_float(x)
        return x

    def compute(self, x):
        if self.approximate == "tanh":
            c = np.sqrt(2 / np.pi).astype(x.dtype)
            return (0.5 * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x ** 3)))).astype(x.dtype)
        return (0.5 * x * (1 + erf(x / x.dtype.type(math.sqrt(2))))).astype(x.dtype)

    def to_onnx(self, b, x):
        if b.opset >= 20:
            return b.node("Gelu", [x], approximate=self.approximate)
        dtype = b.dtype_of(x)
        half = b.scalar(0.5, dtype)
        one = b.scalar(1.0, dtype)
        if self.approximate == "tanh":
            cube = b.node("Mul", [b.node("Mul", [x, x]), x])
            inner = b.node("Add", [x, b.node("Mul", [cube, b.scalar(0.044715, dtype)])])
            core = b.node("Tanh", [b.node("Mul", [inner, b.scalar(math.sqrt(2 / math.pi), dtype)])])
        else:
            core = b.node("Erf", [b.node("Div", [x, b.scalar(math.sqrt(2), dtype)])])
        return b.node("Mul", [b.node("Mul", [x, half]), b.node("Add", [core, one])])


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
        return b.node("Where", [c, x, y])

    def label(self, node: Drawn) -> str:
        return label_folded(node)

Erf = _unary("erf", "Erf", erf, "The error function.")


class Elu(Elementwise):
    """x where x > 0, else alpha * (exp(x) - 1)."""

    name = "elu"
    onnx = "Elu"
    alpha: OnnxFloat = 1.0
    examples = (Example((In((3, 5), low=-4, high=3),)), Example((In((2, 3, 4), low=-4, high=3),), {"alpha": 0.5}))

    def infer(self, x: TensorType) -> TensorType:
        require_float(x)
        return x

    def compute(self, x):
        negative = x.dtype.type(self.alpha) * np.expm1(np.minimum(x, 0))
        return np.where(x > 0, x, negative).astype(x.dtype)

    def to_onnx(self, b, x):
        return b.node("Elu", [x], alpha=float(self.alpha))


class HardSigmoid(Elementwise):
    """max(0, min(1, alpha * x + beta)), with ONNX's defaults alpha 0.2, beta 0.5. PyTorch's
    hardsigmoid (relu6(x + 3) / 6) is alpha 1/6, beta 0.5: write `alpha: 0.16666666666666666`
    when porting a PyTorch model."""

    name = "hard_sigmoid"
    onnx = "HardSigmoid"
    alpha: OnnxFloat = 0.2
    beta: OnnxFloat = 0.5
    examples = (Example((In((3, 7), low=-5, high=5),)),
                Example((In((2, 3, 4), low=-5, high=5),), {"alpha": 1 / 6}),
                Example((In((4, 4), low=-3, high=3),), {"alpha": 0.5, "beta": 0.25}))

    def infer(self, x: TensorType) -> TensorType:
        require_float(x)
        return x

    def compute(self, x):
        t = x.dtype.type
        return np.clip(x * t(self.alpha) + t(self.beta), 0, 1).astype(x.dtype)

    def to_onnx(self, b, x):
        return b.node("HardSigmoid", [x], alpha=float(self.alpha), beta=float(self.beta))


class Silu(Elementwise):
    """x * sigmoid(x), also called swish; lowered as Mul(x, Sigmoid(x)) (ONNX has no Silu)."""

    name = "silu"
    onnx = "Mul(x, Sigmoid(x))"
    examples = (Example((In((2, 3, 5), low=-8, high=8),)),)

    def infer(self, x: TensorType) -> TensorType:
        require_float(x)
        return x

    def compute(self, x):
        return (x * _sigmoid(x)).astype(x.dtype)

    def to_onnx(self, b, x):
        return b.node("Mul", [x, b.node("Sigmoid", [x])])


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
