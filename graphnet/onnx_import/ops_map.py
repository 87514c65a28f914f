"""How each ONNX op becomes graphnet ops: one converter per ONNX op type, attributes rewritten
where the two differ (Gemm's transposes and scales, Conv's auto_pad, Clip's and Pad's inputs,
Reshape's 0, opset 13's Softmax coercion), shape arithmetic folded (ops_shape.py).

A converter takes the Converter, the NodeProto and its decoded attributes and returns one Value per
ONNX output. Attributes that moved to inputs across opsets (Squeeze's axes, Clip's bounds, Pad's
pads, Slice's bounds, Split's sizes, Reduce's axes) are read from either place, so one converter
serves opsets 7 to 21."""

from __future__ import annotations

import numpy as np
import onnx

from .args import arg, converter, float_of, input_at, inputs, refuse_attrs, unused_outputs
from .convert import FOLD_LIMIT, Const, Dims, ImportFailure, Value
from .ops_shape import dims_arithmetic, dims_equal, dims_where

# -- elementwise --------------------------------------------------------------------------------

UNARY = {"Abs": "abs", "Neg": "neg", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal",
         "Sin": "sin", "Cos": "cos", "Erf": "erf", "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu",
         "Softplus": "softplus", "HardSwish": "hard_swish"}
BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Equal": "equal",
          "Less": "less", "Greater": "greater"}


@converter(*UNARY)
def _unary(cv, node, attrs):
    return cv.emit(UNARY[node.op_type], inputs(cv, node))


@converter("Identity")
def _identity(cv, node, attrs):
    v = cv.value(node.input[0])
    if isinstance(v, Const) and v.name is not None and node.output[0]:
        # an exporter's deduplicated initializer: the copy is a param of its own name
        return [Const(v.array, node.output[0])]
    return [v]


@converter(*BINARY)
def _binary(cv, node, attrs):
    a, b = inputs(cv, node)
    folded = dims_equal(a, b) if node.op_type == "Equal" else dims_arithmetic(node.op_type, a, b)
    if folded is not None:
        return [folded]
    return cv.emit(BINARY[node.op_type], [a, b])


# -- logic, as where over bools (graphnet has no and/or/not ops; where lowers to them) -------------

_TRUE, _FALSE = Const(np.asarray(True)), Const(np.asarray(False))


def _not(cv, x):
    return cv.emit("where", [x, _FALSE, _TRUE])[0]


@converter("And", "Or", "Xor", "Not")
def _logic(cv, node, attrs):
    a, *rest = inputs(cv, node)
    if node.op_type == "Not":
        return [_not(cv, a)]
    b = rest[0]
    if node.op_type == "And":
        return cv.emit("where", [a, b, _FALSE])
    if node.op_type == "Or":
        return cv.emit("where", [a, _TRUE, b])
    return cv.emit("where", [a, _not(cv, b), b])


@converter("GreaterOrEqual", "LessOrEqual")
def _compare_or_equal(cv, node, attrs):
    a, b = inputs(cv, node)
    strict = cv.emit("greater" if node.op_type == "GreaterOrEqual" else "less", [a, b])[0]
    # (a > b) or (a == b): false where either is NaN, as ONNX says
    return cv.emit("where", [strict, _TRUE, cv.emit("equal", [a, b])[0]])


@converter("IsNaN")
def _is_nan(cv, node, attrs):
    x = cv.value(node.input[0])
    return [_not(cv, cv.emit("equal", [x, x])[0])]


@converter("Mod")
def _mod(cv, node, attrs):
    # graphnet has no mod op; exporters write Mod on sizes (torch's MultiheadAttention checks
    # embed_dim % num_heads), which is known when the model is imported
    a, b = inputs(cv, node)
    folded = dims_arithmetic("Mod", a, b) if not attrs.get("fmod", 0) else None
    if folded is not None:
        return [folded]
    if isinstance(a, Const) and isinstance(b, Const) and a.array.size <= FOLD_LIMIT and b.array.size <= FOLD_LIMIT:
        with np.errstate(all="ignore"):
            rule = np.fmod if attrs.get("fmod", 0) else np.mod
            return [Const(np.asarray(rule(a.array, b.array), dtype=a.array.dtype))]
    raise ImportFailure("Mod of tensors computed from the data: graphnet has no mod op (only Mod of sizes "
                        "and constants, known when the model is imported, is imported)")


@converter("Max", "Min", "Sum", "Mean")
def _variadic(cv, node, attrs):
    op = {"Max": "max", "Min": "min", "Sum": "add", "Mean": "add"}[node.op_type]
    values = inputs(cv, node)
    acc = values[0]
    for v in values[1:]:
        acc = cv.emit(op, [acc, v])[0]
    if node.op_type == "Mean" and len(values) > 1:
        n = Const(np.asarray(len(values), dtype=cv.type_of(acc).dtype))
        acc = cv.emit("div", [acc, n])[0]
    if len(values) == 1:
        acc = cv.emit("identity", [acc])[0]
    return [acc]


@converter("Where")
def _where(cv, node, attrs):
    folded = dims_where(*inputs(cv, node))
    if folded is not None:
        return [folded]
    return cv.emit("where", inputs(cv, node))


@converter("LeakyRelu")
def _leaky(cv, node, attrs):
    return cv.emit("leaky_relu", inputs(cv, node), {"alpha": float_of(attrs.get("alpha", 0.01))})


@converter("Elu")
def _elu(cv, node, attrs):
    return cv.emit("elu", inputs(cv, node), {"alpha": float_of(attrs.get("alpha", 1.0))})


@converter("HardSigmoid")
def _hard_sigmoid(cv, node, attrs):
    return cv.emit("hard_sigmoid", inputs(cv, node), {"alpha": float_of(attrs.get("alpha", 0.2)),
                                                      "beta": float_of(attrs.get("beta", 0.5))})


@converter("Gelu")
def _gelu(cv, node, attrs):
    return cv.emit("gelu", inputs(cv, node), {"approximate": attrs.get("approximate", b"none").decode()})


@converter("PRelu")
def _prelu(cv, node, attrs):
    x, slope = inputs(cv, node)
    xt, st = cv.type_of(x), cv.type_of(slope)
    if cv.original_opset < 7 and st.rank == 1 and xt.rank > 2 and st.shape[0] == xt.shape[1] != xt.shape[-1]:
        # PRelu-6 applied a [C] slope per channel; onnx's version converter leaves it for opset
        # 7's NumPy broadcasting, which would read it along the last axis
        slope = cv.emit("reshape", [slope], {"shape": [st.shape[0]] + [1] * (xt.rank - 2)})[0]
    zero = Const(np.zeros((), dtype=cv.type_of(x).dtype))
    neg = cv.emit("min", [x, zero])[0]
    return cv.emit("add", [cv.emit("relu", [x])[0], cv.emit("mul", [neg, slope])[0]])


@converter("Clip")
def _clip(cv, node, attrs):
    lo, hi = arg(cv, node, attrs, "min", 1), arg(cv, node, attrs, "max", 2)
    out = {}
    if lo is not None:
        out["min"] = float(lo)
    if hi is not None:
        out["max"] = float(hi)
    return cv.emit("clip", [cv.value(node.input[0])], out)


@converter("Cast")
def _cast(cv, node, attrs):
    from .convert import ONNX_TO_DTYPE
    to = ONNX_TO_DTYPE.get(attrs["to"])
    if to is None:
        raise ImportFailure(f"cast to {onnx.TensorProto.DataType.Name(attrs['to'])}, a dtype graphnet has not")
    x = cv.value(node.input[0])
    if isinstance(x, Dims) and to == "int64":
        return [x]
    return cv.emit("cast", [x], {"to": to})


@converter("Dropout")
def _dropout(cv, node, attrs):
    unused_outputs(cv, node, 1, why="graphnet's dropout has no mask output")
    return cv.emit("identity", [cv.value(node.input[0])])


# -- linear algebra, normalization --------------------------------------------------------------

@converter("MatMul")
def _matmul(cv, node, attrs):
    a, b = inputs(cv, node)
    if (isinstance(b, Const) and b.name in cv.scoped and b.array.ndim == 2 and b.array.dtype.kind == "f"
            and cv.scoped[b.name].endswith(".weight")):
        # torch writes a Linear on a 3-D input as MatMul by its weight transposed, stored under a
        # name of its own ('onnx::MatMul_123'): the param is the module's weight as torch holds it,
        # [out, in] at 'encoder.layer.0.attention.self.query.weight', read through a transpose
        # (std.linear's own form)
        weight = cv.materialize(Const(np.ascontiguousarray(b.array.T), b.name))
        b = cv.add_node(cv.make_op("transpose", {}), [weight.ref], cv.hint("weight_t"))[0]
    return cv.emit("matmul", [a, b])


@converter("Einsum")
def _einsum(cv, node, attrs):
    return cv.emit("einsum", inputs(cv, node), {"equation": attrs["equation"].decode()})


@converter("Gemm")
def _gemm(cv, node, attrs):
    a, b = cv.value(node.input[0]), cv.value(node.input[1])
    c = input_at(cv, node, 2)
    if attrs.get("transA", 0):
        a = cv.emit("transpose", [a])[0]
    if attrs.get("transB", 0):
        b = cv.emit("transpose", [b])[0]
    y = cv.emit("matmul", [a, b])[0]
    dtype = cv.type_of(y).dtype
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        y = cv.emit("mul", [y, Const(np.asarray(alpha, dtype=dtype))])[0]
    if c is not None and beta != 0.0:
        if beta != 1.0:
            c = cv.emit("mul", [c, Const(np.asarray(beta, dtype=dtype))])[0]
        y = cv.emit("add", [y, c])[0]
    return [y]


@converter("BatchNormalization")
def _batch_norm(cv, node, attrs):
    refuse_attrs(attrs, training_mode=0, spatial=1, is_test=(0, 1))
    unused_outputs(cv, node, 1, 2, 3, 4, why="graphnet's batch_norm is the inference form")
    return cv.emit("batch_norm", inputs(cv, node)[:5], {"epsilon": float_of(attrs.get("epsilon", 1e-5))})


@converter("LayerNormalization")
def _layer_norm(cv, node, attrs):
    refuse_attrs(attrs, stash_type=1)
    unused_outputs(cv, node, 1, 2, why="graphnet's layer_norm gives only the normalized tensor")
    return cv.emit("layer_norm", inputs(cv, node), {"axis": attrs.get("axis", -1),
                                                   "epsilon": float_of(attrs.get("epsilon", 1e-5))})


@converter("LRN")
def _lrn(cv, node, attrs):
    """x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels) ^ beta: the window
    sum is an average pool over the channel axis (a new axis 1 made spatial), pads counted."""
    x = cv.value(node.input[0])
    t = cv.type_of(x)
    size = attrs["size"]
    alpha, beta, bias = (float_of(attrs.get(k, d)) for k, d in (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0)))
    rank = t.rank
    if rank < 3:
        raise ImportFailure(f"LRN needs [N, C, ...], got rank {rank}")
    square = cv.emit("mul", [x, x])[0]
    lifted = cv.emit("unsqueeze", [square], {"axes": [1]})[0]
    n = rank - 1
    pads = [(size - 1) // 2] + [0] * (n - 1) + [size // 2] + [0] * (n - 1)
    mean = cv.emit("avg_pool", [lifted], {"kernel": [size] + [1] * (n - 1), "strides": 1, "pads": pads,
                                          "count_include_pad": True})[0]
    window = cv.emit("squeeze", [mean], {"axes": [1]})[0]
    dtype = t.dtype
    scaled = cv.emit("add", [cv.emit("mul", [window, Const(np.asarray(alpha, dtype))])[0],
                             Const(np.asarray(bias, dtype))])[0]
    return cv.emit("div", [x, cv.emit("pow", [scaled, Const(np.asarray(beta, dtype))])[0]])


@converter("Softmax", "LogSoftmax")
def _softmax(cv, node, attrs):
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    x = cv.value(node.input[0])
    rank = cv.type_of(x).rank
    if cv.opset >= 13:
        return cv.emit(op, [x], {"axis": attrs.get("axis", -1)})
    axis = attrs.get("axis", 1) % max(rank, 1)
    if axis == rank - 1:
        return cv.emit(op, [x], {"axis": -1})
    # before opset 13 the input is coerced to 2-D at `axis` and normalized over the second part
    shape = list(cv.type_of(x).shape)
    flat = cv.emit("flatten", [x], {"axis": axis})[0]
    y = cv.emit(op, [flat], {"axis": -1})[0]
    return cv.emit("reshape", [y], {"shape": shape})


# -- convolution and pooling --------------------------------------------------------------------

def _spatial_pads(cv, x: Value, attrs: dict, kernel: list[int], strides: list[int], dilations: list[int]):
    auto = attrs.get("auto_pad", b"NOTSET").decode()
    n = len(kernel)
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * 2 * n))
        return pads
    if auto == "VALID":
        return [0] * 2 * n
    spatial = cv.type_of(x).shape[2:]
    begins, ends = [], []
    for i in range(n):
        if not spatial[i].is_const():
            if strides[i] != 1:
                raise ImportFailure(f"auto_pad {auto} with stride {strides[i]} over the free dim {spatial[i]}")
            total = (kernel[i] - 1) * dilations[i]
        else:
            size = spatial[i].value
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
        small = total // 2
        begins.append(small if auto == "SAME_UPPER" else total - small)
        ends.append(total - small if auto == "SAME_UPPER" else small)
    return begins + ends


def _compact(values: list):
    """One number where every axis has the same (graphnet's short form)."""
    return values[0] if values and all(v == values[0] for v in values) else list(values)


def _pads_attr(pads: list[int]):
    n = len(pads) // 2
    if pads[:n] == pads[n:]:
        return _compact(pads[:n])
    return list(pads)


@converter("Conv", "ConvTranspose")
def _conv(cv, node, attrs):
    x, w = cv.value(node.input[0]), cv.value(node.input[1])
    kernel = [int(d) for d in cv.type_of(w).shape[2:]]
    n = len(kernel)
    strides = list(attrs.get("strides", [1] * n))
    dilations = list(attrs.get("dilations", [1] * n))
    out = {"strides": _compact(strides), "dilations": _compact(dilations), "groups": attrs.get("group", 1)}
    if node.op_type == "ConvTranspose":
        if "output_shape" in attrs:
            raise ImportFailure("ConvTranspose's output_shape attribute is not supported; give pads")
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
            raise ImportFailure("ConvTranspose's auto_pad SAME is not supported; give pads")
        out["pads"] = _pads_attr(list(attrs.get("pads", [0] * 2 * n)))
        out["output_padding"] = _compact(list(attrs.get("output_padding", [0] * n)))
        return cv.emit("conv_transpose", inputs(cv, node), out)
    out["pads"] = _pads_attr(_spatial_pads(cv, x, attrs, kernel, strides, dilations))
    return cv.emit("conv", inputs(cv, node), out)


@converter("MaxPool", "AveragePool", "LpPool")
def _pool(cv, node, attrs):
    op = {"MaxPool": "max_pool", "AveragePool": "avg_pool", "LpPool": "lp_pool"}[node.op_type]
    unused_outputs(cv, node, 1, why="graphnet's max_pool has no indices output")
    refuse_attrs(attrs, storage_order=0)
    x = cv.value(node.input[0])
    kernel = list(attrs["kernel_shape"])
    n = len(kernel)
    strides = list(attrs.get("strides", [1] * n))
    dilations = list(attrs.get("dilations", [1] * n))
    out = {"kernel": _compact(kernel), "strides": _compact(strides),
           "pads": _pads_attr(_spatial_pads(cv, x, attrs, kernel, strides, dilations))}
    if any(d != 1 for d in dilations):
        out["dilations"] = _compact(dilations)
    if attrs.get("ceil_mode", 0):
        out["ceil_mode"] = True
    if op == "avg_pool" and attrs.get("count_include_pad", 0):
        out["count_include_pad"] = True
    if op == "lp_pool":
        out["p"] = attrs.get("p", 2)
    return cv.emit(op, [x], out)


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(cv, node, attrs):
    return cv.emit("global_avg_pool" if node.op_type == "GlobalAveragePool" else "global_max_pool",
                   inputs(cv, node))


# -- reductions ---------------------------------------------------------------------------------

REDUCE = {"ReduceSum": "reduce_sum", "ReduceMean": "reduce_mean", "ReduceMax": "reduce_max",
          "ReduceMin": "reduce_min", "ReduceL2": "reduce_l2"}


@converter(*REDUCE)
def _reduce(cv, node, attrs):
    axes = arg(cv, node, attrs, "axes", 1)
    x = cv.value(node.input[0])
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return cv.emit("identity", [x])
        axes = None
    return cv.emit(REDUCE[node.op_type], [x], {"axes": axes, "keepdims": bool(attrs.get("keepdims", 1))})


# -- recurrent ----------------------------------------------------------------------------------

@converter("LSTM", "GRU", "RNN")
def _recurrent(cv, node, attrs):
    op = node.op_type.lower()
    ins = inputs(cv, node) + [None] * 8
    if ins[4] is not None:
        raise ImportFailure("sequence_lens is not supported (every sequence has the full length)")
    if op == "lstm" and ins[7] is not None:
        raise ImportFailure("peephole weights (input P) are not supported")
    refuse_attrs(attrs, clip=None, input_forget=0)
    defaults = {"lstm": [b"Sigmoid", b"Tanh", b"Tanh"], "gru": [b"Sigmoid", b"Tanh"], "rnn": [b"Tanh"]}[op]
    acts = attrs.get("activations")
    if acts is not None and [a.lower() for a in acts] != [a.lower() for a in defaults] * (len(acts) // len(defaults)):
        raise ImportFailure(f"activations {acts} are not supported (only ONNX's defaults)")
    out = {"hidden_size": attrs["hidden_size"], "direction": attrs.get("direction", b"forward").decode(),
           "layout": attrs.get("layout", 0)}
    if op == "gru":
        out["linear_before_reset"] = bool(attrs.get("linear_before_reset", 0))
    data = ins[:4] + ins[5:7] if op == "lstm" else ins[:4] + ins[5:6]
    return cv.emit(op, data, out)

