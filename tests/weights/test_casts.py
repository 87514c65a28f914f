"""Casts to a param's dtype are made only when no value changes. The oracles: Python's struct
module packing a float into IEEE half, single or double precision (rounding and overflow done by
CPython, not NumPy), the formats' exact-integer ranges (2 ** (significand bits + 1)), and integer
ranges by exact Python ints."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from graphnet.weights.casts import cast_exactly, never_cast

FORMATS = {"float16": ("e", 11), "float32": ("f", 24), "float64": ("d", 53)}


def _changes(values: np.ndarray, want: str) -> int:
    """How many values would not survive the cast exactly."""
    out = 0
    for v in values.ravel().tolist():
        if want in FORMATS and isinstance(v, float):
            code, _ = FORMATS[want]
            try:
                back = struct.unpack(code, struct.pack(code, v))[0]
            except OverflowError:
                out += 1
                continue
            out += not (back == v or (back != back and v != v))
        elif want in FORMATS:                       # an integer: inside the float's exact range
            out += abs(v) > 2 ** FORMATS[want][1]
        else:
            info = np.iinfo(want)
            out += not (int(info.min) <= v <= int(info.max))
    return out


CASES = [
    ("float64", [0.5, -2.0, 3.0e38, 1.0 / 3.0, 1e-320, float("nan"), float("inf")], "float32"),
    ("float64", [0.5, 65504.0, 65520.0, 1e-8, 2.0 ** -24], "float16"),
    ("float32", [0.1, 1.0, 2.0 ** -30], "float16"),
    ("float16", [0.1, -65504.0, float("inf")], "float32"),
    ("float32", [0.1, 3.4e38], "float64"),
    ("int64", [0, 2 ** 24, 2 ** 24 + 1, -(2 ** 24) - 1, 2 ** 63 - 1], "float32"),
    ("int64", [2 ** 53, 2 ** 53 + 1, -(2 ** 53)], "float64"),
    ("int32", [2047, 2048, 2049, -2048], "float16"),
    ("uint64", [2 ** 64 - 1, 2 ** 24], "float32"),
    ("int8", [-128, 127], "float16"),
    ("int64", [-1, 0, 255, 256, 2 ** 40], "uint8"),
    ("uint64", [2 ** 63, 2 ** 63 - 1, 0], "int64"),
    ("int64", [-1, 2 ** 62], "uint64"),
    ("int32", [-(2 ** 31), 7], "int64"),
    ("uint8", [0, 255], "int8"),
]


@pytest.mark.parametrize("have,values,want", CASES, ids=[f"{h}-{w}-{i}" for i, (h, _, w) in enumerate(CASES)])
def test_a_cast_counts_exactly_the_values_it_changes(have, values, want):
    array = np.array(values, dtype=have)
    assert never_cast(have, want) is None
    out, changed = cast_exactly(array, want)
    assert out.dtype == np.dtype(want)
    assert changed == _changes(array, want)


def test_the_same_dtype_is_no_cast():
    a = np.arange(3.0)
    out, changed = cast_exactly(a, "float64")
    assert out is a and changed == 0


@pytest.mark.parametrize("have,want,why", [
    ("float32", "int64", "a float is never cast to an integer"),
    ("bfloat16", "int32", "a float is never cast to an integer"),
    ("bool", "float32", "a bool is only a bool"),
    ("int64", "bool", "a bool is only a bool"),
    ("complex64", "float32", "complex64 is not a dtype graphnet reads"),
])
def test_casts_that_are_never_made(have, want, why):
    assert never_cast(have, want) == why
