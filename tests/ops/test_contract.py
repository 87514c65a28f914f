"""The op contract, over the whole registry: for every example of every op, the shape rule matches
what the NumPy kernel produces, and the kernel matches onnxruntime and the ONNX reference evaluator
running the op's lowering (the oracles), whose own shape inference agrees with ours. At every
supported opset the lowering passes ONNX's checker and shape inference; onnxruntime runs it again
at each later opset where it means something else than at the first."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from onnx.reference import ReferenceEvaluator

from graphnet.backends.onnx_export import MAX_OPSET, MIN_OPSET, to_onnx
from graphnet.dims import Dim
from graphnet.errors import Location
from graphnet.graph import Frame, Graph, Node
from graphnet.ops import REGISTRY, TensorType

CASES = [pytest.param(cls, i, id=f"{cls.name}-{i}") for cls in REGISTRY for i in range(len(cls.examples))]


def _single_op_graph(cls, example):
    rng = np.random.default_rng(sum(map(ord, cls.name)) + len(example.attrs))
    op = cls.model_validate(example.attrs)
    arrays, names, types = {}, [], {}
    for i, spec in enumerate(example.inputs):
        if spec is None:
            names.append(None)
            continue
        name = f"in{i}"
        arrays[name] = spec.make(rng)
        types[name] = TensorType(spec.dtype, spec.shape)
        names.append(name)
    out_types = op.infer(*[types[n] if n else None for n in _trim(names)])
    out_types = (out_types,) if isinstance(out_types, TensorType) else tuple(out_types)
    outs = tuple(f"out{i}" for i in range(len(out_types)))
    types.update(zip(outs, out_types))
    node = Node("op", op, tuple(names), outs, (Frame(Location("<test>"), "op", ""),))
    graph = Graph(cls.name, {n: types[n] for n in arrays}, {o: o for o in outs}, {}, [node], types)
    return op, graph, arrays, [arrays[n] if n else None for n in _trim(names)], out_types


def _trim(values):
    values = list(values)
    while values and values[-1] is None:
        values.pop()
    return values


def test_every_op_has_examples():
    # An op whose attribute is a body graph (scan) is exercised through specs in its own test file.
    missing = [cls.name for cls in REGISTRY if not cls.examples and not getattr(cls, "takes_body", False)]
    assert not missing


@pytest.mark.parametrize("cls,index", CASES)
def test_shape_rule_matches_kernel(cls, index):
    op, _, _, args, out_types = _single_op_graph(cls, cls.examples[index])
    got = op.compute(*args)
    got = (got,) if not isinstance(got, tuple) else got
    assert len(got) == len(out_types)
    for value, t in zip(got, out_types):
        assert tuple(value.shape) == tuple(d.value for d in t.shape)
        assert str(value.dtype) == t.dtype


@pytest.mark.parametrize("cls,index", CASES)
def test_kernel_matches_onnxruntime_and_reference(cls, index):
    op, graph, arrays, args, out_types = _single_op_graph(cls, cls.examples[index])
    expected = op.compute(*args)
    expected = (expected,) if not isinstance(expected, tuple) else expected
    model = to_onnx(graph, {}, opset=17)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, arrays)
    reference = ReferenceEvaluator(model).run(None, arrays)
    for want, ort_value, ref_value in zip(expected, got, reference):
        assert ort_value.shape == want.shape and ort_value.dtype == want.dtype
        np.testing.assert_allclose(want, ort_value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(want, ref_value, rtol=1e-5, atol=1e-6)


OPSETS = range(MIN_OPSET, MAX_OPSET + 1)


@pytest.mark.parametrize("cls,index", CASES)
def test_lowering_passes_the_checker_and_shape_inference_at_every_opset(cls, index):
    _, graph, _, _, out_types = _single_op_graph(cls, cls.examples[index])
    for opset in OPSETS:
        model = to_onnx(graph, {}, opset=opset)
        onnx.checker.check_model(model, full_check=True)
        for out in model.graph.output:    # forget our declared shapes; ONNX must infer them itself
            out.type.tensor_type.ClearField("shape")
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        for info, t in zip(inferred.graph.output, out_types):
            dims = [d.dim_value for d in info.type.tensor_type.shape.dim]
            assert dims == [d.value for d in t.shape], f"{info.name} at opset {opset}"


def _meaning(model: onnx.ModelProto, opset: int) -> tuple:
    """What a model computes at `opset`: its graph, and the version of its schema each node's op
    resolves to there (the same node may mean another thing in a later version)."""
    versions, graphs = [], [model.graph]
    while graphs:
        for node in graphs.pop().node:
            versions.append((node.op_type, onnx.defs.get_schema(node.op_type, opset, node.domain).since_version))
            graphs += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    return model.graph.SerializeToString(), versions


def _opset_dependent() -> list:
    """(op, example, opset) for each later opset at which the op's lowering means something else
    than at the first: derived from the lowerings themselves (an `opset` test in a to_onnx, a
    schema that changed), so onnxruntime runs there and nowhere it would repeat the first run."""
    out = []
    for cls, index in ((p.values[0], p.values[1]) for p in CASES):
        graph = _single_op_graph(cls, cls.examples[index])[1]
        first = _meaning(to_onnx(graph, {}, opset=MIN_OPSET), MIN_OPSET)
        out += [pytest.param(cls, index, opset, id=f"{cls.name}-{index}-{opset}") for opset in OPSETS[1:]
                if _meaning(to_onnx(graph, {}, opset=opset), opset) != first]
    return out


OPSET_DEPENDENT = _opset_dependent()


def test_the_opset_dependent_lowerings_are_found():
    # reduce_mean takes its axes as an input from opset 18, gelu is one ONNX op from 20 (their
    # to_onnx test b.opset); relu's lowering and schema stay as they are
    found = {(p.values[0].name, p.values[2]) for p in OPSET_DEPENDENT}
    assert {("reduce_mean", 18), ("gelu", 20), ("gelu", 21)} <= found
    assert not {("relu", opset) for opset in OPSETS} & found


@pytest.mark.parametrize("cls,index,opset", OPSET_DEPENDENT)
def test_lowering_at_later_opsets_matches_onnxruntime(cls, index, opset):
    op, graph, arrays, args, _ = _single_op_graph(cls, cls.examples[index])
    expected = op.compute(*args)
    expected = (expected,) if not isinstance(expected, tuple) else expected
    model = to_onnx(graph, {}, opset=opset)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for want, got in zip(expected, session.run(None, arrays)):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(want, got, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls,index", CASES)
def test_attributes_round_trip_through_yaml(cls, index):
    op = cls.model_validate(cls.examples[index].attrs)
    text = yaml.safe_dump(op.model_dump(exclude_defaults=True))
    assert cls.model_validate(yaml.safe_load(text) or {}) == op


def test_symbolic_dims_bind_in_attributes():
    from graphnet.ops.shape import Reshape
    op = Reshape(shape=[Dim("B"), -1])
    assert op.bind({"B": 3}).shape == [3, -1]
