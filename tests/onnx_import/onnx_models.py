"""Hand-built ONNX models in the idioms of opsets 7, 11, 13 and 17 (the way exporters of those
years wrote them), for the import tests. Each is checked by onnx's full checker when made."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


def _init(name, *shape, scale=0.3, positive=False):
    a = RNG.standard_normal(shape).astype(np.float32) * scale
    return numpy_helper.from_array(np.abs(a) + 0.5 if positive else a, name)


def _ints(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _model(nodes, inputs, outputs, inits, opset):
    graph = helper.make_graph(nodes, f"opset{opset}_net", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tests")
    model.ir_version = 7 if opset < 15 else 8
    onnx.checker.check_model(model, full_check=True)
    return model


def opset7_mlp():
    """Gemm with transB and a broadcast C, Sum/Max variadic, Softmax with the old axis default."""
    n = helper.make_node
    nodes = [n("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
             n("Relu", ["h"], ["r"], name="relu"),
             n("Gemm", ["r", "w2", "b2"], ["z"], alpha=0.5, beta=2.0, name="fc2"),
             n("Sum", ["z", "z", "z"], ["s"], name="sum"),
             n("Max", ["s", "z"], ["m"], name="max"),
             n("Softmax", ["m"], ["y"], name="softmax")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 12])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])],
                  [_init("w1", 16, 12), _init("b1", 16), _init("w2", 16, 5), _init("b2", 5)], 7)


def opset7_upsample():
    """BatchNormalization with the spatial attribute, Upsample with scales as an attribute
    (nearest by 3, where taking the cell below differs from rounding; linear by 2), Sum of one."""
    n = helper.make_node
    nodes = [n("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv"),
             n("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["bn"], epsilon=1e-3, spatial=1, name="bn"),
             n("Relu", ["bn"], ["r"], name="relu"),
             n("Upsample", ["r"], ["up"], mode="nearest", scales=[1.0, 1.0, 3.0, 3.0], name="up_nearest"),
             n("Upsample", ["up"], ["up2"], mode="linear", scales=[1.0, 1.0, 2.0, 2.0], name="up_linear"),
             n("Sum", ["up2"], ["y"], name="sum")]
    inits = [_init("w", 4, 3, 3, 3), _init("g", 4, positive=True), _init("beta", 4), _init("mean", 4),
             _init("var", 4, positive=True)]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 5])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 24, 30])], inits, 7)


def opset9_upsample():
    """Upsample with its scales as an input (opset 9)."""
    n = helper.make_node
    nodes = [n("Upsample", ["x", "scales"], ["y"], mode="nearest", name="up")]
    inits = [numpy_helper.from_array(np.asarray([1.0, 1.0, 2.0, 3.0], np.float32), "scales")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 3])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 6, 9])], inits, 9)


def opset10_resize():
    """Resize-10: scales the second input, coordinates asymmetric; nearest by 3 and linear by 2."""
    n = helper.make_node
    nodes = [n("Resize", ["x", "s3"], ["up"], mode="nearest", name="resize_nearest"),
             n("Resize", ["up", "s2"], ["y"], mode="linear", name="resize_linear")]
    inits = [numpy_helper.from_array(np.asarray([1.0, 1.0, 3.0, 3.0], np.float32), "s3"),
             numpy_helper.from_array(np.asarray([1.0, 1.0, 2.0, 1.0], np.float32), "s2")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 18, 12])], inits, 10)


def opset11_resize():
    """Resize with scales as an input (an empty roi, linear, half_pixel), and with sizes computed
    from the input's shape (empty scales, Shape-Slice-Concat, nearest, asymmetric, round_prefer_ceil)."""
    n = helper.make_node
    nodes = [n("Resize", ["x", "roi", "scales"], ["up"], mode="linear", name="resize_scales"),
             n("Shape", ["up"], ["shape"], name="shape"),
             n("Slice", ["shape", "zero", "two"], ["nc"], name="nc"),
             n("Concat", ["nc", "hw"], ["sizes"], axis=0, name="sizes"),
             n("Resize", ["up", "roi", "roi", "sizes"], ["y"], mode="nearest", coordinate_transformation_mode="asymmetric",
               nearest_mode="round_prefer_ceil", name="resize_sizes")]
    inits = [numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
             numpy_helper.from_array(np.asarray([1.0, 1.0, 2.0, 2.0], np.float32), "scales"),
             _ints("zero", [0]), _ints("two", [2]), _ints("hw", [5, 7])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 5, 7])], inits, 11)


def opset11_cnn():
    """Conv with auto_pad, BatchNormalization, Clip with inputs (relu6), Pad with inputs, MaxPool,
    the Shape-Gather-Unsqueeze-Concat-Reshape idiom, Squeeze/Unsqueeze with attributes."""
    n = helper.make_node
    nodes = [n("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER", name="conv"),
             n("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["bn"], epsilon=1e-3, name="bn"),
             n("Clip", ["bn", "zero", "six"], ["act"], name="relu6"),
             n("Pad", ["act", "pads"], ["padded"], mode="constant", name="pad"),
             n("MaxPool", ["padded"], ["pool"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             n("Shape", ["pool"], ["shape"], name="shape"),
             n("Gather", ["shape", "zero_i"], ["batch"], axis=0, name="gather"),
             n("Unsqueeze", ["batch"], ["batch1"], axes=[0], name="unsq"),
             n("Concat", ["batch1", "minus1"], ["target"], axis=0, name="concat"),
             n("Reshape", ["pool", "target"], ["flat"], name="reshape"),
             n("Unsqueeze", ["flat"], ["flat3"], axes=[1], name="unsq2"),
             n("Squeeze", ["flat3"], ["y"], axes=[1], name="squeeze")]
    inits = [_init("w", 4, 3, 3, 3), _init("b", 4), _init("g", 4, positive=True), _init("beta", 4),
             _init("mean", 4), _init("var", 4, positive=True),
             numpy_helper.from_array(np.float32(0.0), "zero"), numpy_helper.from_array(np.float32(6.0), "six"),
             _ints("pads", [0, 0, 1, 1, 0, 0, 1, 1]), _ints("zero_i", 0), _ints("minus1", [-1])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 9, 9])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", None])], inits, 11)


def opset13_attention():
    """MatMul/Transpose/Softmax attention with Split and Squeeze/Unsqueeze taking inputs,
    ReduceSum with axes as an input, Div by a Constant node, Reshape with 0."""
    n = helper.make_node
    nodes = [n("MatMul", ["x", "wqkv"], ["qkv"], name="qkv"),
             n("Split", ["qkv", "sizes"], ["q", "k", "v"], axis=-1, name="split"),
             n("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="kt"),
             n("MatMul", ["q", "kt"], ["s"], name="scores"),
             n("Constant", [], ["scale"], value=numpy_helper.from_array(np.float32(2.0)), name="scale"),
             n("Div", ["s", "scale"], ["ss"], name="div"),
             n("Softmax", ["ss"], ["p"], axis=-1, name="softmax"),
             n("MatMul", ["p", "v"], ["o"], name="attend"),
             n("Reshape", ["o", "shape0"], ["o2"], name="reshape"),
             n("Unsqueeze", ["o2", "axis0"], ["o3"], name="unsq"),
             n("Squeeze", ["o3", "axis0"], ["o4"], name="sq"),
             n("ReduceSum", ["o4", "last"], ["y"], keepdims=0, name="sum")]
    inits = [_init("wqkv", 8, 12), _ints("sizes", [4, 4, 4]), _ints("shape0", [0, 0, 2, 2]),
             _ints("axis0", [0]), _ints("last", [-1])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 8])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "T", 2])], inits, 13)


def opset17_encoder():
    """LayerNormalization, Erf-written GELU, ReduceMean with an axes attribute, Where/Equal and a
    ConstantOfShape and Expand over a symbolic shape."""
    n = helper.make_node
    nodes = [n("LayerNormalization", ["x", "ln_w", "ln_b"], ["ln"], axis=-1, epsilon=1e-5, name="ln"),
             n("MatMul", ["ln", "w1"], ["h"], name="fc1"),
             n("Div", ["h", "sqrt2"], ["h2"], name="gelu_div"),
             n("Erf", ["h2"], ["e"], name="gelu_erf"),
             n("Add", ["e", "one"], ["e1"], name="gelu_add"),
             n("Mul", ["h", "e1"], ["g"], name="gelu_mul"),
             n("Mul", ["g", "half"], ["gg"], name="gelu_half"),
             n("ReduceMean", ["gg"], ["m"], axes=[-1], keepdims=1, name="mean"),
             n("Shape", ["m"], ["shape"], name="shape"),
             n("ConstantOfShape", ["shape"], ["zeros"], value=numpy_helper.from_array(np.array([0.0], np.float32)),
               name="zeros"),
             n("Greater", ["m", "zeros"], ["pos"], name="gt"),
             n("Where", ["pos", "m", "zeros"], ["r"], name="where"),
             n("Shape", ["x"], ["xshape"], name="xshape"),
             n("Expand", ["r", "xshape"], ["y"], name="expand")]
    inits = [_init("ln_w", 6, positive=True), _init("ln_b", 6), _init("w1", 6, 10),
             numpy_helper.from_array(np.float32(np.sqrt(2)), "sqrt2"), numpy_helper.from_array(np.float32(1), "one"),
             numpy_helper.from_array(np.float32(0.5), "half")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 6])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "T", 6])], inits, 17)


MODELS = {"opset7_mlp": opset7_mlp, "opset7_upsample": opset7_upsample, "opset9_upsample": opset9_upsample,
          "opset10_resize": opset10_resize, "opset11_cnn": opset11_cnn, "opset11_resize": opset11_resize, "opset13_attention": opset13_attention,
          "opset17_encoder": opset17_encoder}
