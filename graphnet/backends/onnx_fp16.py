"""A float32 model made float16: weights, constants and compute in half precision, the float inputs
and outputs float32 (cast at the edges) or float16, as asked.

Done on the lowered model, where every float tensor is known: float32 initializers become float16
(clipped to its finite range first, so float32's lowest, an additive mask's "minus infinity",
stays finite and 0 * it stays 0), Cast to float becomes Cast to float16, a float fill value or
attribute tensor too. An op input whose ONNX type constraint has no float16 (Resize's scales)
keeps its float32 initializer. Scan bodies are converted with the graph that holds them."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..types import TensorType

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16
HALF_MAX = float(np.finfo(np.float16).max)


def _half(a: np.ndarray) -> np.ndarray:
    return np.clip(a, -HALF_MAX, HALF_MAX).astype(np.float16)


def _no_half_inputs(node: onnx.NodeProto, opset: int) -> set[int]:
    """The input positions of `node` whose type constraint does not allow float16."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except onnx.defs.SchemaError:
        return set()
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    out = set()
    for i in range(len(node.input)):
        formal = schema.inputs[min(i, len(schema.inputs) - 1)]
        types = allowed.get(formal.type_str, {formal.type_str})
        if "tensor(float16)" not in types and "tensor(float)" in types:
            out.add(i)
    return out


def _convert_nodes(nodes, opset: int, arrays: dict[str, np.ndarray] | None, keep32: set[str]) -> None:
    for n in nodes:
        for i in _no_half_inputs(n, opset):
            keep32.add(n.input[i])
        for a in n.attribute:
            if a.name == "to" and a.i == F32:
                a.i = F16
            elif a.type == onnx.AttributeProto.TENSOR and a.t.data_type == F32:
                a.t.CopyFrom(numpy_helper.from_array(_half(numpy_helper.to_array(a.t)), a.t.name))
            elif a.type == onnx.AttributeProto.GRAPH:
                _convert_graph(a.g, opset)


def _retype(values) -> None:
    for v in values:
        if v.type.tensor_type.elem_type == F32:
            v.type.tensor_type.elem_type = F16


def _convert_graph(g: onnx.GraphProto, opset: int) -> None:
    keep32: set[str] = set()
    _convert_nodes(g.node, opset, None, keep32)
    for t in g.initializer:
        if t.data_type == F32 and t.name not in keep32:
            t.CopyFrom(numpy_helper.from_array(_half(numpy_helper.to_array(t)), t.name))
    _retype(g.input)
    _retype(g.output)
    _retype(g.value_info)


def to_float16(model: onnx.ModelProto, arrays: dict[str, np.ndarray], types: dict[str, TensorType],
               io_dtype: str) -> None:
    """Convert in place: the model, its initializers (`arrays`) and graphnet's types of its tensors."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    g = model.graph
    keep32: set[str] = set()
    _convert_nodes(g.node, opset, arrays, keep32)
    for name, a in arrays.items():
        if a.dtype == np.float32 and name not in keep32:
            arrays[name] = _half(a)
    for name, t in types.items():
        if t.dtype == "float32" and name not in keep32:
            types[name] = TensorType("float16", t.shape)
    if io_dtype == "float16":
        _retype(g.input)
        _retype(g.output)
        return
    # float32 at the edges: each float input cast to float16 where it is read, each float output
    # computed in float16 under another name and cast back
    casts_in, renamed = [], {}
    for v in g.input:
        if v.type.tensor_type.elem_type == F32:
            renamed[v.name] = f"{v.name}#float16"
            casts_in.append(helper.make_node("Cast", [v.name], [renamed[v.name]], name=f"{v.name}#Cast", to=F16))
            types[renamed[v.name]] = types.get(v.name, TensorType("float16", ()))
    for n in g.node:
        n.input[:] = [renamed.get(x, x) for x in n.input]
    casts_out = []
    for v in g.output:
        if v.type.tensor_type.elem_type == F32:
            inner = f"{v.name}#float16"
            for n in g.node:
                n.output[:] = [inner if x == v.name else x for x in n.output]
                n.input[:] = [inner if x == v.name else x for x in n.input]
            casts_out.append(helper.make_node("Cast", [inner], [v.name], name=f"{v.name}#Cast", to=F32))
            if v.name in types:
                types[inner] = types[v.name]
                types[v.name] = TensorType("float32", types[v.name].shape)
    nodes = casts_in + list(g.node) + casts_out
    del g.node[:]
    g.node.extend(nodes)
