"""The NumPy plan: dims bound from inputs and checked, buffers freed after their last reader, a plan
per binding in a session."""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.backends import rewrites
from graphnet.backends.numpy_backend import bind_dims, compile_plan, peak_bytes

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
    session = net.session(net.init_weights(0), optimize=optimize)
    inputs = net.random_inputs(free)
    session.run(inputs)           # the plan, and its derived constants, are made once
    tracemalloc.start()
    try:
        session.run(inputs)
        measured = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    inputs_bytes = sum(a.nbytes for a in inputs.values())
    graph = rewrites.hoist_from_scans(net.graph) if optimize else net.graph
    estimate = peak_bytes(graph, free)
    assert measured + inputs_bytes <= 1.25 * estimate      # the inputs existed before the run
    assert estimate <= 3 * (measured + inputs_bytes)


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
    assert e.value.render() == (f"{SPECS / 'mlp.yaml'}:16:5: error: node 'relu1' (relu): FloatingPointError: the "
                                "kernel broke (inputs: float32[2, 1024])")
