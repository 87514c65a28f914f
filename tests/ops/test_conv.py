"""Depthwise convolutions on their flat-window path (ops/depthwise.py) against onnx.reference's
Conv: strides (the phases), channel multipliers, dilation, uneven and 'same' padding, a batch, and
channel blocks that do not divide the channels."""

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from graphnet.ops import depthwise
from graphnet.ops.conv import Conv


def _reference(x, w, b, **attrs):
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "xwb"],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ReferenceEvaluator(model).run(None, {"x": x, "w": w, "b": b})[0]


@pytest.mark.parametrize("channels, multiplier, size, pads, dilation, stride, block", [
    (8, 1, (7, 8), 1, 1, 1, None),
    (4, 2, (34, 35), [0, 1, 2, 0], 2, 1, None),
    (3, 1, (5, 5), 0, 1, 1, None),
    (6, 1, (29, 29), "same", 1, 1, None),
    (4, 1, (11, 12), 1, 1, 2, None),
    (2, 2, (17, 15), [0, 1, 2, 0], 2, 3, None),
    (3, 1, (61, 62), "same", 1, 2, None),
    (7, 1, (9, 10), 1, 1, 1, 3),             # blocks of 3, 3 and 1 channels
    (5, 2, (13, 12), [1, 0, 0, 1], 1, 2, 2),
])
def test_depthwise_matches_onnx_reference(monkeypatch, channels, multiplier, size, pads, dilation, stride, block):
    if block:
        # the bytes that make `block` channels, so that each image goes in several blocks
        op = Conv(pads=pads, groups=channels, dilations=dilation, strides=stride)
        shape, w_shape = (2, channels) + size, (channels * multiplier, 1, 3, 3)
        amounts, strides, dilations, out, itemsize = _geometry(op, shape, w_shape)
        per_channel = depthwise._per_channel(shape, w_shape, amounts, strides, dilations, out) * itemsize
        monkeypatch.setattr(depthwise, "BLOCK_BYTES", block * per_channel)
        assert depthwise.block_channels(shape, w_shape, amounts, strides, dilations, out, itemsize) == block
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, channels) + size).astype(np.float32)
    w = rng.standard_normal((channels * multiplier, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(channels * multiplier).astype(np.float32)
    op = Conv(pads=pads, groups=channels, dilations=dilation, strides=stride)
    y = op.compute(x, w, b)
    attrs = {"group": channels, "dilations": [dilation] * 2, "kernel_shape": [3, 3], "strides": [stride] * 2}
    if pads == "same":
        attrs["auto_pad"] = "SAME_UPPER"
    else:
        attrs["pads"] = [pads] * 4 if isinstance(pads, int) else pads
    np.testing.assert_allclose(y, _reference(x, w, b, **attrs), rtol=1e-5, atol=1e-5)


def _geometry(op, shape, w_shape):
    """(amounts, strides, dilations, out, itemsize): what depthwise's sizes take, as Conv works them out."""
    from graphnet.dims import Dim
    from graphnet.ops.base import as_list
    from graphnet.ops.conv import pad_amounts, resolve_pads, window_output
    strides, dilations = as_list(op.strides, 2, "strides"), as_list(op.dilations, 2, "dilations")
    pads = resolve_pads(op.pads, 2)
    out = [int(window_output(Dim(shape[2 + i]), 3, strides[i], dilations[i], pads, i, 2)[0]) for i in range(2)]
    return pad_amounts(shape, [3, 3], strides, dilations, pads, out), strides, dilations, out, 4


# -- 'same' pads on free spatial dims in the export -----------------------------------------------

FREE_SAME_SPEC = """\
graphnet: 1
name: free_same
dims: {{B: ~, H: ~, W: ~}}
inputs:
  x: [B, 2, H, W]
params:
  w: {{shape: [3, 2, 3, 2], init: {{normal: {{std: 1}}}}}}
nodes:
  - {{name: c, op: conv, inputs: [x, w], attrs: {{pads: {pads}, dilations: {dilations}, strides: {strides}}}}}
outputs: {{y: c}}
"""


@pytest.mark.parametrize("pads, dilations, strides", [
    ("same_upper", 2, 2), ("same_lower", [3, 2], [2, 3]), ("same", 2, 1), ("same_lower", 1, 5)])
def test_same_pads_on_free_dims_export_for_every_size(tmp_path, pads, dilations, strides):
    # onnxruntime refuses auto_pad with dilations when the model runs, so where the pads depend
    # on the sizes the export computes them from the input's shape; torch.nn.functional.conv2d on
    # the input padded by the formula is the oracle, at every size the export has to cover
    torch = pytest.importorskip("torch")
    import onnx
    import onnxruntime as ort

    import graphnet as gn
    from graphnet.ops.conv import same_pads

    spec = tmp_path / "spec.yaml"
    spec.write_text(FREE_SAME_SPEC.format(pads=pads, dilations=dilations, strides=strides))
    net = gn.load(spec)
    weights = net.init_weights()
    model = net.to_onnx(weights)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    dl, st = ([d] * 2 if isinstance(d, int) else d for d in (dilations, strides))
    rng = np.random.default_rng(0)
    for h, w in [(5, 7), (8, 8), (11, 6), (12, 13), (16, 9)]:
        x = rng.standard_normal((1, 2, h, w)).astype(np.float32)
        (top, bottom), (left, right) = (same_pads(size, k, s, d, pads) for size, k, s, d in zip((h, w), (3, 2), st, dl))
        padded = torch.nn.functional.pad(torch.from_numpy(x), (left, right, top, bottom))
        want = torch.nn.functional.conv2d(padded, torch.from_numpy(weights["w"]), stride=st, dilation=dl).numpy()
        np.testing.assert_allclose(net.run({"x": x}, weights)["y"], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(session.run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-5)
