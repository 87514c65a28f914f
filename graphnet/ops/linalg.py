"""Matrix multiplication with NumPy's batch broadcasting."""

from __future__ import annotations

import math

import numpy as np

from ..dims import Dim, dim_prod
from .base import Drawn, Example, In, Op, ShapeError, TensorType, broadcast, ports, require_float, same_dtype


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b. A stack of matrices times one matrix (a linear layer's [B, T, K] @ [K, N]) is one
    [B*T, K] @ [K, N] GEMM where the stack's rows lie end to end: NumPy's matmul otherwise calls
    one GEMM per matrix of the stack, and OpenBLAS ran transformer_encoder's [8, 128, 512] @
    [512, 2048] 1.2x faster as one product (docs/performance.md). A product of matrices with fewer
    rows than columns is computed as (b^T a^T)^T, the same sums in another order of the operands:
    OpenBLAS runs those shapes 1.2 to 3 times faster that way (a recurrent step's [16, 256] @
    [256, 1024]: 85 against 31 us); the stack's product is left in row order, which the ops after
    a linear layer (layer norm's rows, the heads' split) read fastest."""
    if b.ndim == 2 and a.ndim > 2 and a.flags.c_contiguous:
        rows = math.prod(a.shape[:-1])
        return np.matmul(a.reshape(rows, a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[1:])
    if a.ndim == 2 and b.ndim == 2 and a.shape[0] < b.shape[1]:
        return np.matmul(b.T, a.T).T
    return np.matmul(a, b)


class Matmul(Op):
    """The matrix product with NumPy batch broadcasting; a 1-D operand is a vector."""

    name = "matmul"
    fresh = True
    onnx = "MatMul"
    inputs = ports("a", "b")
    examples = (
        Example((In((4, 3)), In((3, 5)))),
        Example((In((2, 4, 3)), In((3, 5)))),           # a stack by one matrix: one GEMM
        Example((In((2, 1, 4, 3)), In((5, 3, 6)))),
        Example((In((3,)), In((2, 3, 4)))),
        Example((In((2, 4, 3)), In((3,)))),
    )

    def infer(self, a: TensorType, b: TensorType) -> TensorType:
        dtype = same_dtype(a, b)
        require_float(a)
        if a.rank == 0 or b.rank == 0:
            raise ShapeError(f"matmul needs tensors of rank >= 1, got {a} and {b}")
        k_a = a.shape[-1]
        k_b = b.shape[-2] if b.rank >= 2 else b.shape[0]
        if k_a != k_b:
            raise ShapeError(
                f"inner dims differ: a{_fmt(a)} has {k_a} columns but b{_fmt(b)} has {k_b} rows")
        batch = broadcast(a.shape[:-2], b.shape[:-2]) if a.rank >= 2 and b.rank >= 2 else \
            (a.shape[:-2] if b.rank == 1 else b.shape[:-2])
        rows = (a.shape[-2],) if a.rank >= 2 else ()
        cols = (b.shape[-1],) if b.rank >= 2 else ()
        return TensorType(dtype, batch + rows + cols)

    def compute(self, a, b):
        return matmul(a, b)

    def to_onnx(self, b, x, y):
        return b.node("MatMul", [x, y])

    def vjp(self, g, xs, ys, dys):
        a, b = xs
        ta, tb, dy = g.type_of(a), g.type_of(b), dys[0]
        if ta.rank == 1 and tb.rank == 1:
            return g.emit("mul", dy, b), g.emit("mul", dy, a)
        # a vector is a matrix of one row (a) or one column (b), its axis squeezed from dy
        a2 = g.emit("unsqueeze", a, axes=[0]) if ta.rank == 1 else a
        b2 = g.emit("unsqueeze", b, axes=[1]) if tb.rank == 1 else b
        dy2 = g.emit("unsqueeze", dy, axes=[-2] if ta.rank == 1 else [-1]) if 1 in (ta.rank, tb.rank) else dy
        da = g.emit("matmul", dy2, _last_two_swapped(g, b2))
        if tb.rank == 2 and g.type_of(a2).rank > 2:
            # a weight shared by every row (a linear layer): one [K, rows] @ [rows, N] product
            k, n = tb.shape
            db = g.emit("matmul", _last_two_swapped(g, g.emit("reshape", a2, shape=[-1, k])),
                        g.emit("reshape", dy2, shape=[-1, n]))
        else:
            db = g.unbroadcast(g.emit("matmul", _last_two_swapped(g, a2), dy2), g.type_of(b2))
        da = g.unbroadcast(da, g.type_of(a2))
        return (g.emit("squeeze", da, axes=[0]) if ta.rank == 1 else da,
                g.emit("squeeze", db, axes=[1]) if tb.rank == 1 else db)

    def macs(self, ins, outs) -> Dim:
        return dim_prod(outs[0].shape) * ins[0].shape[-1]

    def label(self, node: Drawn) -> str:
        # a weighted matmul (a linear's) shows its weight's shape; the weight is not drawn
        return "W " + node.shape(node.ins[1].shape) if node.folded[1] is not None else ""

    def call_label(self, node: Drawn) -> str | None:
        return node.dim(node.outs[0].shape[-1]) if node.folded[1] is not None else None

def _last_two_swapped(g, x: str) -> str:
    rank = g.type_of(x).rank
    return g.emit("transpose", x, perm=list(range(rank - 2)) + [rank - 1, rank - 2])


def _fmt(t: TensorType) -> str:
    return "[" + ", ".join(str(d) for d in t.shape) + "]"
