"""The Python API checks what it is handed where it comes in: a wrong type is a TypeError (a bad
value a ValueError) that says what was expected, not an error from deep inside (issue 13)."""

from pathlib import Path

import numpy as np
import pytest

import graphnet as gn

MLP = Path(__file__).resolve().parent.parent / "specs" / "mlp.yaml"


@pytest.fixture(scope="module")
def net():
    return gn.load(MLP)


@pytest.mark.parametrize("call,error,message", [
    (lambda net, x: net.run({1: x}), TypeError, "inputs: names must be str, got 1 (int)"),    # failed in difflib
    (lambda net, x: net.run(x), TypeError, "inputs must be a mapping from name to array, got ndarray"),
    (lambda net, x: net.session(max_memory="8G"), TypeError, "max_memory must be a number of bytes"),
    (lambda net, x: net.session(max_memory=-1), ValueError, "max_memory must be 0 or more bytes"),
    (lambda net, x: net.check_memory({"B": 1}, 2.5e9), TypeError, "max_memory must be a number of bytes"),
    (lambda net, x: net.session(max_macs="10T"), TypeError, "max_macs must be a number of multiply-accumulates"),
    (lambda net, x: net.check_compute({"B": 1}, -1), ValueError, "max_macs must be 0 or more multiply-accumulates"),
    (lambda net, x: net.session(max_macs=1000).run({"x": x}), gn.SpecError, "over the compute limit of 1000"),
    (lambda net, x: gn.load(MLP, ["B"]), TypeError, "dims must be a mapping from dim name to whole number"),
    (lambda net, x: gn.load(MLP, {"B": "8"}), TypeError, "dim 'B' must be a whole number, got '8'"),
    (lambda net, x: gn.load(MLP, {"B": True}), TypeError, "dim 'B' must be a whole number"),
    (lambda net, x: gn.load(MLP, {"B": 0}), ValueError, "dim 'B' must be positive, got 0"),
    (lambda net, x: gn.load(MLP, {3: 1}), TypeError, "a dim name must be a str"),
    (lambda net, x: gn.load(42), TypeError, "load() takes the spec's path, got int"),
    (lambda net, x: net.random_inputs(seed=-1), ValueError, "seed must be 0 or more"),       # failed in numpy
    (lambda net, x: net.init_weights(seed="0"), TypeError, "seed must be a whole number"),
    (lambda net, x: net.run({"x": x}, weights=[x]), TypeError, "weights must be a mapping from name to array"),
    (lambda net, x: net.summary(["B"]), TypeError, "dims must be a mapping"),
])
def test_misuse_is_a_clear_error_at_the_boundary(net, call, error, message):
    x = np.zeros((1, 784), np.float32)
    with pytest.raises(error) as info:
        call(net, x)
    assert message in str(info.value)
    # raised in network.py itself, not from inside numpy, difflib or expand
    tb = info.value.__traceback__
    while tb.tb_next:
        tb = tb.tb_next
    assert tb.tb_frame.f_code.co_filename.endswith("network.py")


def test_what_was_accepted_still_is(net):
    x = net.random_inputs({"B": np.int64(2)}, seed=np.int64(3))
    assert net.session(max_memory=np.int64(1 << 30)).run(x)["logits"].shape == (2, 10)
    assert net.summary({"B": 2}).startswith("mlp")
