"""The op contract's gradient half, over the whole registry: for every example of every op with a
vjp, the gradient graph autodiff builds from the op's vjp gives, on the NumPy back end, the
gradients of central finite differences of the op's own kernel (float64) and of PyTorch's autograd
running the same function (torch's ops, where torch has the op); exported, the gradient graph passes
ONNX's checker and onnxruntime gives the same gradients. An op without a vjp says why."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from graphnet.backends.numpy_backend import compile_plan, run_plan
from graphnet.backends.onnx_export import to_onnx
from graphnet.errors import Location
from graphnet.graph import Frame, Graph, Node
from graphnet.ops import REGISTRY, Op, ShapeError, TensorType
from graphnet.transforms.autodiff import COTANGENT, GRAD, gradient_graph
from graphnet.types import FLOAT_DTYPES

from vjp_oracles import TORCH

DIFFERENTIABLE = [cls for cls in REGISTRY if not cls.no_vjp]
# examples whose attributes the op's vjp does not cover: each is a located error, never a gradient
UNCOVERED = {("einsum", 5): "diagonal", ("einsum", 6): "diagonal", ("einsum", 7): "broadcasts along '...'"}


def _differentiates(cls, index) -> bool:
    """Whether the example has a float input and a float output: something to differentiate."""
    made = _example_graph(cls, index, "float32")
    if made is None:
        return False
    graph = made[1]
    return (any(t.dtype in FLOAT_DTYPES for t in graph.inputs.values())
            and any(graph.types[t].dtype in FLOAT_DTYPES for t in graph.outputs.values()))


def _cases():
    return [pytest.param(cls, i, id=f"{cls.name}-{i}") for cls in DIFFERENTIABLE for i in range(len(cls.examples))
            if (cls.name, i) not in UNCOVERED and _differentiates(cls, i)]


def test_every_op_has_a_vjp_or_says_why_not():
    for cls in REGISTRY:
        has = cls.vjp is not Op.vjp
        assert has != bool(cls.no_vjp), cls.name


@pytest.mark.parametrize("name,index", sorted(UNCOVERED))
def test_what_a_vjp_does_not_cover_is_a_located_error(name, index):
    from graphnet.errors import SpecError
    from graphnet.ops import OPS
    op, graph, arrays, names = _example_graph(OPS[name], index, "float64")
    with pytest.raises(SpecError, match=f"<test>:1:1: error: node 'op' \\({name}\\): has no gradient: .*"
                                        + UNCOVERED[(name, index)]):
        gradient_graph(graph, list(arrays))


def _example_graph(cls, index: int, dtype: str):
    """The op's example as a one-node graph, float inputs in `dtype`; None when the op refuses it."""
    example = cls.examples[index]
    rng = np.random.default_rng(sum(map(ord, cls.name)) + index)
    op = cls.model_validate(example.attrs)
    arrays, names, types = {}, [], {}
    for i, spec in enumerate(example.inputs):
        if spec is None:
            names.append(None)
            continue
        value = spec.make(rng)
        if value.dtype.kind == "f":
            value = value.astype(dtype)
        arrays[f"in{i}"] = value
        types[f"in{i}"] = TensorType(str(value.dtype), value.shape)
        names.append(f"in{i}")
    while names and names[-1] is None:
        names.pop()
    try:
        out = op.infer(*[types[n] if n else None for n in names])
    except ShapeError:
        return None
    outs_t = (out,) if isinstance(out, TensorType) else tuple(out)
    outs = tuple(f"out{i}" for i in range(len(outs_t)))
    types.update(zip(outs, outs_t))
    node = Node("op", op, tuple(names), outs, (Frame(Location("<test>"), "op", ""),))
    graph = Graph(cls.name, {n: types[n] for n in arrays}, {o: o for o in outs}, {}, [node], types)
    return op, graph, arrays, names


def _case(cls, index):
    """(op, graph, arrays, names, cotangents, grad graph, dtype), float64 where the op takes it."""
    for dtype in ("float64", "float32"):
        made = _example_graph(cls, index, dtype)
        if made is not None:
            break
    op, graph, arrays, names = made
    floats = [n for n in arrays if arrays[n].dtype.kind == "f"]
    outs = [o for o, t in graph.outputs.items() if graph.types[t].dtype in FLOAT_DTYPES]
    rng = np.random.default_rng(7)
    cot = {o: rng.standard_normal([d.value for d in graph.types[o].shape]).astype(graph.types[o].dtype) for o in outs}
    return op, graph, arrays, names, floats, cot, gradient_graph(graph, floats), dtype


def _numpy_grads(grad, arrays, cot):
    plan = compile_plan(grad, {}, {})
    out = run_plan(plan, {**arrays, **{COTANGENT + o: c for o, c in cot.items()}})
    return {k[len(GRAD):]: v for k, v in out.items() if k.startswith(GRAD)}


def _objective(op, names, arrays, cot):
    """sum(cotangent * output) of the op's kernel in float64, as a function of the named inputs."""
    def f(values):
        args = [values[n] if n else None for n in names]
        out = op.compute(*args)
        out = out if isinstance(out, tuple) else (out,)
        return sum(float(np.sum(out[int(o[3:])].astype(np.float64) * c)) for o, c in cot.items())
    return f


def _finite_differences(f, arrays, wrt, eps=1e-6, most=48):
    """Central differences of f at up to `most` entries of each input (the rest NaN, not compared)."""
    rng = np.random.default_rng(3)
    base = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
    grads = {}
    for name in wrt:
        x = base[name]
        g = np.full(x.shape, np.nan)
        picks = rng.choice(x.size, size=min(most, x.size), replace=False)
        for flat in picks:
            index = np.unravel_index(flat, x.shape)
            up, down = dict(base), dict(base)
            up[name], down[name] = x.copy(), x.copy()
            up[name][index] += eps
            down[name][index] -= eps
            g[index] = (f(up) - f(down)) / (2 * eps)
        grads[name] = g
    return grads


def _close(got, want, tol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    mask = ~np.isnan(want)
    scale = max(float(np.max(np.abs(want[mask]), initial=0.0)), 1.0)
    np.testing.assert_allclose(got[mask], want[mask], rtol=tol, atol=tol * scale)


CASES = _cases()


@pytest.mark.parametrize("cls,index", CASES)
def test_vjp_matches_finite_differences(cls, index):
    op, graph, arrays, names, floats, cot, grad, dtype = _case(cls, index)
    if any(graph.types[o].dtype != dtype for o in cot):
        pytest.skip("a narrower output: differences would see its rounding (the torch test covers it)")
    got = _numpy_grads(grad, arrays, cot)
    f64 = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
    want = _finite_differences(_objective(op, names, f64, cot), f64, floats)
    for name in floats:
        assert got[name].dtype == arrays[name].dtype and got[name].shape == arrays[name].shape
        _close(got[name], want[name], 1e-6 if dtype == "float64" else 1e-4)


TORCH_CASES = [p for p in CASES if p.values[0].name in TORCH]


def test_most_differentiable_ops_have_a_torch_oracle():
    missing = sorted({cls.name for cls in DIFFERENTIABLE} - set(TORCH))
    assert len(missing) <= 12, missing


@pytest.mark.parametrize("cls,index", TORCH_CASES)
def test_vjp_matches_torch_autograd(cls, index):
    torch = pytest.importorskip("torch")
    op, graph, arrays, names, floats, cot, grad, dtype = _case(cls, index)
    got = _numpy_grads(grad, arrays, cot)
    tensors = {k: torch.tensor(v, requires_grad=k in floats) for k, v in arrays.items()}
    out = TORCH[cls.name](op, *[tensors[n] if n else None for n in names])
    out = out if isinstance(out, tuple) else (out,)
    total = sum((out[int(o[3:])] * torch.tensor(c)).sum() for o, c in cot.items())
    total.backward()
    for name in floats:
        want = tensors[name].grad
        want = np.zeros(arrays[name].shape) if want is None else want.numpy()
        _close(got[name], want, 1e-6 if dtype == "float64" else 1e-4)


@pytest.mark.parametrize("cls,index", CASES)
def test_gradient_graph_exports_and_onnxruntime_agrees(cls, index):
    op, graph, arrays, names, floats, cot, grad, dtype = _case(cls, index)
    want = _numpy_grads(grad, arrays, cot)
    model = to_onnx(grad, {}, opset=17)
    onnx.checker.check_model(model, full_check=True)
    feed = {**arrays, **{COTANGENT + o: c for o, c in cot.items()}}
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in model.graph.output], session.run(None, feed)))
    except Exception as e:   # onnxruntime lacks some float64 kernels (ConvTranspose, LSTM): run float32
        if dtype != "float64" or not ("NOT_IMPLEMENTED" in str(e) or "does not support double" in str(e)):
            raise
        return _onnxruntime_in_float32(cls, index)
    for name in floats:
        _close(got[GRAD + name], want[name], 1e-9 if dtype == "float64" else 1e-5)


def _onnxruntime_in_float32(cls, index):
    op, graph, arrays, names = _example_graph(cls, index, "float32")
    floats = [n for n in arrays if arrays[n].dtype.kind == "f"]
    rng = np.random.default_rng(7)
    cot = {o: rng.standard_normal([d.value for d in graph.types[o].shape]).astype(graph.types[o].dtype)
           for o in graph.outputs if graph.types[o].dtype in FLOAT_DTYPES}
    grad = gradient_graph(graph, floats)
    want = _numpy_grads(grad, arrays, cot)
    model = to_onnx(grad, {}, opset=17)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in model.graph.output],
                   session.run(None, {**arrays, **{COTANGENT + o: c for o, c in cot.items()}})))
    for name in floats:
        _close(got[GRAD + name], want[name], 1e-5)


@pytest.mark.parametrize("name,attrs,torch_fn", [
    ("relu", {}, lambda t: t.relu()), ("abs", {}, lambda t: t.abs()),
    ("clip", {"min": 0.0, "max": 6.0}, lambda t: t.clamp(0.0, 6.0)),
    ("leaky_relu", {"alpha": 0.2}, lambda t: torch_functional().leaky_relu(t, 0.2)),
    ("elu", {"alpha": 0.7}, lambda t: torch_functional().elu(t, 0.7)),
    ("hard_sigmoid", {"alpha": 1 / 6, "beta": 0.5}, lambda t: torch_functional().hardsigmoid(t)),
    ("hard_swish", {}, lambda t: torch_functional().hardswish(t))])
def test_a_kink_takes_the_side_torch_takes(name, attrs, torch_fn):
    """At the kink itself (x exactly 0, or a clip bound) the gradient is a convention; the examples'
    random inputs never hit one, so here they are hit: the same one-sided value as torch's autograd."""
    torch = pytest.importorskip("torch")
    from graphnet.ops import OPS
    x = np.array([-3.0, -1.5, 0.0, 0.5, 3.0, 6.0, 7.0], np.float64)
    node = Node("op", OPS[name](**attrs), ("x",), ("y",), (Frame(Location("<test>"), "op", ""),))
    t = TensorType("float64", x.shape)
    grad = gradient_graph(Graph(name, {"x": t}, {"y": "y"}, {}, [node], {"x": t, "y": t}), ["x"])
    dy = np.arange(1.0, 8.0)
    got = _numpy_grads(grad, {"x": x}, {"y": dy})["x"]
    tx = torch.tensor(x, requires_grad=True)
    (torch_fn(tx) * torch.tensor(dy)).sum().backward()
    # torch computes hardsigmoid's 1/6 in float32 even for float64 tensors
    np.testing.assert_allclose(got, tx.grad.numpy(), rtol=1e-7, atol=0)


def torch_functional():
    import torch
    return torch.nn.functional
