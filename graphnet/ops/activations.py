"""Activations with attributes or a formula of their own: gelu, elu, hard_sigmoid, silu, and erf,
which gelu is made of (NumPy has no erf). Each is one class with its forward and its vjp."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .base import Example, In, OnnxFloat, TensorType, require_float
from .elementwise import Elementwise, _c, _sigmoid, _times, _unary


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


Erf = _unary("erf", "Erf", erf, "The error function.", lambda g, x, y, dy: _times(
    g, dy, g.emit("exp", g.emit("neg", g.emit("mul", x, x))), _c(g, x, 2 / math.sqrt(math.pi))))
Erf.__module__ = __name__     # made by elementwise's table, defined here beside gelu


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

    def vjp(self, g, xs, ys, dys):
        x, dy = xs[0], dys[0]
        if self.approximate == "tanh":
            k, c = 0.044715, math.sqrt(2 / math.pi)
            x2 = g.emit("mul", x, x)
            t = g.emit("tanh", _times(g, g.emit("add", x, _times(g, x2, x, _c(g, x, k))), _c(g, x, c)))
            dt = _times(g, g.emit("sub", _c(g, x, 1.0), g.emit("mul", t, t)), x, _c(g, x, 0.5 * c),
                        g.emit("add", _c(g, x, 1.0), g.emit("mul", x2, _c(g, x, 3 * k))))
            slope = g.emit("add", _times(g, g.emit("add", t, _c(g, x, 1.0)), _c(g, x, 0.5)), dt)
        else:
            # Phi(x) + x * phi(x), the normal distribution's cdf and density
            cdf = _times(g, g.emit("add", g.emit("erf", g.emit("mul", x, _c(g, x, 1 / math.sqrt(2)))),
                                   _c(g, x, 1.0)), _c(g, x, 0.5))
            pdf = _times(g, g.emit("exp", _times(g, x, x, _c(g, x, -0.5))), _c(g, x, 1 / math.sqrt(2 * math.pi)))
            slope = g.emit("add", cdf, g.emit("mul", x, pdf))
        return (g.emit("mul", dy, slope),)


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

    def vjp(self, g, xs, ys, dys):
        # below 0 the slope is alpha * e^x, which is y + alpha
        x, y, dy = xs[0], ys[0], dys[0]
        below = g.emit("mul", dy, g.emit("add", y, _c(g, y, self.alpha)))
        return (g.emit("where", g.emit("greater", x, _c(g, x, 0.0)), dy, below),)


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

    def vjp(self, g, xs, ys, dys):
        x = xs[0]
        z = g.emit("add", g.emit("mul", x, _c(g, x, self.alpha)), _c(g, x, self.beta))
        # strictly inside (0, 1) only, as PyTorch's hardsigmoid gives it: 0 at a bend
        zero = _c(g, dys[0], 0.0)
        inside = g.emit("where", g.emit("greater", z, _c(g, x, 0.0)), g.emit("mul", dys[0], _c(g, x, self.alpha)), zero)
        return (g.emit("where", g.emit("less", z, _c(g, x, 1.0)), inside, zero),)


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

    def vjp(self, g, xs, ys, dys):
        x = xs[0]
        s = g.emit("sigmoid", x)
        one = _c(g, x, 1.0)
        return (_times(g, dys[0], s, g.emit("add", one, g.emit("mul", x, g.emit("sub", one, s)))),)
