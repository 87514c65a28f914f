"""Elementwise ops beyond the contract examples: ONNX defaults that differ from PyTorch's
(hard_sigmoid), the activations against PyTorch, dtype rules and cast semantics."""

import numpy as np
import pytest

from graphnet.ops import OPS, ShapeError, TensorType
from graphnet.ops.activations import Elu, HardSigmoid
from graphnet.ops.elementwise import Cast, Equal, Less

X = np.linspace(-7, 7, 141, dtype=np.float32)


def test_hard_sigmoid_defaults_are_onnx_not_pytorch():
    op = HardSigmoid()
    assert (op.alpha, op.beta) == (0.2, 0.5)
    np.testing.assert_allclose(op.compute(X), np.clip(0.2 * X + 0.5, 0, 1), rtol=1e-6)
    assert op.compute(np.float32([-2.5, 2.5])).tolist() == [0.0, 1.0]     # saturates at +-2.5, not +-3
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
    pytorch_like = HardSigmoid(alpha=1 / 6)
    np.testing.assert_allclose(pytorch_like.compute(X), torch.nn.functional.hardsigmoid(torch.from_numpy(X)).numpy(),
                               rtol=1e-6, atol=1e-7)
    assert not np.allclose(op.compute(X), torch.nn.functional.hardsigmoid(torch.from_numpy(X)).numpy())


@pytest.mark.parametrize("name,attrs,reference", [
    ("hard_swish", {}, "hardswish"),
    ("silu", {}, "silu"),
    ("softplus", {}, "softplus"),
    ("elu", {}, "elu"),
    ("elu", {"alpha": 0.3}, "elu"),
    ("erf", {}, "erf"),
    ("abs", {}, "abs"),
    ("reciprocal", {}, "reciprocal"),
    ("sin", {}, "sin"),
    ("cos", {}, "cos"),
])
def test_activations_match_pytorch(name, attrs, reference):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
    x = X[X != 0] if name == "reciprocal" else X
    fn = getattr(torch.nn.functional, reference, None) or getattr(torch, reference)
    kwargs = {"alpha": attrs["alpha"]} if "alpha" in attrs else {}
    want = fn(torch.from_numpy(x), **kwargs).numpy()
    got = OPS[name](**attrs).compute(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


def test_softplus_and_silu_do_not_overflow():
    big = np.float32([-100.0, 100.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_allclose(OPS["softplus"]().compute(big), [0.0, 100.0, 1e4], atol=1e-30)
        np.testing.assert_allclose(OPS["silu"]().compute(big), [0.0, 100.0, 1e4], atol=1e-30)
        np.testing.assert_allclose(Elu().compute(np.float32([-1e4, 1e4])), [-1.0, 1e4])


@pytest.mark.parametrize("name", ["abs", "neg"])
def test_sign_ops_take_integers_but_not_bools(name):
    assert OPS[name]().infer(TensorType("int64", (3,))).dtype == "int64"
    with pytest.raises(ShapeError, match=rf"{name} needs numbers, got bool\[3\]"):
        OPS[name]().infer(TensorType("bool", (3,)))


@pytest.mark.parametrize("name", ["reciprocal", "sin", "cos", "erf", "softplus", "hard_swish", "silu", "elu",
                                  "hard_sigmoid"])
def test_float_only_activations_refuse_integers(name):
    with pytest.raises(ShapeError, match=r"input must be a float tensor, got int64\[2\]"):
        OPS[name]().infer(TensorType("int64", (2,)))


def test_comparisons_give_bools_and_broadcast():
    y = Less().infer(TensorType("float32", (4, 1, 3)), TensorType("float32", (5, 3)))
    assert (y.dtype, tuple(d.value for d in y.shape)) == ("bool", (4, 5, 3))
    assert Equal().infer(TensorType("bool", (2,)), TensorType("bool", (2,))).dtype == "bool"
    with pytest.raises(ShapeError, match=r"greater needs numbers, got bool\[2\] and bool\[2\]"):
        OPS["greater"]().infer(TensorType("bool", (2,)), TensorType("bool", (2,)))
    with pytest.raises(ShapeError, match="inputs must have one dtype"):
        Equal().infer(TensorType("int64", (2,)), TensorType("float32", (2,)))
    with pytest.raises(ShapeError, match=r"cannot broadcast \[2, 3\] with \[4\]"):
        Less().infer(TensorType("float32", (2, 3)), TensorType("float32", (4,)))


def test_max_min_broadcast_and_keep_dtype():
    a, b = np.int64([[1, 5], [7, -2]]), np.int64([3, 3])
    assert OPS["max"]().compute(a, b).tolist() == [[3, 5], [7, 3]]
    assert OPS["min"]().compute(a, b).tolist() == [[1, 3], [3, -2]]
    with pytest.raises(ShapeError, match="max needs numbers"):
        OPS["max"]().infer(TensorType("bool", (2,)), TensorType("bool", (2,)))


def test_cast_follows_onnx(onnxruntime_run):
    x = np.float32([-2.7, -0.5, 0.0, 0.5, 2.7])
    assert Cast(to="int64").compute(x).tolist() == [-2, 0, 0, 0, 2]          # toward zero
    assert Cast(to="bool").compute(x).tolist() == [True, True, False, True, True]
    assert Cast(to="float16").infer(TensorType("float32", (5,))).dtype == "float16"
    for to in ("int64", "int32", "bool", "float16", "float64"):
        np.testing.assert_array_equal(onnxruntime_run(Cast(to=to), {"x": x}), Cast(to=to).compute(x))
    with pytest.raises(Exception, match="to"):
        Cast(to="complex64")
