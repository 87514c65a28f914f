"""Which weight dtypes become which param dtypes. A cast is made only when it changes no value: a
float16 or bfloat16 checkpoint into float32 params always, a float64 one when its values are
float32 values, integers into floats within the floats' exact range. A float never becomes an
integer, and a bool is only ever a bool."""

from __future__ import annotations

import numpy as np

FLOATS = ("float16", "bfloat16", "float32", "float64")
INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
# each float holds every whole number up to 2 ** (its significand bits + 1) exactly
_EXACT_INTS = {"float16": 2 ** 11, "float32": 2 ** 24, "float64": 2 ** 53}


def never_cast(have: str, want: str) -> str | None:
    """Why a tensor of dtype `have` is never a param of dtype `want`, whatever its values; None
    when it may be cast (it then must change no value)."""
    if have == want or (have in FLOATS + INTS and want in FLOATS + INTS and not (have in FLOATS and want in INTS)):
        return None
    if have in FLOATS and want in INTS:
        return "a float is never cast to an integer"
    if "bool" in (have, want):
        return "a bool is only a bool"
    return f"{have} is not a dtype graphnet reads"


def cast_exactly(values: np.ndarray, want: str) -> tuple[np.ndarray, int]:
    """`values` as dtype `want`, and how many of them the cast changed (0: a lossless cast)."""
    have = values.dtype
    if have == np.dtype(want):
        return values, 0
    with np.errstate(all="ignore"):          # an overflow is counted as a change, not warned about
        out = values.astype(want)
        if have.kind == "f":
            same = (out.astype(have) == values) | (np.isnan(values) & np.isnan(out))
        elif np.dtype(want).kind == "f":     # an integer: exact inside the float's range of whole numbers
            limit = _EXACT_INTS[want]
            same = np.ones(values.shape, bool) if np.iinfo(have).max <= limit else \
                (values <= limit) & ((values >= -limit) if have.kind == "i" else True)
        else:                                # an integer to another: the same value, and the same sign
            same = (out.astype(have) == values) & ((out < 0) == (values < 0))
    return out, int(values.size - np.count_nonzero(same))
