"""The NumPy plan: dims bound from inputs and checked, buffers freed after their last reader, a plan
per binding in a session, a scan's body plan inside the plan (so gone with its session), and a
memory estimate that is the plan's own."""

import gc
import re
import tracemalloc
import weakref
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.backends.numpy_backend import bind_dims, compile_plan, peak_bytes
from graphnet.types import format_bytes

SPECS = Path(__file__).resolve().parents[2] / "specs"


def test_binding_from_inputs_and_conflicts():
    net = gn.load(SPECS / "transformer_encoder.yaml")
    assert bind_dims(net.graph, {"x": (2, 9, 512)}) == {"B": 2, "T": 9}
    with pytest.raises(ValueError, match=r"input 'x' dim 2 must be 512, got 256"):
        bind_dims(net.graph, {"x": (2, 9, 256)})
    with pytest.raises(ValueError, match="must have rank 3"):
        bind_dims(net.graph, {"x": (2, 512)})


def test_wrong_input_dtype_and_shape_are_spec_errors():
    net = gn.load(SPECS / "mlp.yaml")
    with pytest.raises(gn.SpecError, match="input 'x' must be float32, got float64"):
        net.run({"x": np.zeros((2, 784))})
    with pytest.raises(gn.SpecError, match="input 'x' dim 1 must be 784"):
        net.run({"x": np.zeros((2, 783), np.float32)})


@pytest.mark.parametrize("optimize", [True, False])
def test_intermediates_are_freed_at_last_use(optimize):
    net = gn.load(SPECS / "resnet18.yaml")
    plan = compile_plan(net.graph, {"B": 1}, net.init_weights(0), optimize)
    freed = [s for step in plan.steps for s in step.free]
    assert len(freed) == len(set(freed))                  # each slot freed once
    produced = {s for step in plan.steps for s in step.outputs}
    outputs = set(plan.outputs.values())
    assert produced - outputs <= set(freed)                # every intermediate is freed
    assert not outputs & set(freed)


def test_plans_are_cached_per_binding():
    net = gn.load(SPECS / "mlp.yaml")
    session = net.session(net.init_weights(0))
    session.run(net.random_inputs({"B": 2}))
    session.run(net.random_inputs({"B": 2}, seed=1))
    session.run(net.random_inputs({"B": 5}))
    assert len(session._plans) == 2


@pytest.mark.parametrize("name, dims", [("mlp", {"B": 64}), ("resnet18", {"B": 2, "H": 64, "W": 64}),
                                        ("mobilenet_v2", {"B": 1, "H": 64, "W": 64}),
                                        ("transformer_encoder", {"B": 2, "T": 32}), ("lstm", {"B": 4, "T": 16})])
@pytest.mark.parametrize("optimize", [True, False])
def test_peak_estimate_bounds_what_numpy_allocates(name, dims, optimize):
    # tracemalloc sees NumPy's allocations. The estimate comes from types alone, so it is close, not
    # exact: not far below them (a run it lets through fits), nor far above (it refuses no run that fits)
    free = {k: v for k, v in dims.items() if k in ("B", "T")}
    net = gn.load(SPECS / f"{name}.yaml", {k: v for k, v in dims.items() if k not in free})
    measured = _measured_peak(net, net.session(net.init_weights(0), optimize=optimize), free)
    estimate = peak_bytes(net.graph, free, optimize)
    assert measured <= 1.25 * estimate
    assert estimate <= 3 * measured


def _measured_peak(net, session, binding: dict[str, int]) -> int:
    """The most memory a run holds beyond the weights: what tracemalloc sees it allocate, plus what
    existed before it: the inputs, and the arrays the plan derived from the weights (a folded mask,
    restacked cell weights; not views of the weights such as a transpose)."""
    inputs = net.random_inputs(binding)
    session.run(inputs)           # the plan, and its derived constants, are made once
    tracemalloc.start()
    try:
        session.run(inputs)
        measured = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    weights = list(session.weights.values())
    derived = [a for _, a in session.plan(binding).constants if not any(np.may_share_memory(a, w) for w in weights)]
    return measured + sum(a.nbytes for a in inputs.values()) + sum(a.nbytes for a in derived)


# -- a scan's body plan belongs to its session ------------------------------------------------------

CELL = """
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
    nodes:
      - {name: wt, op: transpose, inputs: [w]}
      - {name: xw, op: matmul, inputs: [x, wt]}
      - {name: hu, op: matmul, inputs: [h, u]}
      - {name: sum, op: add, inputs: [xw, hu]}
      - {name: h_next, op: tanh}
    outputs: {h: h_next, y: h_next}
inputs:
  x: [B, T, 3]
  h0: [B, 4]
nodes:
  - {name: rnn, scan: step, over: [x], inputs: {x: x, h: h0}}
outputs: {y: rnn.y, h: rnn.h}
"""


def _scan_net(tmp_path, which: str, dims=None):
    if which == "rnn.yaml":
        return gn.load(SPECS / "rnn.yaml", dims)
    path = tmp_path / "cell.yaml"
    path.write_text(CELL)
    return gn.load(path, dims)


# std's rnn cell unfused (the plan runs the scan) and a cell of one's own, whose scan stays in the
# optimized plan too (its input projection hoisted out of the body)
SCANS = [("rnn.yaml", False), ("cell", False), ("cell", True)]


@pytest.mark.parametrize("which, optimize", SCANS)
@pytest.mark.parametrize("dims", [{"B": 2, "T": 3}, None], ids=["dims bound at load", "free dims"])
def test_a_scan_body_plan_is_gone_with_its_session(tmp_path, which, optimize, dims):
    net = _scan_net(tmp_path, which, dims)
    weights = {k: v.copy() for k, v in net.init_weights(0).items()}
    inputs = net.random_inputs({"B": 2, "T": 3})
    session = net.session(weights, optimize=optimize)
    session.run(inputs)
    assert "scan" in [s.op for s in session.plan_for(inputs).steps]
    cell_weight = next(k for k in weights if k.endswith(("weight_hh", "weight_hh_l0", ".u")))
    alive = [weakref.ref(session), weakref.ref(weights[cell_weight])]
    del session, weights
    gc.collect()
    assert [r() for r in alive] == [None, None]     # nothing in the network's IR holds them


@pytest.mark.parametrize("which, optimize", SCANS)
def test_two_sessions_on_one_network_give_their_own_results(tmp_path, which, optimize):
    net = _scan_net(tmp_path, which, {"B": 2, "T": 4})     # no free dims: the plans' ops are the IR's
    a, b = net.init_weights(1), net.init_weights(2)
    first, second = net.session(a, optimize=optimize), net.session(b, optimize=optimize)
    inputs = net.random_inputs(seed=3)
    runs = [("a", first.run(inputs)), ("b", second.run(inputs)), ("a", first.run(inputs))]
    # each against a run on a network of its own, through the other path (fused, or not optimized)
    expected = {k: _scan_net(tmp_path, which, {"B": 2, "T": 4}).session(w, optimize=not optimize).run(inputs)
                for k, w in (("a", a), ("b", b))}
    for key, out in runs:
        for name, value in out.items():
            np.testing.assert_allclose(value, expected[key][name], rtol=1e-5, atol=1e-6)
    assert not np.allclose(runs[0][1]["y"], runs[1][1]["y"])


# -- the memory guard estimates the plan that runs ----------------------------------------------------

@pytest.mark.parametrize("name, dims, ran, rewritten", [
    ("lstm", {"B": 4, "T": 16}, "lstm", "scan"),                             # std's cells fused
    ("resnet18", {"B": 2, "H": 64, "W": 64}, "conv", "batch_norm"),          # batch norm folded
])
def test_the_memory_estimate_is_that_of_the_plan_that_runs(name, dims, ran, rewritten):
    free = {k: v for k, v in dims.items() if k in ("B", "T")}
    net = gn.load(SPECS / f"{name}.yaml", {k: v for k, v in dims.items() if k not in free})
    weights = net.init_weights(0)
    checked = []
    plan = compile_plan(net.graph, free, weights, check=checked.append)
    ops = [s.op for s in plan.steps]
    assert ran in ops and rewritten not in ops and rewritten in [n.op.name for n in net.graph.nodes]
    estimate = peak_bytes(net.graph, free)
    assert checked == [estimate]               # the estimate of the very graph the plan runs
    refused = re.escape(f"needs about {format_bytes(estimate)} beyond its weights")
    guards = (lambda limit: net.check_memory(free, limit), lambda limit: net.session(weights, max_memory=limit).plan(free))
    for guard in guards:
        guard(estimate)
        with pytest.raises(gn.SpecError, match=refused):
            guard(estimate - 1)
    measured = _measured_peak(net, net.session(weights), free)
    assert measured <= 1.25 * estimate
    assert estimate <= 3 * measured


def test_the_estimate_of_a_huge_run_allocates_nothing_of_it():
    # the rewrites that decide the plan's graph (a causal mask folded to a [T, T] constant) read
    # only which tensors are known, so estimating a run of T = 200,000 makes no such mask, and a
    # session refuses its plan before making one
    net = gn.load(SPECS / "transformer.yaml")
    binding = {"B": 1, "S": 8, "T": 200_000}
    session = net.session(net.init_weights(0), max_memory=1 << 30, max_macs=None)   # the memory guard alone
    tracemalloc.start()
    try:
        estimate = peak_bytes(net.graph, binding)
        with pytest.raises(gn.SpecError, match="over the memory limit of 1.0 GiB"):
            session.plan(binding)
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert estimate > 200_000 ** 2 * 4 and held < 64 << 20


def test_any_exception_a_kernel_raises_is_located_at_its_node(monkeypatch):
    # the run loop's safety net: not only an op's own precondition (KernelError), any exception out
    # of a step becomes the node's located error, with the arrays the kernel was given
    from graphnet.ops.elementwise import Relu

    def broken(self, x, out=None):
        raise FloatingPointError("the kernel broke")

    net = gn.load(SPECS / "mlp.yaml")
    monkeypatch.setattr(Relu, "compute", broken)
    with pytest.raises(gn.SpecError) as e:
        net.run({"x": np.zeros((2, 784), np.float32)})
    assert e.value.render() == (f"{SPECS / 'mlp.yaml'}:18:5: error: node 'relu1' (relu): FloatingPointError: the "
                                "kernel broke (inputs: float32[2, 1024])")


RANK_0 = """\
graphnet: 1
name: scalars
inputs: {x: []}
nodes:
  - {name: s, op: sigmoid}
  - {name: w, op: silu}
  - {name: t, op: transpose}
  - {name: p, op: pad, attrs: {pads: []}}
  - {name: c, op: slice, attrs: {starts: [], ends: []}}
  - {name: m, op: mul, inputs: [c, x]}
  - {name: r, op: relu}
  - {name: e, op: exp}
outputs: {y: e, s: s}
"""


@pytest.mark.parametrize("optimize", [True, False])
def test_rank_0_tensors_run_on_both_back_ends_alike(tmp_path, optimize):
    # NumPy's arithmetic on 0-d arrays gives scalars, which in-place kernels and onnxruntime refuse;
    # a 0-d tensor also broke Transpose's and Pad's lowerings and onnxruntime's Slice
    spec = tmp_path / "scalars.yaml"
    spec.write_text(RANK_0)
    net = gn.load(spec)
    x = np.asarray(0.75, np.float32)
    got = net.session(optimize=optimize).run({"x": x})
    import onnxruntime as ort
    model = net.to_onnx()
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    s = 1 / (1 + np.exp(-0.75))
    assert np.allclose(want[0], np.exp(max(s / (1 + np.exp(-s)) * 0.75, 0)), rtol=1e-6)   # math, not our code
    for name, ort_value in zip(["y", "s"], want):
        assert isinstance(got[name], np.ndarray) and got[name].shape == () and got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], ort_value, rtol=1e-6)
