"""Converters of the ONNX ops that move data or compute shapes. Shape, and the integer arithmetic
exporters write on its result before a Reshape, Expand or ConstantOfShape, are folded into `Dims`
(exact symbolic dims), so that the spec says `shape: [B, -1, 64]` where the file computes it."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from ..dims import Dim
from .args import arg, converter, input_at, inputs, known
from .convert import Const, Converter, Dims, ImportFailure, Value

TO_END = 2**31


def dims_of(v: Value | None) -> list[Dim] | None:
    """The elements of a dims value or a small integer const (rank 0 or 1), else None."""
    if isinstance(v, Dims):
        return list(v.dims)
    if isinstance(v, Const) and v.array.dtype.kind in "iu" and v.array.ndim <= 1 and v.array.size <= 64:
        return [Dim(int(x)) for x in v.array.reshape(-1)]
    return None


def _scalar(v: Value) -> bool:
    return (isinstance(v, Dims) and v.scalar) or (isinstance(v, Const) and v.array.ndim == 0)


def _dims_value(dims: list[Dim], scalar: bool) -> Value:
    if all(d.is_const() for d in dims):
        array = np.asarray([d.value for d in dims], dtype=np.int64)
        return Const(array.reshape(()) if scalar else array)
    return Dims(dims, scalar)


def dims_arithmetic(op_type: str, a: Value, b: Value) -> Value | None:
    """Add/Sub/Mul/Div/Mod of shape values, elementwise with broadcasting; None when not such."""
    if not (isinstance(a, Dims) or isinstance(b, Dims)):
        return None
    da, db = dims_of(a), dims_of(b)
    if da is None or db is None or op_type not in ("Add", "Sub", "Mul", "Div", "Mod"):
        return None
    if len(da) != len(db) and min(len(da), len(db)) != 1:
        return None
    n = max(len(da), len(db))
    da, db = (da * n if len(da) == 1 else da), (db * n if len(db) == 1 else db)
    rule = {"Add": lambda x, y: x + y, "Sub": lambda x, y: x - y, "Mul": lambda x, y: x * y,
            "Div": lambda x, y: x // y, "Mod": lambda x, y: x % y}[op_type]
    try:
        out = [rule(x, y) for x, y in zip(da, db)]
    except (ValueError, ZeroDivisionError):
        return None
    return _dims_value(out, _scalar(a) and _scalar(b))


def dims_equal(a: Value, b: Value) -> Value | None:
    """Equal of shape values, where it is known from the dims alone: torch's `expand(B, -1, -1)`
    compares the sizes with -1 (a free dim is a size, never negative); None when not such."""
    if not (isinstance(a, Dims) or isinstance(b, Dims)):
        return None
    da, db = dims_of(a), dims_of(b)
    if da is None or db is None or (len(da) != len(db) and min(len(da), len(db)) != 1):
        return None
    n = max(len(da), len(db))
    da, db = (da * n if len(da) == 1 else da), (db * n if len(db) == 1 else db)
    out = []
    for x, y in zip(da, db):
        if x == y:
            out.append(True)
        elif x.is_const() and y.is_const():
            out.append(False)
        elif (x.is_const() and x.value < 1 and y.is_positive()) or (y.is_const() and y.value < 1 and x.is_positive()):
            out.append(False)
        else:
            return None
    return Const(np.asarray(out, dtype=bool).reshape(() if _scalar(a) and _scalar(b) else (-1,)))


def dims_where(cond: Value, a: Value, b: Value) -> Value | None:
    """Where choosing between shape values on a condition known at import time."""
    if not (isinstance(a, Dims) or isinstance(b, Dims)) or not isinstance(cond, Const) or cond.array.ndim > 1:
        return None
    da, db = dims_of(a), dims_of(b)
    if da is None or db is None:
        return None
    flags = [bool(c) for c in cond.array.reshape(-1)]
    n = max(len(flags), len(da), len(db))
    if any(len(v) not in (1, n) for v in (flags, da, db)):
        return None
    flags, da, db = (v * n if len(v) == 1 else v for v in (flags, da, db))
    return _dims_value([x if f else y for f, x, y in zip(flags, da, db)], _scalar(a) and _scalar(b))


@converter("Shape")
def _shape(cv: Converter, node, attrs):
    shape = list(cv.type_of(cv.value(node.input[0])).shape)
    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
    return [_dims_value(shape[slice(start, end)], False)]


@converter("Size")
def _size(cv, node, attrs):
    total = Dim(1)
    for d in cv.type_of(cv.value(node.input[0])).shape:
        total = total * d
    return [_dims_value([total], True)]


@converter("Constant")
def _constant(cv, node, attrs):
    if "value" in attrs:
        return [Const(numpy_helper.to_array(attrs["value"]))]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return [Const(np.asarray(attrs[key], dtype=dtype))]
    raise ImportFailure(f"Constant with {', '.join(attrs) or 'no value'} is not supported")


@converter("ConstantOfShape")
def _constant_of_shape(cv, node, attrs):
    shape = dims_of(cv.value(node.input[0]))
    if shape is None:
        raise ImportFailure("the shape must be known when the model is imported")
    value = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
    dtype = cv.dtype_of(value)
    if not shape:
        return [Const(np.asarray(value.reshape(-1)[0], dtype=dtype))]
    return cv.emit("constant", [], {"value": value.reshape(-1)[0].item(), "shape": shape, "dtype": dtype})


@converter("Range")
def _range(cv, node, attrs):
    start, limit, delta = (known(cv.value(n), "Range's bounds") for n in node.input)
    dtype = cv.type_of(cv.value(node.input[0])).dtype
    return cv.emit("range", [], {"start": start, "limit": limit, "delta": delta, "dtype": dtype})


@converter("Gather")
def _gather(cv, node, attrs):
    data, indices = inputs(cv, node)
    axis = attrs.get("axis", 0)
    dims = dims_of(data) if isinstance(data, Dims) else None
    if dims is not None and isinstance(indices, Const):
        picked = [dims[int(i)] for i in indices.array.reshape(-1)]
        return [_dims_value(picked, indices.array.ndim == 0)]
    return cv.emit("gather", [data, indices], {"axis": axis})


@converter("Concat")
def _concat(cv, node, attrs):
    values = inputs(cv, node)
    if any(isinstance(v, Dims) for v in values):
        parts = [dims_of(v) for v in values]
        if all(p is not None for p in parts):
            return [_dims_value([d for p in parts for d in p], False)]
    return cv.emit("concat", values, {"axis": attrs["axis"]})


@converter("Unsqueeze")
def _unsqueeze(cv, node, attrs):
    x = cv.value(node.input[0])
    axes = arg(cv, node, attrs, "axes", 1)
    if isinstance(x, Dims) and x.scalar and list(axes) == [0]:
        return [Dims(x.dims)]
    return cv.emit("unsqueeze", [x], {"axes": list(axes)})


@converter("Squeeze")
def _squeeze(cv, node, attrs):
    x = cv.value(node.input[0])
    axes = arg(cv, node, attrs, "axes", 1)
    if isinstance(x, Dims) and len(x.dims) == 1 and axes in (None, [0], [-1]):
        return [Dims(x.dims, True)]
    if axes is None:
        axes = [i for i, d in enumerate(cv.type_of(x).shape) if d == 1]
    return cv.emit("squeeze", [x], {"axes": list(axes)})


def _clamp(v):
    if isinstance(v, int):
        return max(min(v, TO_END), -TO_END)
    return v


@converter("Slice")
def _slice(cv, node, attrs):
    x = cv.value(node.input[0])
    starts, ends = arg(cv, node, attrs, "starts", 1), arg(cv, node, attrs, "ends", 2)
    axes, steps = arg(cv, node, attrs, "axes", 3), arg(cv, node, attrs, "steps", 4)
    if isinstance(x, Dims) and all(isinstance(v, int) for v in starts + ends + (steps or [])):
        return [_dims_value(x.dims[slice(starts[0], ends[0], (steps or [1])[0])], False)]
    out = {"starts": [_clamp(v) for v in starts], "ends": [_clamp(v) for v in ends]}
    if axes is not None:
        out["axes"] = list(axes)
    if steps is not None and any(s != 1 for s in steps):
        out["steps"] = list(steps)
    return cv.emit("slice", [x], out)


@converter("Reshape")
def _reshape(cv, node, attrs):
    x = cv.value(node.input[0])
    shape = dims_of(cv.value(node.input[1]))
    if shape is None:
        raise ImportFailure("the target shape is computed from data; graphnet needs it known from shapes")
    if isinstance(x, Dims) and len(shape) == 1:
        return [Dims(x.dims)]
    in_shape = cv.type_of(x).shape
    target = []
    for i, d in enumerate(shape):
        if d == 0 and not attrs.get("allowzero", 0):
            if i >= len(in_shape):
                raise ImportFailure(f"shape entry {i} is 0 (copy) but the input has rank {len(in_shape)}")
            d = in_shape[i]
        target.append(d.value if d.is_const() else d)
    return cv.emit("reshape", [x], {"shape": target})


@converter("Flatten")
def _flatten(cv, node, attrs):
    x = cv.value(node.input[0])
    axis = attrs.get("axis", 1)
    return cv.emit("flatten", [x], {"axis": axis % max(cv.type_of(x).rank, 1) if axis < 0 else axis})


@converter("Transpose")
def _transpose(cv, node, attrs):
    perm = attrs.get("perm")
    return cv.emit("transpose", inputs(cv, node), {"perm": list(perm) if perm is not None else None})


@converter("Split")
def _split(cv, node, attrs):
    x = cv.value(node.input[0])
    sizes = arg(cv, node, attrs, "split", 1)
    n = len(node.output)
    out = {"axis": attrs.get("axis", 0)}
    if sizes is not None:
        out["sizes"] = list(sizes)
    else:
        out["num"] = attrs.get("num_outputs", n)
        axis_dim = cv.type_of(x).shape[out["axis"]]
        if axis_dim.is_const() and axis_dim.value % out["num"]:
            # ONNX's num_outputs lets the last part be smaller; graphnet's num asks for equal ones
            size = -(-axis_dim.value // out["num"])
            out = {"axis": out["axis"], "sizes": [size] * (out["num"] - 1) + [axis_dim.value - size * (out["num"] - 1)]}
    if n == 1:
        return cv.emit("identity", [x])
    return cv.emit("split", [x], out)


@converter("Expand")
def _expand(cv, node, attrs):
    shape = dims_of(cv.value(node.input[1]))
    if shape is None:
        raise ImportFailure("the target shape is computed from data; graphnet needs it known from shapes")
    return cv.emit("expand", [cv.value(node.input[0])], {"shape": [d.value if d.is_const() else d for d in shape]})


@converter("Tile")
def _tile(cv, node, attrs):
    repeats = dims_of(cv.value(node.input[1]))
    if repeats is None:
        raise ImportFailure("repeats must be known when the model is imported")
    return cv.emit("tile", [cv.value(node.input[0])], {"repeats": [d.value if d.is_const() else d for d in repeats]})


@converter("Pad")
def _pad(cv, node, attrs):
    x = cv.value(node.input[0])
    pads = arg(cv, node, attrs, "pads", 1)
    mode = attrs.get("mode", b"constant").decode()
    value = attrs.get("value", None)
    if value is None:
        value = known(input_at(cv, node, 2), "the pad value")
    axes = known(input_at(cv, node, 3), "Pad's axes")
    rank = cv.type_of(x).rank
    if axes is not None:
        full = [0] * 2 * rank
        for i, a in enumerate(axes):
            full[a % rank], full[rank + a % rank] = pads[i], pads[len(axes) + i]
        pads = full
    if any(not isinstance(p, int) or p < 0 for p in pads):
        raise ImportFailure(f"pads {pads}: graphnet's pad takes known, non-negative pads")
    out = {"pads": list(pads), "mode": mode}
    if value is not None and mode == "constant":
        out["value"] = float(value if not isinstance(value, list) else (value[0] if value else 0.0))
    return cv.emit("pad", [x], out)


@converter("Trilu")
def _trilu(cv, node, attrs):
    k = known(input_at(cv, node, 1), "Trilu's k")
    return cv.emit("trilu", [cv.value(node.input[0])], {"upper": bool(attrs.get("upper", 1)), "k": int(k or 0)})



@converter("GatherElements")
def _gather_elements(cv, node, attrs):
    """out[.., j, ..] = data[.., idx[.., j, ..], ..] along `axis`, written with graphnet's ops as a
    one-hot sum (graphnet has no gather_elements): where(idx == k, data[k], 0) summed over k, one
    k matching. Exact: the other terms are zeros (a -0.0 picked comes back +0.0). BERT's
    token-type buffer is read this way."""
    data, idx = inputs(cv, node)
    dt, it = cv.type_of(data), cv.type_of(idx)
    rank = dt.rank
    axis = attrs.get("axis", 0) % max(rank, 1)
    if it.rank != rank:
        raise ImportFailure(f"indices of rank {it.rank} for data of rank {rank}")
    size = dt.shape[axis]
    if not size.is_const():
        raise ImportFailure(f"the gathered axis has the free size {size}; graphnet needs it known")
    for a in range(rank):
        if a != axis and dt.shape[a] != it.shape[a]:
            data = cv.emit("slice", [data], {"starts": [0], "ends": [_plain(it.shape[a])], "axes": [a]})[0]
    zero_i = Const(np.zeros((), dtype=it.dtype))
    wrapped = cv.emit("where", [cv.emit("less", [idx, zero_i])[0],
                                cv.emit("add", [idx, Const(np.asarray(size.value, dtype=it.dtype))])[0], idx])[0]
    keys = Const(np.arange(size.value, dtype=it.dtype).reshape([size.value if a == axis + 1 else 1
                                                               for a in range(rank + 1)]))
    hot = cv.emit("equal", [cv.emit("unsqueeze", [wrapped], {"axes": [axis + 1]})[0], keys])[0]
    spread = cv.emit("unsqueeze", [data], {"axes": [axis]})[0]
    picked = cv.emit("where", [hot, spread, Const(np.zeros((), dtype=cv.type_of(data).dtype))])[0]
    return cv.emit("reduce_sum", [picked], {"axes": [axis + 1], "keepdims": False})


def _plain(d: Dim):
    return d.value if d.is_const() else d
