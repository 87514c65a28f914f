"""range beyond the contract examples: its length for floats, worked out as NumPy's arange works it
out but without making the array, and the float ranges that have no length."""

import itertools

import numpy as np
import pytest

from graphnet.dims import Dim
from graphnet.ops import ShapeError
from graphnet.ops.generate import Range

ENDS = [-3.0, -0.7, 0.0, 0.1, 1.0, 2.5, 10.0]
STEPS = [-2.0, -0.3, 0.1, 0.25, 1.0, 3.0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_range_length_is_numpys(dtype):
    for start, limit, delta in itertools.product(ENDS, ENDS, STEPS):
        want = len(np.arange(start, limit, delta, dtype=dtype))
        assert Range(start=start, limit=limit, delta=delta, dtype=dtype).infer().shape == (Dim(want),), \
            (start, limit, delta)
    # the quotient underflows to zero: NumPy makes one value for a positive span, none for a negative one
    for start, limit, delta in [(0.0, 1e-300, 1e300), (0.0, 1e-300, -1e300), (0.0, 5e-324, 1.5)]:
        want = len(np.arange(start, limit, delta, dtype=dtype))
        assert Range(start=start, limit=limit, delta=delta, dtype=dtype).infer().shape == (Dim(want),)


def test_a_huge_float_range_has_a_length_without_an_array():
    # 10^13 float32 values would be 40 TB: the length comes from arithmetic, the memory guard judges it
    assert Range(start=0.0, limit=1e13, delta=1.0, dtype="float32").infer().shape == (Dim(10**13),)


@pytest.mark.parametrize("attrs, message", [
    ({"limit": float("inf")}, "a float range needs finite start, limit and delta, got 0.0, inf, 1.0"),
    ({"limit": float("nan")}, "a float range needs finite start, limit and delta, got 0.0, nan, 1.0"),
    ({"limit": 1.0, "delta": 0.0}, "delta must be a known non-zero number"),
    ({"start": -1e308, "limit": 1e308, "delta": 1e-300}, "has too many values"),
])
def test_float_ranges_without_a_length_are_shape_errors(attrs, message):
    with pytest.raises(ShapeError, match=message):
        Range(**{"start": 0.0, "delta": 1.0, **attrs}, dtype="float32").infer()
