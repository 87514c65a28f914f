"""PyTorch's version of each op that torch has, for test_vjp.py: op name -> f(op, *tensors), the
op's attributes read from `op`. Autograd through these is the oracle for the ops' vjps."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from graphnet.ops.conv import SAME, resolve_pads, same_pads


def _binary(f):
    return lambda op, a, b: f(a, b)


def _unary(f):
    return lambda op, x: f(x)


def _axes(op, rank):
    return list(range(rank)) if op.axes is None else [a % rank for a in op.axes]


def _reduce(f):
    def run(op, x):
        axes = _axes(op, x.ndim)
        return f(x, axes, op.keepdims) if axes else x
    return run


def _cumsum(op, x):
    axis = op.axis % x.ndim
    y = x.flip(axis) if op.reverse else x
    total = torch.cumsum(y, axis) - (y if op.exclusive else 0)
    return total.flip(axis) if op.reverse else total


def _padded(x, op, kernel, strides, dilations, fill=0.0):
    """x padded as the op pads it (explicit, or 'same' worked out from the sizes), for torch's
    window ops, which take only symmetric padding."""
    n = x.ndim - 2
    pads = resolve_pads(op.pads, n)
    if pads == "valid":
        return x
    if pads in SAME:
        amounts = [same_pads(x.shape[2 + i], kernel[i], strides[i], dilations[i], pads) for i in range(n)]
    else:
        amounts = [(pads[i], pads[i + n]) for i in range(n)]
    flat = [v for a in reversed(amounts) for v in a]
    return F.pad(x, flat, value=fill)


def _per_axis(value, n):
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def _conv(op, x, w, b=None):
    n = x.ndim - 2
    strides, dilations = _per_axis(op.strides, n), _per_axis(op.dilations, n)
    conv = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    return conv(_padded(x, op, list(w.shape[2:]), strides, dilations), w, b, stride=strides, dilation=dilations,
                groups=op.groups)


def _conv_transpose(op, x, w, b=None):
    n = x.ndim - 2
    pads = resolve_pads(op.pads, n)
    f = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
    y = f(x, w, b, stride=_per_axis(op.strides, n), dilation=_per_axis(op.dilations, n),
          output_padding=_per_axis(op.output_padding, n), groups=op.groups)
    # torch pads symmetrically: crop the full result as the op's begins and ends say
    full = f(x, w, None, stride=_per_axis(op.strides, n), dilation=_per_axis(op.dilations, n), groups=op.groups,
             output_padding=_per_axis(op.output_padding, n))
    index = [slice(None), slice(None)] + [slice(pads[i], full.shape[2 + i] - pads[i + n]) for i in range(n)]
    return y[tuple(index)]


def _pool_args(op, x):
    n = x.ndim - 2
    kernel = _per_axis(op.kernel, n)
    strides = _per_axis(op.strides if op.strides is not None else op.kernel, n)
    return n, kernel, strides, _per_axis(op.dilations, n)


def _max_pool(op, x):
    n, kernel, strides, dilations = _pool_args(op, x)
    f = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1]
    return f(_padded(x, op, kernel, strides, dilations, float("-inf")), kernel, strides, dilation=dilations,
             ceil_mode=op.ceil_mode)


def _avg_pool(op, x):
    n, kernel, strides, _ = _pool_args(op, x)
    pads = resolve_pads(op.pads, n)
    f = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
    if pads == "valid" or pads in SAME or len(set(pads)) > 1 and pads[:n] != pads[n:]:
        return None
    return f(x, kernel, strides, padding=pads[:n], ceil_mode=op.ceil_mode, count_include_pad=op.count_include_pad)


def _lp_pool(op, x):
    # (sum |x|^p)^(1/p) over each window of x padded with zeros, written with torch's ops
    n, kernel, strides, dilations = _pool_args(op, x)
    padded = _padded(x, op, kernel, strides, dilations)
    total = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1](padded.abs() ** op.p, kernel, strides)
    return (total * float(torch.tensor(kernel).prod())) ** (1.0 / op.p)


def _slice(op, x):
    n = len(op.starts)
    axes = op.axes if op.axes is not None else list(range(n))
    steps = op.steps or [1] * n
    for axis, start, end, step in zip(axes, op.starts, op.ends, steps):
        axis %= x.ndim
        r = range(*slice(int(start), min(int(end), 2**62), step).indices(x.shape[axis]))
        x = torch.index_select(x, axis, torch.tensor(list(r), dtype=torch.long))
    return x


def _split(op, x):
    sizes = [int(s) for s in op.sizes] if op.sizes is not None else x.shape[op.axis] // op.num
    return tuple(torch.split(x, sizes, dim=op.axis))


def _pad(op, x):
    rank = x.ndim
    pads = [int(p) for p in op.pads]
    flat = [v for i in reversed(range(rank)) for v in (pads[i], pads[i + rank])]
    if op.mode == "constant":
        return F.pad(x, flat, value=op.value)
    # torch pads the last two axes of a batch of images this way: the leading axes are unpadded
    batched = x.reshape((1,) * (4 - rank) + tuple(x.shape))
    y = F.pad(batched, flat[:4], mode="reflect" if op.mode == "reflect" else "replicate")
    return y.reshape(y.shape[4 - rank:])


def _einsum(op, *xs):
    return torch.einsum(op.equation.replace(" ", ""), *xs)


def _matmul(op, a, b):
    return torch.matmul(a, b)


TORCH = {
    "abs": _unary(torch.abs), "add": _binary(torch.add), "sub": _binary(torch.sub), "mul": _binary(torch.mul),
    "div": _binary(torch.div), "max": _binary(torch.maximum), "min": _binary(torch.minimum),
    "pow": _binary(torch.pow), "neg": _unary(torch.neg), "exp": _unary(torch.exp), "log": _unary(torch.log),
    "sqrt": _unary(torch.sqrt), "tanh": _unary(torch.tanh), "sigmoid": _unary(torch.sigmoid),
    "relu": _unary(torch.relu), "reciprocal": _unary(torch.reciprocal), "sin": _unary(torch.sin),
    "cos": _unary(torch.cos), "softplus": _unary(F.softplus), "hard_swish": _unary(F.hardswish),
    "erf": _unary(torch.erf), "silu": _unary(F.silu), "identity": _unary(lambda x: x * 1),
    "dropout": _unary(lambda x: x * 1),
    "clip": lambda op, x: torch.clamp(x, op.min, op.max),
    "leaky_relu": lambda op, x: F.leaky_relu(x, op.alpha),
    "elu": lambda op, x: F.elu(x, op.alpha),
    "gelu": lambda op, x: F.gelu(x, approximate=op.approximate),
    "hard_sigmoid": lambda op, x: torch.clamp(x * op.alpha + op.beta, 0, 1),
    "where": lambda op, c, a, b: torch.where(c, a, b),
    "cast": lambda op, x: x.to(getattr(torch, op.to)),
    "matmul": _matmul,
    "softmax": lambda op, x: torch.softmax(x, op.axis),
    "log_softmax": lambda op, x: torch.log_softmax(x, op.axis),
    "reduce_sum": _reduce(lambda x, a, k: torch.sum(x, a, keepdim=k)),
    "reduce_mean": _reduce(lambda x, a, k: torch.mean(x, a, keepdim=k)),
    "reduce_max": _reduce(lambda x, a, k: torch.amax(x, a, keepdim=k)),
    "reduce_min": _reduce(lambda x, a, k: torch.amin(x, a, keepdim=k)),
    "reduce_l2": _reduce(lambda x, a, k: torch.linalg.vector_norm(x, 2, a, keepdim=k)),
    "layer_norm": lambda op, x, s, b=None: F.layer_norm(x, s.shape, s, b, op.epsilon),
    "batch_norm": lambda op, x, s, b, m, v: (x - m.reshape((1, -1) + (1,) * (x.ndim - 2))) / torch.sqrt(
        v.reshape((1, -1) + (1,) * (x.ndim - 2)) + op.epsilon) * s.reshape((1, -1) + (1,) * (x.ndim - 2))
        + b.reshape((1, -1) + (1,) * (x.ndim - 2)),
    "conv": _conv, "conv_transpose": _conv_transpose,
    "max_pool": _max_pool, "avg_pool": _avg_pool, "lp_pool": _lp_pool,
    "global_avg_pool": lambda op, x: torch.mean(x, list(range(2, x.ndim)), keepdim=True),
    "global_max_pool": lambda op, x: torch.amax(x, list(range(2, x.ndim)), keepdim=True),
    "roll": lambda op, x: torch.roll(x, list(op.shifts), list(op.axes)),
    "cumsum": lambda op, x: _cumsum(op, x),
    # ONNX's 0 copies the input's dim; torch has no such entry
    "reshape": lambda op, x: torch.reshape(x, [int(d) or x.shape[i] for i, d in enumerate(op.shape)]),
    "transpose": lambda op, x: torch.permute(x, op.axes(x.ndim)),
    "flatten": lambda op, x: torch.flatten(x, 0, op.axis - 1 if op.axis > 0 else 0).flatten(1)
        if op.axis > 0 else x.reshape(1, -1),
    "concat": lambda op, *xs: torch.cat(xs, op.axis),
    "split": _split, "slice": _slice, "pad": _pad,
    "gather": lambda op, d, i: torch.index_select(d, op.axis % d.ndim, (i % d.shape[op.axis]).reshape(-1)).reshape(
        d.shape[:op.axis % d.ndim] + i.shape + d.shape[op.axis % d.ndim + 1:]),
    "unsqueeze": lambda op, x: x.reshape([int(d) for d in op.infer(_type(x)).shape]),
    "squeeze": lambda op, x: x.reshape([int(d) for d in op.infer(_type(x)).shape]),
    "expand": lambda op, x: x.expand(*[int(d) for d in op.infer(_type(x)).shape]),
    "tile": lambda op, x: x.repeat(*[int(r) for r in op.repeats]),
    "flip": lambda op, x: torch.flip(x, op.normalized(x.ndim)),
    "trilu": lambda op, x: torch.triu(x, op.k) if op.upper else torch.tril(x, op.k),
    "einsum": _einsum,
    "resize": lambda op, x: _resize(op, x),
    "adaptive_avg_pool": lambda op, x: (F.adaptive_avg_pool1d if x.ndim == 3 else F.adaptive_avg_pool2d)(
        x, op.output_size),
    "group_norm": lambda op, x, s=None, b=None: F.group_norm(x, op.groups, s, b, op.epsilon),
    "depth_to_space": lambda op, x: _depth_to_space(op, x),
    "topk": lambda op, x: torch.topk(x, op.k, op.axis, op.largest, sorted=True),
}


def _resize(op, x):
    # ONNX's modes as PyTorch's interpolate names them (graphnet/ops/resize.py's docstring)
    size = [int(d) for d in op.infer(_type(x)).shape[2:]]
    if op.mode == "nearest":
        mode = {("asymmetric", "floor"): "nearest", ("half_pixel", "round_prefer_ceil"): "nearest-exact"}[
            (op.coordinate_transformation_mode, op.nearest_mode)]
        return F.interpolate(x, size=size, mode=mode)
    mode = {3: "linear", 4: "bilinear"}[x.ndim]
    return F.interpolate(x, size=size, mode=mode, align_corners=op.coordinate_transformation_mode == "align_corners")


def _depth_to_space(op, x):
    if op.mode == "CRD":
        return F.pixel_shuffle(x, op.blocksize)
    n, c, h, w = x.shape
    b = op.blocksize
    return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


def _type(x):
    from graphnet.ops import TensorType
    return TensorType(str(x.dtype).replace("torch.", ""), tuple(x.shape))
