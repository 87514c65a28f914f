"""The op registry: one explicit, sorted tuple of op classes; the name map is derived from it."""

from __future__ import annotations

from .base import Example, In, Op, ShapeError, TensorType
from .conv import Conv
from .elementwise import (Add, Clip, Div, Dropout, Exp, Gelu, LeakyRelu, Log, Mul, Neg, Pow, Relu, Sigmoid,
                          Sqrt, Sub, Tanh, Where)
from .generate import Constant, Range, Trilu
from .linalg import Matmul
from .norm import BatchNorm, LayerNorm
from .pool import AvgPool, GlobalAvgPool, MaxPool
from .reduce import ReduceMax, ReduceMean, ReduceSum
from .shape import Concat, Flatten, Gather, Reshape, Slice, Split, Squeeze, Transpose, Unsqueeze
from .softmax import LogSoftmax, Softmax

REGISTRY: tuple[type[Op], ...] = tuple(sorted((
    Add, AvgPool, BatchNorm, Clip, Concat, Constant, Conv, Div, Dropout, Exp, Flatten, Gather, Gelu,
    GlobalAvgPool, LayerNorm, LeakyRelu, Log, LogSoftmax, Matmul, MaxPool, Mul, Neg, Pow, Range, ReduceMax,
    ReduceMean, ReduceSum, Relu, Reshape, Sigmoid, Slice, Softmax, Split, Sqrt, Squeeze, Sub, Tanh,
    Transpose, Trilu, Unsqueeze, Where,
), key=lambda cls: cls.name))

OPS: dict[str, type[Op]] = {cls.name: cls for cls in REGISTRY}
assert len(OPS) == len(REGISTRY), "two ops share a name"

__all__ = ["OPS", "REGISTRY", "Example", "In", "Op", "ShapeError", "TensorType"]
