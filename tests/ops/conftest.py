"""Shared by the op tests: one op lowered through the real OnnxBuilder and run by onnxruntime, for
the cases the contract examples cannot hold (onnx.reference disagrees, or other opsets)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from graphnet.backends.onnx_export import OnnxBuilder
from graphnet.ops import TensorType
from graphnet.types import ONNX_DTYPES


def run_onnxruntime(op, arrays: dict[str, np.ndarray], opset: int = 17) -> np.ndarray:
    types = {k: TensorType(str(a.dtype), a.shape) for k, a in arrays.items()}
    out = op.infer(*types.values())
    b = OnnxBuilder(opset, types, {})
    y = op.to_onnx(b, *arrays)
    info = lambda name, t: helper.make_tensor_value_info(name, ONNX_DTYPES[t.dtype], [d.value for d in t.shape])
    graph = helper.make_graph(b.nodes, "g", [info(k, t) for k, t in types.items()], [info(y, out)],
                              list(b.initializers.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, arrays)[0]


@pytest.fixture
def onnxruntime_run():
    return run_onnxruntime
