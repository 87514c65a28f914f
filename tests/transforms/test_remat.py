"""Rematerialization in the gradient graph: attention's probabilities, which grow with T x S where
what they are computed from grows with T and S, are recomputed in the backward instead of kept,
with torch's gradients; what does not grow that way (a layer's widening product, fixed small
sizes) is kept as it was."""

from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.backends.numpy_backend import bind_dims, peak_bytes

torch = pytest.importorskip("torch")

SPECS = Path(__file__).resolve().parent.parent.parent / "specs"

ATTENTION = """\
graphnet: 1
name: attend
use: [std]
dims: {{B: ~, T: ~, S: ~}}
inputs:
  q: [B, T, 16]
  k: [B, S, 16]
  v: [B, S, 16]
  key_padding_mask: {{shape: [B, S], dtype: bool}}
nodes:
  - name: att
    block: std.attention
    args: {{heads: 2, causal: {causal}, key_padding: true}}
    inputs: {{q: q, k: k, v: v, key_padding_mask: key_padding_mask}}
outputs: {{y: att}}
"""


def _attention(tmp_path, causal: bool):
    path = tmp_path / "attend.yaml"
    path.write_text(ATTENTION.format(causal=str(causal).lower()))
    return gn.load(path)


def _normal(rng, *shape):
    return rng.standard_normal((*shape, 16)).astype(np.float32)


def _backward(net, graph):
    forward = {n.name for n in net.graph.nodes}
    return [n for n in graph.nodes if n.name not in forward]


def _recomputed(net, graph) -> list:
    """The backward nodes reading no cotangent, directly or not: forward work done again, and what
    a vjp computes from forward tensors alone (a weight's transpose, layer norm's statistics)."""
    tainted = {t for t in graph.inputs if t.startswith("cotangent.")}
    out = []
    for n in _backward(net, graph):
        if tainted & set(n.inputs):
            tainted.update(n.outputs)
        elif n.op.name != "constant":
            out.append(n)
    return out


def _probabilities(net) -> set[str]:
    return {t for n in net.graph.nodes if n.op.name == "softmax" for t in n.outputs}


@pytest.mark.parametrize("causal", [False, True])
def test_attention_probabilities_are_recomputed_with_torchs_gradients(tmp_path, causal):
    net = _attention(tmp_path, causal)
    graph = net.gradient_graph()
    backward = _backward(net, graph)
    probabilities = _probabilities(net)
    # no backward node reads the forward's probabilities: they are freed when the forward ends
    assert probabilities and not any(set(n.inputs) & probabilities for n in backward)
    assert [n.op.name for n in _recomputed(net, graph)].count("softmax") == 1
    rng = np.random.default_rng(0)
    b, t, s = 2, 5, 7
    feed = {"q": _normal(rng, b, t), "k": _normal(rng, b, s), "v": _normal(rng, b, s),
            "key_padding_mask": np.zeros((b, s), bool)}
    feed["key_padding_mask"][1, 4:] = True
    cot = _normal(rng, b, t)
    outputs, _, grads = net.vjp(feed, {}, {"y": cot})

    q, k, v = (torch.tensor(feed[n], requires_grad=True) for n in "qkv")
    heads = [x.reshape(b, -1, 2, 8).transpose(1, 2) for x in (q, k, v)]
    hidden = torch.tensor(feed["key_padding_mask"])[:, None, None, :]
    if causal:
        hidden = hidden | torch.ones(t, s, dtype=torch.bool).triu(1)
    y = torch.nn.functional.scaled_dot_product_attention(*heads, attn_mask=~hidden)
    y = y.transpose(1, 2).reshape(b, t, 16)
    y.backward(torch.tensor(cot))
    np.testing.assert_allclose(outputs["y"], y.detach().numpy(), rtol=1e-5, atol=1e-6)
    for name, x in zip("qkv", (q, k, v)):
        np.testing.assert_allclose(grads[name], x.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_a_deeper_stack_keeps_no_more_probabilities():
    """At T = 512 each layer's probabilities (B x heads x T x T) are 32 times its Q or K. Kept for
    the backward, three more layers would add at least three of them to the peak; recomputed, the
    peak of a 4-layer stack is within one of them of a 1-layer stack's."""
    def peak(layers: int) -> int:
        net = gn.load(SPECS / "transformer_encoder.yaml", {"d_model": 16, "heads": 2, "d_ff": 32, "layers": layers})
        graph = net.gradient_graph(mode="eval")
        return peak_bytes(graph, bind_dims(graph, {"x": (2, 512, 16), "cotangent.y": (2, 512, 16)}))
    probabilities = 2 * 2 * 512 * 512 * 4
    assert peak(4) - peak(1) < probabilities


def test_a_widening_layer_is_kept_not_recomputed():
    """A feed-forward's x W widens d_model 4 times: recomputing it would cost a GEMM per saved
    element, so nothing but the attention's product is recomputed."""
    net = gn.load(SPECS / "transformer_encoder.yaml", {"d_model": 8, "heads": 2, "d_ff": 32, "layers": 2})
    products = [n for n in _recomputed(net, net.gradient_graph(mode="eval")) if n.op.name in ("matmul", "softmax")]
    assert sorted(n.op.name for n in products) == ["matmul"] * 2 + ["softmax"] * 2
    assert all(".attention." in n.name for n in products)


def test_fixed_small_sizes_keep_the_probabilities():
    """With T fixed at 4 the probabilities are smaller than Q and K: nothing is recomputed."""
    net = gn.load(SPECS / "transformer_encoder.yaml", {"d_model": 8, "heads": 2, "d_ff": 16, "layers": 1, "T": 4})
    graph = net.gradient_graph(mode="eval")
    assert not any(n.op.name == "softmax" for n in _recomputed(net, graph))
    assert any(set(n.inputs) & _probabilities(net) for n in _backward(net, graph))
