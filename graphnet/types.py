"""Values: the tensor type and the one dtype table, below the Graph IR and the ops.

Every dtype graphnet knows is one row here: its kind, its size in bytes and its ONNX code. The spec
models, the ops, the back ends and the summary read them from this table, never from a list of
their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .dims import Dim, as_dim, format_shape


@dataclass(frozen=True)
class DType:
    kind: str          # 'float', 'int' or 'bool'
    itemsize: int      # bytes per element
    onnx: int          # onnx.TensorProto.DataType


# In the order the spec language lists them (the JSON Schema and the docs show this order).
DTYPE_TABLE: dict[str, DType] = {
    "float32": DType("float", 4, 1),
    "float64": DType("float", 8, 11),
    "float16": DType("float", 2, 10),
    "int64": DType("int", 8, 7),
    "int32": DType("int", 4, 6),
    "int8": DType("int", 1, 3),
    "uint8": DType("int", 1, 2),
    "bool": DType("bool", 1, 9),
}
DTYPES = tuple(DTYPE_TABLE)
FLOAT_DTYPES = tuple(d for d, t in DTYPE_TABLE.items() if t.kind == "float")
INT_DTYPES = tuple(d for d, t in DTYPE_TABLE.items() if t.kind == "int")
ITEMSIZE = {d: t.itemsize for d, t in DTYPE_TABLE.items()}
ONNX_DTYPES = {d: t.onnx for d, t in DTYPE_TABLE.items()}


def dtype_name(dtype) -> str:
    """graphnet's name of a NumPy dtype (they are NumPy's own names: 'float32', 'bool')."""
    return np.dtype(dtype).name


@dataclass(frozen=True)
class TensorType:
    dtype: str
    shape: tuple[Dim, ...]

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(as_dim(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{format_shape(self.shape)}"


def nbytes(t: TensorType) -> int:
    """The bytes of a tensor whose dims are all known."""
    dims = [int(d) for d in t.shape]
    count = math.prod(dims)
    if not 0 <= count < 2**63 or min(dims, default=0) < 0:
        # past int64 NumPy's product wraps around, as it always has here: keep that number
        count = int(np.prod(dims, dtype=np.int64).item() if dims else 1)
    return count * ITEMSIZE[t.dtype]


def format_bytes(n: int) -> str:
    """Bytes in binary units: '3.1 MiB'."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
