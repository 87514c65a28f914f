"""conv_transpose beyond the contract examples: PyTorch's conv_transpose1d/2d/3d with groups,
dilation and output_padding (and onnxruntime where onnx.reference's grouped ConvTranspose is
wrong), symbolic shapes, MACs and the shape-rule errors."""

import numpy as np
import pytest

from graphnet.dims import Dim
from graphnet.ops import ShapeError, TensorType
from graphnet.ops.conv_transpose import ConvTranspose

CASES = [
    # x shape, w shape, attrs
    ((2, 4, 5, 6), (4, 3, 3, 3), dict(groups=2, strides=2, pads=1, output_padding=1, dilations=1)),
    ((1, 6, 4, 5), (6, 2, 3, 2), dict(groups=3, strides=[2, 3], pads=[1, 0], output_padding=[1, 2], dilations=[2, 1])),
    ((2, 4, 7), (4, 2, 3), dict(groups=4, strides=2, pads=2, output_padding=0, dilations=3)),
    ((1, 4, 3, 4, 2), (4, 1, 2, 3, 2), dict(groups=2, strides=[2, 1, 2], pads=[0, 1, 0], output_padding=[1, 0, 1],
                                            dilations=[1, 2, 1])),
    ((2, 3, 4, 4), (3, 5, 4, 4), dict(groups=1, strides=1, pads=3, output_padding=0, dilations=1)),
]


def _arrays(x_shape, w_shape, groups):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, x_shape).astype(np.float32)
    w = rng.uniform(-1, 1, w_shape).astype(np.float32)
    b = rng.uniform(-1, 1, (w_shape[1] * groups,)).astype(np.float32)
    return x, w, b


@pytest.mark.parametrize("x_shape,w_shape,attrs", CASES)
def test_matches_pytorch(x_shape, w_shape, attrs):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
    x, w, bias = _arrays(x_shape, w_shape, attrs["groups"])
    op = ConvTranspose(**attrs)
    out = op.infer(TensorType("float32", x_shape), TensorType("float32", w_shape), TensorType("float32", bias.shape))
    got = op.compute(x, w, bias)
    fn = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
          3: torch.nn.functional.conv_transpose3d}[len(x_shape) - 2]
    want = fn(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias), stride=attrs["strides"],
              padding=attrs["pads"], output_padding=attrs["output_padding"], groups=attrs["groups"],
              dilation=attrs["dilations"]).numpy()
    assert got.shape == want.shape == tuple(d.value for d in out.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x_shape,w_shape,attrs", CASES)
def test_grouped_with_bias_matches_onnxruntime(x_shape, w_shape, attrs, onnxruntime_run):
    # The contract test also runs onnx.reference, whose ConvTranspose mishandles groups with more
    # than one input channel per group and bias; onnxruntime is the oracle for these.
    x, w, bias = _arrays(x_shape, w_shape, attrs["groups"])
    op = ConvTranspose(**attrs)
    for opset in (17, 21):
        got = onnxruntime_run(op, {"x": x, "w": w, "b": bias}, opset)
        np.testing.assert_allclose(op.compute(x, w, bias), got, rtol=1e-5, atol=1e-5)


def test_symbolic_spatial_dims_and_macs():
    op = ConvTranspose(strides=2, pads=1, output_padding=1)
    x = TensorType("float32", (Dim("B"), 8, Dim("H"), Dim("W")))
    w = TensorType("float32", (8, 4, 3, 3))
    y = op.infer(x, w)
    assert y.shape == (Dim("B"), 4, 2 * Dim("H"), 2 * Dim("W"))    # (H-1)*2 - 2 + 3 + 1
    # every input element meets C_out/groups x kernel-area weights
    assert op.macs([x, w], [y]) == Dim("B") * Dim("H") * Dim("W") * 8 * 4 * 9
    grouped = ConvTranspose(groups=4)
    wg = TensorType("float32", (8, 2, 3, 3))
    yg = grouped.infer(x, wg)
    assert yg.shape[1] == 8
    assert grouped.macs([x, wg], [yg]) == Dim("B") * Dim("H") * Dim("W") * 8 * 2 * 9


@pytest.mark.parametrize("x,w,b,attrs,message", [
    ((1, 3, 5, 5), (4, 2, 3, 3), None, {}, r"input has 3 channels but w float32\[4, 2, 3, 3\] expects 4 "
                                          r"\(w is \[C_in, C_out/groups, \*kernel\]\)"),
    ((1, 6, 5, 5), (6, 2, 3, 3), None, {"groups": 4}, "6 input channels do not divide into 4 groups"),
    ((1, 4, 5, 5), (4, 2, 3, 3), (3,), {"groups": 2}, r"bias must be \[4\] \(C_out = 2 per group x 2 groups\), "
                                                      r"got float32\[3\]"),
    ((1, 4, 5, 5), (4, 2, 3, 3), None, {"strides": 2, "output_padding": 2},
     "output_padding 2 on spatial axis 0 must be smaller than the stride 2 or the dilation 1"),
    ((1, 4, 2), (4, 2, 3), None, {"pads": 3},
     r"output length -2 along spatial axis 0 is not positive: pads 3 \+ 3 crop more than the 4 cells"),
    ((1, 4, 5), (4, 2, 3, 3), None, {}, "of one rank, got x float32\\[1, 4, 5\\] and w float32\\[4, 2, 3, 3\\]"),
    ((1, 4, 5, 5), (4, 2, 3, 3), None, {"strides": [1, 2, 3]}, "strides has 3 values but the input has 2 spatial"),
    ((1, 4, 5, 5), (4, 2, 3, 3), None, {"strides": 0}, r"strides must be positive, got \[0, 0\]"),
    ((1, 4, 5, 5), (4, 2, 3, 3), None, {"pads": [1, -1]}, r"pads must be non-negative"),
])
def test_shape_errors_say_what_was_expected(x, w, b, attrs, message):
    args = [TensorType("float32", x), TensorType("float32", w)] + ([TensorType("float32", b)] if b else [])
    op = ConvTranspose(**attrs)
    with pytest.raises(ShapeError, match=message):
        op.infer(*args)


@pytest.mark.parametrize("strides, dilations, output_padding, pads", [
    (1, 2, 1, 1), (1, 3, 2, 2), (2, 3, 2, 1), (1, 3, 1, 2), (2, 3, 2, 2)])
def test_output_padding_past_the_stride_exports_as_less_cropping(strides, dilations, output_padding, pads,
                                                                   onnxruntime_run):
    # PyTorch allows output_padding under the stride or the dilation, onnxruntime only under the
    # stride: the export crops fewer cells at the end instead, which are the same cells
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 6)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3)).astype(np.float32)
    want = torch.nn.functional.conv_transpose1d(torch.from_numpy(x), torch.from_numpy(w), stride=strides,
                                                padding=pads, output_padding=output_padding,
                                                dilation=dilations).numpy()
    op = ConvTranspose(strides=strides, dilations=dilations, output_padding=output_padding, pads=pads)
    np.testing.assert_allclose(op.compute(x, w), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(onnxruntime_run(op, {"x": x, "w": w}), want, rtol=1e-5, atol=1e-5)


def test_output_padding_past_the_end_pad_and_the_stride_is_refused():
    op = ConvTranspose(strides=1, dilations=3, output_padding=2, pads=[0, 1])
    with pytest.raises(ShapeError, match=r"output_padding 2 on spatial axis 0, past the end pad 1, must be smaller "
                                         r"than the stride 1 \(onnxruntime's ConvTranspose refuses more"):
        op.infer(TensorType("float32", (1, 2, 6)), TensorType("float32", (2, 3, 3)))
