"""Pooling beyond the contract examples: global_max_pool on 1-D and 3-D inputs (where onnx.reference
is wrong), lp_pool against PyTorch, and the lp_pool attributes it refuses."""

import numpy as np
import pytest

from graphnet.dims import Dim
from graphnet.ops import ShapeError, TensorType
from graphnet.ops.conv import Conv
from graphnet.ops.pool import AvgPool, GlobalMaxPool, LpPool, MaxPool


@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 2, 3, 2, 4), (2, 2, 1, 1)])
def test_global_max_pool_any_rank_matches_onnxruntime(shape, onnxruntime_run):
    x = np.random.default_rng(0).uniform(-2, 2, shape).astype(np.float32)
    op = GlobalMaxPool()
    y = op.compute(x)
    assert y.shape == shape[:2] + (1,) * (len(shape) - 2) == tuple(d.value for d in op.infer(
        TensorType("float32", shape)).shape)
    np.testing.assert_array_equal(y.reshape(shape[:2]), x.reshape(shape[:2] + (-1,)).max(-1))
    for opset in (17, 21):
        np.testing.assert_array_equal(onnxruntime_run(op, {"x": x}, opset), y)


def test_global_max_pool_needs_spatial_axes():
    message = r"global_max_pool needs \[N, C, \*spatial\] \(rank >= 3\), got float32\[2, 3\]"
    with pytest.raises(ShapeError, match=message):
        GlobalMaxPool().infer(TensorType("float32", (2, 3)))


@pytest.mark.parametrize("kernel,strides", [(2, None), (3, 2), ([3, 2], [1, 2])])
def test_l2_pool_matches_pytorch(kernel, strides):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
    x = np.random.default_rng(0).uniform(-2, 2, (2, 3, 8, 7)).astype(np.float32)
    got = LpPool(kernel=kernel, strides=strides).compute(x)
    want = torch.nn.functional.lp_pool2d(torch.from_numpy(x), 2, kernel, strides).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lp_pool_is_the_p_norm_of_each_window():
    x = np.float32([[[3.0, -4.0, 1.0, -2.0, 2.0]]])
    assert LpPool(kernel=2).compute(x).tolist() == [[[5.0, np.sqrt(5, dtype=np.float32)]]]
    assert LpPool(kernel=2, p=1).compute(x).tolist() == [[[7.0, 3.0]]]
    np.testing.assert_allclose(LpPool(kernel=5, p=3).compute(x), [[[np.cbrt(27 + 64 + 1 + 8 + 8)]]], rtol=1e-6)
    # padded cells are zeros: they add nothing to the norm
    np.testing.assert_allclose(LpPool(kernel=3, strides=3, pads=1).compute(x), [[[5.0, 3.0]]], rtol=1e-6)


@pytest.mark.parametrize("attrs,message", [
    ({"kernel": 2, "p": 0}, "p must be at least 1, got 0"),
    ({"kernel": 2, "ceil_mode": True}, "lp_pool does not support ceil_mode"),
    ({"kernel": 2, "dilations": 2}, r"lp_pool does not support dilations, got 2"),
    ({"kernel": 2, "pads": 2}, "padding 2 must be smaller than the kernel 2"),
    ({"kernel": [2, 2, 2]}, "kernel has 3 values but the input has 2 spatial axes"),
    ({"kernel": 9}, r"window of 9 does not fit spatial dim 8"),
])
def test_lp_pool_refusals(attrs, message):
    with pytest.raises(ShapeError, match=message):
        LpPool(**attrs).infer(TensorType("float32", (1, 2, 8, 8)))


@pytest.mark.parametrize("op, attrs, message", [
    # found by the long fuzz run: `strides: false` reads as 0 and divided by zero
    (MaxPool, {"kernel": 3, "strides": 0}, "strides must be positive, got 0"),
    (MaxPool, {"kernel": [2, 0]}, r"kernel must be positive, got \[2, 0\]"),
    (AvgPool, {"kernel": 2, "pads": -1}, r"pads must be non-negative, got \[-1, -1, -1, -1\]"),
    (Conv, {"dilations": [1, 0]}, r"dilations must be positive, got \[1, 0\]"),
    (Conv, {"strides": -2}, "strides must be positive, got -2"),
])
def test_window_geometry_refusals(op, attrs, message):
    x = TensorType("float32", (1, 4, 8, 8))
    with pytest.raises(ShapeError, match=message):
        if op is Conv:
            op(**attrs).infer(x, TensorType("float32", (4, 4, 3, 3)))
        else:
            op(**attrs).infer(x)


def test_same_pads_with_dilations_on_a_free_dim_are_refused_where_they_vary():
    # a Pad before a pool would count its cells in a mean or shift max_pool's indices, and
    # onnxruntime refuses auto_pad with dilations, so only a stride of 1 (fixed pads) is taken
    x = TensorType("float32", (1, 2, Dim("H")))
    with pytest.raises(ShapeError, match=r"pads 'same_upper' with dilations \[2\] and strides \[2\] on the free spatial "
                                         r"dims \[H\]: the pads depend on the sizes"):
        MaxPool(kernel=3, strides=2, pads="same_upper", dilations=2).infer(x)
    assert MaxPool(kernel=3, strides=1, pads="same", dilations=2).infer(x).shape[2] == Dim("H")


def test_same_pads_with_dilations_at_stride_1_run_in_onnxruntime_on_a_free_dim(tmp_path):
    # at stride 1 the pads are fixed whatever the size, so the export writes them out
    torch = pytest.importorskip("torch")
    import onnxruntime as ort

    import graphnet as gn
    spec = tmp_path / "spec.yaml"
    spec.write_text("graphnet: 1\nname: p\ndims: {B: ~, H: ~}\ninputs:\n  x: [B, 2, H]\nnodes:\n"
                    "  - {name: p, op: max_pool, attrs: {kernel: 3, strides: 1, pads: same, dilations: 2}}\n"
                    "outputs: {y: p}\n")
    net = gn.load(spec)
    session = ort.InferenceSession(net.to_onnx({}).SerializeToString(), providers=["CPUExecutionProvider"])
    for size in (4, 9, 16):
        x = np.random.default_rng(size).standard_normal((1, 2, size)).astype(np.float32)
        padded = torch.nn.functional.pad(torch.from_numpy(x), (2, 2), value=-np.inf)
        want = torch.nn.functional.max_pool1d(padded, 3, 1, dilation=2).numpy()
        np.testing.assert_allclose(net.run({"x": x})["y"], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(session.run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-6)
