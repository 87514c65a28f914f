"""The autodiff transform: the gradient graph is a graph like any other (free dims kept, the
memory guard over it), gradients reach only what they should, and what the API is handed is
checked. The gradients' values are tested per op (tests/ops/test_vjp.py) and per network
(tests/test_upstream_gradients.py)."""

from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.errors import SpecError
from graphnet.transforms.autodiff import differentiate, gradient_graph

SPECS = Path(__file__).resolve().parent.parent.parent / "specs"


def _tiny_mlp():
    return gn.load(SPECS / "mlp.yaml", {"D_in": 6, "hidden": 5, "classes": 3})


def test_free_dims_stay_symbolic_and_bind_at_run_time():
    net = _tiny_mlp()
    g = net.gradient_graph()
    assert str(g.inputs["cotangent.logits"]) == "float32[B, 3]"
    assert str(g.types[g.outputs["grad.x"]]) == "float32[B, 6]"
    assert str(g.types[g.outputs["grad.fc1.weight"]]) == "float32[5, 6]"
    w = net.init_weights(1)
    for batch in (1, 4):
        x = np.random.default_rng(batch).standard_normal((batch, 6)).astype(np.float32)
        outputs, weight_grads, input_grads = net.vjp({"x": x}, w, {"logits": np.ones((batch, 3), np.float32)})
        assert input_grads["x"].shape == (batch, 6) and weight_grads["fc1.weight"].shape == (5, 6)
        np.testing.assert_allclose(outputs["logits"], net.run({"x": x}, w)["logits"])


def test_a_cotangent_left_out_is_zero_and_so_are_the_gradients():
    net = _tiny_mlp()
    x = np.ones((2, 6), np.float32)
    _, weight_grads, input_grads = net.vjp({"x": x}, net.init_weights(0), {})
    assert all(not g.any() for g in weight_grads.values()) and not input_grads["x"].any()


def test_the_gradient_is_linear_in_the_cotangent():
    net = _tiny_mlp()
    w, x = net.init_weights(2), np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    c = np.random.default_rng(1).standard_normal((3, 3)).astype(np.float32)
    _, once, _ = net.vjp({"x": x}, w, {"logits": c})
    _, thrice, _ = net.vjp({"x": x}, w, {"logits": 3 * c})
    for k in once:
        np.testing.assert_allclose(thrice[k], 3 * once[k], rtol=1e-5, atol=1e-6)


def test_integer_inputs_get_no_gradient_and_float_ones_do():
    net = gn.load(SPECS / "seq2seq_attention.yaml", {"src_vocab": 9, "tgt_vocab": 7, "embed": 4, "hidden": 3, "attn": 2})
    g = net.gradient_graph()
    assert not any(k in ("grad.src", "grad.tgt_in") for k in g.outputs)
    assert "grad.src_embedding.weight" in g.outputs


def test_the_memory_guard_covers_the_gradient_graph():
    net = _tiny_mlp()
    with pytest.raises(SpecError, match="over the memory limit of 100 bytes"):
        net.vjp({"x": np.ones((2, 6), np.float32)}, None, {}, max_memory=100)


def test_an_unknown_cotangent_or_mode_is_refused():
    net = _tiny_mlp()
    with pytest.raises(SpecError, match="'logit' is not a float output of 'mlp'; did you mean 'logits'"):
        net.vjp({"x": np.ones((1, 6), np.float32)}, None, {"logit": np.ones((1, 3), np.float32)})
    with pytest.raises(ValueError, match="mode must be 'eval'"):
        net.vjp({"x": np.ones((1, 6), np.float32)}, None, {}, mode="training")


def test_wrt_names_what_is_differentiated():
    net = _tiny_mlp()
    g = gradient_graph(net.graph, ["fc2.weight"])
    assert [k for k in g.outputs if k.startswith("grad.")] == ["grad.fc2.weight"]
    # the backward stops at fc2: nothing of fc1's is differentiated
    assert not any(n.name.startswith("fc1") and "#grad" in n.name for n in g.nodes)
    with pytest.raises(ValueError, match="'nope' is neither an input nor a param of 'mlp'"):
        differentiate(net.graph, ["nope"], {})


def test_the_backward_holds_only_what_a_gradient_needs():
    """Every backward node feeds a gradient: a vjp's cotangent for something not differentiated (the
    constant scaling attention's scores) is dropped, and with it the forward activation it read."""
    net = gn.load(SPECS / "transformer_encoder.yaml", {"d_model": 8, "heads": 2, "d_ff": 16, "layers": 1})
    g = net.gradient_graph(mode="eval")
    forward = {n.name for n in net.graph.nodes}
    read = {t for n in g.nodes for t in n.inputs} | set(g.outputs.values())
    backward = [n for n in g.nodes if n.name not in forward]
    assert backward and all(set(n.outputs) & read for n in backward)
    assert set(g.types) == set(g.inputs) | set(g.params) | {t for n in g.nodes for t in n.outputs}
    # the raw scores are read by the scale's forward node only: no backward node keeps them
    scores = [t for n in net.graph.nodes if n.name.endswith("attention.scores") for t in n.outputs]
    assert scores and not any(set(n.inputs) & set(scores) for n in backward)
