"""The NumPy plan: dims bound from inputs and checked, buffers freed after their last reader."""

from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.backends.numpy_backend import bind_dims, compile_plan

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


def test_intermediates_are_freed_at_last_use():
    net = gn.load(SPECS / "resnet18.yaml")
    plan = compile_plan(net.graph, {"B": 1})
    freed = [s for step in plan.steps for s in step.free]
    assert len(freed) == len(set(freed))                  # each slot freed once
    produced = {s for step in plan.steps for s in step.outputs}
    outputs = set(plan.outputs.values())
    assert produced - outputs <= set(freed)                # every intermediate is freed
    assert not outputs & set(freed)


def test_plans_are_cached_per_binding():
    net = gn.load(SPECS / "mlp.yaml")
    w = net.init_weights(0)
    net.run(net.random_inputs({"B": 2}), w)
    net.run(net.random_inputs({"B": 2}, seed=1), w)
    net.run(net.random_inputs({"B": 5}), w)
    assert len(net._plans) == 2
