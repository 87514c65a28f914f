"""expand, tile, pad and flip beyond the contract examples: free dims in their attributes (through
a spec, the NumPy back end and onnxruntime), and the shape-rule errors; gather's index range."""

import textwrap

import numpy as np
import onnxruntime as ort
import pytest

import graphnet as gn
from graphnet.dims import Dim
from graphnet.ops import ShapeError, TensorType
from graphnet.ops.base import KernelError
from graphnet.ops.reduce import ReduceL2, ReduceMin
from graphnet.ops.shape import Expand, Tile
from graphnet.ops.slicing import Flip, Gather, Pad

B, T = Dim("B"), Dim("T")


def t(*shape, dtype="float32"):
    return TensorType(dtype, shape)


def test_symbolic_shapes():
    assert Expand(shape=[B, 1, 4]).infer(t(1, 3, 1)).shape == (B, 3, 4)
    assert Expand(shape=[2, 1]).infer(t(B, 1, 5)).shape == (B, 2, 5)
    assert Expand(shape=[B, 5]).infer(t(B, 1)).shape == (B, 5)
    assert Tile(repeats=[2, T]).infer(t(B, 3)).shape == (2 * B, 3 * T)
    assert Pad(pads=[0, 1, 0, T]).infer(t(B, 4)).shape == (B, T + 5)
    assert Flip(axes=[-1]).infer(t(B, T)).shape == (B, T)


def test_expand_tile_pad_flip_with_free_dims_run_and_export(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(textwrap.dedent("""\
        graphnet: 1
        name: shape_ops
        dims: {B: ~, T: ~}
        inputs:
          x: [1, T]
          z: [B, 3]
        nodes:
          - {name: e, op: expand, inputs: [x], attrs: {shape: [B, 1]}}
          - {name: p, op: pad, inputs: [e], attrs: {pads: [0, 1, 0, 2], mode: edge}}
          - {name: f, op: flip, inputs: [p], attrs: {axes: [1]}}
          - {name: r, op: tile, inputs: [z], attrs: {repeats: [1, T]}}
        outputs: {f: f, r: r}
        """))
    net = gn.load(spec)
    assert net.outputs == {"f": ("B", "T + 3"), "r": ("B", "3*T")}
    rng = np.random.default_rng(0)
    inputs = {"x": rng.uniform(-1, 1, (1, 5)).astype(np.float32), "z": rng.uniform(-1, 1, (4, 3)).astype(np.float32)}
    got = net.run(inputs)
    want_f = np.flip(np.pad(np.broadcast_to(inputs["x"], (4, 5)), [(0, 0), (1, 2)], mode="edge"), 1)
    np.testing.assert_array_equal(got["f"], want_f)
    np.testing.assert_array_equal(got["r"], np.tile(inputs["z"], (1, 5)))
    for opset in (17, 21):
        session = ort.InferenceSession(net.to_onnx(opset=opset).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        f, r = session.run(["f", "r"], inputs)
        np.testing.assert_array_equal(f, want_f)
        np.testing.assert_array_equal(r, got["r"])


@pytest.mark.parametrize("op,x,message", [
    (Expand(shape=[3, 5]), t(3, 4), r"cannot expand float32\[3, 4\] to shape \[3, 5\]: dim -1 is 4 in x but 5 in "
                                    r"shape; each pair must match or one of them be 1"),
    (Expand(shape=[T, 4]), t(B, 4), r"dim -2 is B in x but T in shape \(not provably equal\)"),
    (Expand(shape=[0, 4]), t(1, 4), r"shape \[0, 4\] has a dim that is not positive: 0"),
    (Tile(repeats=[2]), t(3, 4), r"repeats \[2\] has 1 values but x float32\[3, 4\] has rank 2"),
    (Tile(repeats=[2, 0]), t(3, 4), r"repeats \[2, 0\] has a value that is not positive: 0"),
    (Pad(pads=[1, 1]), t(3, 4), r"pads has 2 values but a rank-2 input needs 4 \(begins for every axis, then ends\)"),
    (Pad(pads=[1, -1, 0, 0]), t(3, 4), r"pads \[1, -1, 0, 0\] has a negative value: -1"),
    (Pad(pads=[0, 4, 0, 0], mode="reflect"), t(3, 4),
     r"reflect pad 4 on axis 1 of float32\[3, 4\] is too large: at most 3 \(the dim - 1\)"),
    (Pad(pads=[0, 1, 0, 0], mode="edge", value=2.0), t(3, 4), "value 2.0 is used only with mode constant, not edge"),
    (Pad(pads=[0, 1, 0, 0], value=0.5), t(3, 4, dtype="int64"), r"value 0.5 is not a whole number, but x is int64"),
    (Pad(pads=[0, 1], value=2), t(3, dtype="bool"), "value 2.0 must be 0 or 1 to pad a bool tensor"),
    (Flip(axes=[2]), t(3, 4), "axis 2 is out of range for rank 2"),
    (Flip(axes=[1, -1]), t(3, 4), r"axes \[1, -1\] repeat an axis"),
    (ReduceL2(), t(3, dtype="int64"), r"input must be a float tensor, got int64\[3\]"),
    (ReduceMin(), t(3, dtype="bool"), r"reduce_min needs numbers, got bool\[3\]"),
])
def test_shape_errors_say_what_was_expected(op, x, message):
    with pytest.raises(ShapeError, match=message):
        op.infer(x)


def test_pad_modes_and_values():
    x = np.int64([[1, 2, 3]])
    assert Pad(pads=[0, 2, 0, 1], mode="reflect").compute(x).tolist() == [[3, 2, 1, 2, 3, 2]]
    assert Pad(pads=[0, 2, 0, 1], mode="edge").compute(x).tolist() == [[1, 1, 1, 2, 3, 3]]
    assert Pad(pads=[1, 0, 0, 0], value=-7).compute(x).tolist() == [[-7, -7, -7], [1, 2, 3]]


def test_flip_every_axis_by_default(onnxruntime_run):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(Flip().compute(x), x[::-1, ::-1])
    np.testing.assert_array_equal(onnxruntime_run(Flip(), {"x": x}), x[::-1, ::-1])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_takes_the_indices_onnxruntime_takes(onnxruntime_run, axis):
    # ONNX Gather's indices run from -n to n - 1; one past either end is refused by both, and the
    # kernel's message names the index, where it is and the valid range
    data = np.arange(15, dtype=np.float32).reshape(3, 5)
    n = data.shape[axis]
    for i in range(-n - 2, n + 2):
        indices = np.array([0, i], np.int64)
        if -n <= i < n:
            np.testing.assert_array_equal(Gather(axis=axis).compute(data, indices),
                                          onnxruntime_run(Gather(axis=axis), {"data": data, "indices": indices}))
            continue
        with pytest.raises(KernelError) as refused:
            Gather(axis=axis).compute(data, indices)
        assert str(refused.value) == (f"indices[1] is {i}, out of range for the {n} entries of data along "
                                      f"axis {axis} (valid: {-n} to {n - 1})")
        with pytest.raises(Exception, match="out of data bounds"):
            onnxruntime_run(Gather(axis=axis), {"data": data, "indices": indices})


@pytest.mark.parametrize("perm, lowered", [([0, 2, 1, 3], "Reshape"), ([1, 0, 2, 3], "Transpose"),
                                           ([0, 3, 2, 1], "Transpose")])
def test_a_transpose_moving_only_axes_of_size_1_is_a_reshape(perm, lowered):
    # onnxslim rewrites such a Transpose into a Reshape (swin_t's one-window last stage), so the
    # export writes the Reshape; one that moves the free B, or data, stays a Transpose
    from onnx import helper

    from graphnet.backends.onnx_export import OnnxBuilder
    from graphnet.ops import OPS
    op = OPS["transpose"](perm=perm)
    b = OnnxBuilder(17, {"x": TensorType("float32", (Dim("B"), 1, 7, 5))}, {})
    b.symbol_sources["B"] = ("x", 0)
    y = op.to_onnx(b, "x")
    assert [n.op_type for n in b.nodes] == [lowered]
    graph = helper.make_graph(b.nodes, "g", [helper.make_tensor_value_info("x", 1, ["B", 1, 7, 5])],
                              [helper.make_tensor_value_info(y, 1, None)], list(b.initializers.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(0).standard_normal((3, 1, 7, 5)).astype(np.float32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, np.transpose(x, perm))
