"""Plan-time rewrites change how the NumPy back end computes, never what: every spec gives the same
outputs (within 1e-5) with and without them, and each rewrite does the transformation it names."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import graphnet as gn
from graphnet.backends import numpy_backend, rewrites
from graphnet.backends.numpy_backend import compile_plan
from graphnet.transforms.derive import Known
from tests.test_specs import ALL, NONNEGATIVE_INPUTS, RUN_DIMS, SMALL_DIMS, SPECS, _load


def _with_batch_norm_statistics(net, weights: dict, seed: int) -> dict:
    """Weights whose batch-norm scale, shift, mean and variance are not the identity ones init
    gives (1, 0, 0, 1), so that folding them into convolutions is visible."""
    rng = np.random.default_rng(seed)
    out = dict(weights)
    for node in net.graph.nodes:
        if node.op.name == "batch_norm":
            scale, shift, mean, var = node.inputs[1:]
            for name, low, high in ((scale, 0.5, 1.5), (shift, -0.2, 0.2), (mean, -0.2, 0.2), (var, 0.5, 2.0)):
                out[name] = rng.uniform(low, high, weights[name].shape).astype(weights[name].dtype)
    return out


@pytest.mark.parametrize("name", ALL)
def test_rewrites_change_no_output(name):
    net = _load(name, small=name in SMALL_DIMS)
    weights = _with_batch_norm_statistics(net, net.init_weights(seed=2), seed=3)
    plain, optimized = net.session(weights, optimize=False), net.session(weights)
    for dims in RUN_DIMS.get(name, [{"B": 2}]):
        inputs = net.random_inputs(dims, seed=5)
        for key in NONNEGATIVE_INPUTS.get(name, ()):
            inputs[key] = np.abs(inputs[key])
        expected = plain.run(inputs)
        got = optimized.run(inputs)
        for key, value in expected.items():
            assert np.all(np.isfinite(value))
            np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-5)
        # in-place steps never write into the caller's arrays
        again = net.random_inputs(dims, seed=5)
        for key, value in inputs.items():
            if key not in NONNEGATIVE_INPUTS.get(name, ()):
                np.testing.assert_array_equal(value, again[key])


def _spec(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return gn.load(path)


def _ops(graph) -> list[str]:
    return [n.op.name for n in graph.nodes]


def test_batch_norm_is_folded_into_every_preceding_conv():
    net = _load("resnet18", small=True)
    weights = _with_batch_norm_statistics(net, net.init_weights(0), seed=1)
    values = Known(weights)
    graph = rewrites.optimize(net.graph, {"B": 1}, values)
    assert _ops(net.graph).count("batch_norm") == 20 and "batch_norm" not in _ops(graph)
    assert _ops(graph).count("conv") == _ops(net.graph).count("conv")
    bns = {n.outputs[0]: n for n in net.graph.nodes if n.op.name == "batch_norm"}
    plan = compile_plan(net.graph, {"B": 1}, weights)
    steps = {s.name: s for s in plan.steps}
    folded = kept = 0
    for i, node in enumerate(graph.nodes):
        if node.op.name != "conv":
            continue
        if node.outputs[0] in bns:
            # the scale is in a copy of the weight, no larger than the conv's output, the shift its bias
            bn = bns[node.outputs[0]]
            w, (gamma, beta, mean, var) = net.graph.producers[bn.inputs[0]].inputs[1], bn.inputs[1:]
            scale = weights[gamma] / np.sqrt(weights[var] + bn.op.epsilon)
            np.testing.assert_allclose(values[node.inputs[1]], weights[w] * scale[:, None, None, None], rtol=1e-6)
            np.testing.assert_allclose(values[node.inputs[2]], weights[beta] - weights[mean] * scale, rtol=1e-5,
                                       atol=1e-7)
            out = graph.types[node.outputs[0]].shape
            assert values[node.inputs[1]].size <= np.prod([int(d.subs({"B": 1})) for d in out])
            folded += 1
        else:
            # a weight larger than the output is read as it is, its output scaled and shifted in place
            scale, shift = graph.nodes[i + 1:i + 3]
            assert [scale.op.name, shift.op.name] == ["mul", "add"] and shift.outputs[0] in bns
            assert node.inputs[1] in weights and len(node.inputs) == 2
            assert steps[scale.name].inplace == 0 and steps[shift.name].inplace == 0
            kept += 1
    assert folded and kept and folded + kept == 20


def test_a_weight_not_known_before_the_run_is_not_scaled():
    # trained weights come in as inputs of the training graph: a conv's weight the plan does not
    # know is read as it is, and its output scaled and shifted, however small the weight
    net = _load("resnet18", small=True)
    weights = net.init_weights(0)
    values = Known({k: v for k, v in weights.items() if k != "conv1.weight"})
    graph = rewrites.optimize(net.graph, {"B": 1}, values)
    conv, scale, shift = graph.nodes[:3]
    assert conv.inputs == ("image", "conv1.weight") and [scale.op.name, shift.op.name] == ["mul", "add"]
    assert rewrites.optimize(net.graph, {"B": 1}, Known(weights)).nodes[0].inputs[1] != "conv1.weight"


def test_static_nodes_are_computed_once_at_plan_time():
    net = gn.load(SPECS / "mlp.yaml")
    values = Known(net.init_weights(0))
    graph = rewrites.optimize(net.graph, {"B": 4}, values)
    assert _ops(net.graph).count("transpose") == 3 and "transpose" not in _ops(graph)
    transposes = [n for n in net.graph.nodes if n.op.name == "transpose"]
    for node in transposes:
        np.testing.assert_array_equal(values[node.outputs[0]], values[node.inputs[0]].T)


@pytest.mark.parametrize("name, fused, scans", [("lstm", "lstm", 2), ("gru", "gru", 2), ("rnn", "rnn", 1),
                                                 ("birnn", "rnn", 4)])
def test_std_cells_scanned_become_the_fused_recurrent_op(name, fused, scans):
    net = gn.load(SPECS / f"{name}.yaml")
    values = Known(net.init_weights(0))
    graph = rewrites.optimize(net.graph, {"B": 2, "T": 5}, values)
    assert _ops(net.graph).count("scan") == scans
    assert "scan" not in _ops(graph) and _ops(graph).count(fused) == scans
    # and the export carries ONNX's own op, which onnxruntime runs natively (values: test_specs)
    exported = [n.op_type for n in net.to_onnx().graph.node]
    assert "Scan" not in exported and exported.count(fused.upper()) == scans


def test_state_independent_work_is_hoisted_out_of_a_scan(tmp_path, monkeypatch):
    # a cell of one's own (not std's, so not fused): x W^T + b needs no state, so it runs once
    net = _spec(tmp_path, """
        graphnet: 1
        name: cell
        dims: {B: ~, T: ~}
        blocks:
          step:
            inputs:
              x: [B, 3]
              h: [B, 4]
            params:
              w: {shape: [4, 3], init: {normal: {std: 0.5}}}
              u: {shape: [4, 4], init: {normal: {std: 0.5}}}
              b: {shape: [4], init: {normal: {std: 0.5}}}
            nodes:
              - {name: wt, op: transpose, inputs: [w]}
              - {name: xw, op: matmul, inputs: [x, wt]}
              - {name: xwb, op: add, inputs: [xw, b]}
              - {name: hu, op: matmul, inputs: [h, u]}
              - {name: sum, op: add, inputs: [xwb, hu]}
              - {name: h_next, op: tanh}
            outputs: {h: h_next, y: h_next}
        inputs:
          x: [B, T, 3]
          h0: [B, 4]
        nodes:
          - {name: rnn, scan: step, over: [x], inputs: {x: x, h: h0}}
        outputs: {y: rnn.y, h: rnn.h}
        """)
    graph = rewrites.optimize(net.graph, {"B": 2, "T": 5}, Known(net.init_weights(0)))
    scan = next(n for n in graph.nodes if n.op.name == "scan")
    assert _ops(scan.op.body) == ["matmul", "add", "tanh"]
    assert _ops(graph) == ["matmul", "add", "scan"]
    inputs = net.random_inputs({"B": 2, "T": 5})
    session = net.session()
    plain, optimized = net.session(optimize=False).run(inputs), session.run(inputs)
    for key in plain:
        np.testing.assert_allclose(optimized[key], plain[key], rtol=1e-6, atol=1e-6)
    # the step's plan is made with the session's plan, not again on every run
    compiled = []
    real = numpy_backend.compile_plan
    monkeypatch.setattr(numpy_backend, "compile_plan", lambda *a, **k: compiled.append(a[0].name) or real(*a, **k))
    session.run(inputs)
    assert compiled == []
    net.session().run(inputs)
    assert compiled == ["rnn"]        # a new session's plan compiles the scan's body (named for the scan)


def test_in_place_only_into_buffers_nothing_reads_later(tmp_path):
    # 'v' is a view of 'a' that is read after 'b' = neg(a): writing b into a's buffer would change v.
    net = _spec(tmp_path, """
        graphnet: 1
        name: aliasing
        dims: {B: ~}
        inputs:
          x: [B, 6]
        nodes:
          - {name: a, op: exp, inputs: [x]}
          - {name: v, op: reshape, inputs: [a], attrs: {shape: [B, 2, 3]}}
          - {name: b, op: neg, inputs: [a]}
          - {name: c, op: exp, inputs: [b]}
          - {name: d, op: neg, inputs: [c]}
          - {name: bv, op: reshape, inputs: [d], attrs: {shape: [B, 2, 3]}}
          - {name: y, op: add, inputs: [v, bv]}
        outputs: {y: y}
        """)
    plan = compile_plan(net.graph, {"B": 3}, {})
    inplace = {s.name: s.inplace for s in plan.steps}
    assert inplace["a"] is None                     # x is the caller's array
    assert inplace["b"] is None                     # a is still seen through v
    assert inplace["c"] == 0 and inplace["d"] == 0  # b, then c, are read by nobody afterwards
    x = np.linspace(-1, 1, 18, dtype=np.float32).reshape(3, 6)
    expected = (np.exp(x) - np.exp(-np.exp(x))).reshape(3, 2, 3)
    np.testing.assert_allclose(net.session(optimize=True).run({"x": x})["y"], expected, rtol=1e-6)


def test_params_and_static_values_can_be_outputs(tmp_path):
    net = _spec(tmp_path, """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        params:
          w: {shape: [4], init: {normal: {std: 1.0}}}
        nodes:
          - {name: m, op: mul, inputs: [x, w]}
          - {name: wn, op: neg, inputs: [w]}
        outputs: {y: m, w: w, n: wn}
        """)
    weights = net.init_weights(1)
    out = net.session(weights).run({"x": np.ones((2, 4), np.float32)})
    np.testing.assert_array_equal(out["w"], weights["w"])
    np.testing.assert_array_equal(out["n"], -weights["w"])
    np.testing.assert_array_equal(out["y"], np.ones((2, 1), np.float32) * weights["w"])
