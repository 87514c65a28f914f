"""The op registry: one explicit, sorted tuple of op classes; the name map is derived from it."""

from __future__ import annotations

from ..types import TensorType
from .base import Example, In, Op, ShapeError
from .conv import Conv
from .conv_transpose import ConvTranspose
from .einsum import Einsum
from .elementwise import (Abs, Add, Cast, Clip, Cos, Div, Dropout, Elu, Equal, Erf, Exp, Gelu, Greater,
                          HardSigmoid, HardSwish, Identity, LeakyRelu, Less, Log, Max, Min, Mul, Neg, Pow,
                          Reciprocal, Relu, Sigmoid, Silu, Sin, Softplus, Sqrt, Sub, Tanh, Where)
from .generate import Constant, Range, Trilu
from .linalg import Matmul
from .norm import BatchNorm, LayerNorm
from .pool import AvgPool, GlobalAvgPool, GlobalMaxPool, LpPool, MaxPool
from .recurrent import Gru, Lstm, Rnn
from .reduce import ReduceL2, ReduceMax, ReduceMean, ReduceMin, ReduceSum
from .shape import (Concat, Expand, Flatten, Flip, Gather, Pad, Reshape, Slice, Split, Squeeze, Tile, Transpose,
                    Unsqueeze)
from .scan import Scan
from .softmax import LogSoftmax, Softmax

REGISTRY: tuple[type[Op], ...] = tuple(sorted((
    Abs, Add, AvgPool, BatchNorm, Cast, Clip, Concat, Constant, Conv, ConvTranspose, Cos, Div, Dropout, Einsum,
    Elu, Equal, Erf, Exp, Expand, Flatten, Flip, Gather, Gelu, GlobalAvgPool, GlobalMaxPool, Greater, Gru,
    HardSigmoid, HardSwish, Identity, LayerNorm, LeakyRelu, Less, Log, LogSoftmax, LpPool, Lstm, Matmul, Max,
    MaxPool, Min, Mul, Neg, Pad, Pow, Range, Reciprocal, ReduceL2, ReduceMax, ReduceMean, ReduceMin, ReduceSum,
    Relu, Reshape, Rnn, Scan, Sigmoid, Silu, Sin, Slice, Softmax, Softplus, Split, Sqrt, Squeeze, Sub, Tanh, Tile,
    Transpose, Trilu, Unsqueeze, Where,
), key=lambda cls: cls.name))

OPS: dict[str, type[Op]] = {cls.name: cls for cls in REGISTRY}
assert len(OPS) == len(REGISTRY), "two ops share a name"

__all__ = ["OPS", "REGISTRY", "Example", "In", "Op", "ShapeError", "TensorType"]
