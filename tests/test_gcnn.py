"""Graph and group convolutions: specs/gcn.yaml (std.gcn_layer) against the GCN formula written in
NumPy, and specs/gcnn_p4.yaml (std.p4_lift, std.p4_conv) for rotation equivariance: rotating the
input by 90 degrees rotates every p4 feature map by 90 degrees and shifts its rotation axis by one,
and the final pooling over rotations and positions gives the same logits for all four rotations."""

import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import graphnet as gn

SPECS = Path(__file__).resolve().parent.parent / "specs"


# ---------------------------------------------------------------- GCN

def _gcn_reference(x, adj, w):
    """Kipf & Welling's forward pass, one graph at a time, with explicit I and D matrices."""
    def layer(h, a, weight, bias):
        a_hat = a + np.eye(len(a))
        d = np.diag(a_hat.sum(1) ** -0.5)
        return d @ a_hat @ d @ h @ weight + bias

    out = []
    for xb, ab in zip(x.astype(np.float64), adj.astype(np.float64)):
        h = np.maximum(layer(xb, ab, w["gc1.weight"], w["gc1.bias"]), 0)
        z = layer(h, ab, w["gc2.weight"], w["gc2.bias"])
        e = np.exp(z - z.max(-1, keepdims=True))
        out.append(e / e.sum(-1, keepdims=True))
    return np.stack(out)


def _graphs(B, N, F, seed, weighted=False):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((B, N, N)) < 0.3, k=1).astype(np.float32)
    if weighted:
        upper *= rng.uniform(0.5, 2.0, upper.shape).astype(np.float32)
    adj = upper + upper.transpose(0, 2, 1)                  # undirected, no self-loops
    return rng.standard_normal((B, N, F)).astype(np.float32), adj


def _random_biases(w, seed):
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(v.shape).astype(np.float32) if k.endswith("bias") else v) for k, v in w.items()}


def test_gcn_cora_param_count():
    net = gn.load(SPECS / "gcn.yaml")
    assert net.graph.param_count() == 1433 * 16 + 16 + 16 * 7 + 7 == 23_063
    assert {k: v.type.shape for k, v in net.graph.params.items()} == {
        "gc1.weight": (1433, 16), "gc1.bias": (16,), "gc2.weight": (16, 7), "gc2.bias": (7,)}
    assert net.inputs == {"x": ("B", "N", 1433), "adj": ("B", "N", "N")}


@pytest.mark.parametrize("weighted", [False, True])
def test_gcn_equals_the_formula_in_numpy(weighted):
    net = gn.load(SPECS / "gcn.yaml")
    w = _random_biases(net.init_weights(seed=1), seed=2)    # zero-initialized biases would hide their place
    for B, N in ((2, 9), (1, 4)):
        x, adj = _graphs(B, N, 1433, seed=N, weighted=weighted)
        ours = net.run({"x": x, "adj": adj}, w)["probs"]
        np.testing.assert_allclose(ours, _gcn_reference(x, adj, w), rtol=1e-4, atol=1e-6)


def test_gcn_onnx_keeps_the_node_count_free():
    net = gn.load(SPECS / "gcn.yaml")
    w = _random_biases(net.init_weights(seed=3), seed=4)
    model = net.to_onnx(w)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[1].type.tensor_type.shape.dim]
    assert dims == ["B", "N", "N"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for B, N in ((1, 11), (3, 5)):
        x, adj = _graphs(B, N, 1433, seed=B + N)
        theirs = session.run(None, {"x": x, "adj": adj})[0]
        np.testing.assert_allclose(net.run({"x": x, "adj": adj}, w)["probs"], theirs, rtol=1e-4, atol=1e-6)


def test_gcn_layer_takes_one_unbatched_graph(tmp_path):
    path = tmp_path / "one_graph.yaml"
    path.write_text(textwrap.dedent("""\
        graphnet: 1
        name: one_graph
        use: [std]
        dims: {N: ~}
        inputs:
          x: [N, 5]
          adj: [N, N]
        nodes:
          - {name: gc1, block: std.gcn_layer, args: {out: 3}, inputs: {x: x, adj: adj}}
          - {name: gc2, block: std.gcn_layer, args: {out: 2, bias: false}, inputs: {x: gc1, adj: adj}}
        outputs: {y: gc2}
        """))
    net = gn.load(path)
    assert net.outputs == {"y": ("N", 2)} and net.graph.param_count() == 5 * 3 + 3 + 3 * 2
    w = _random_biases(net.init_weights(seed=5), seed=6)
    x, adj = _graphs(1, 7, 5, seed=7, weighted=True)
    a_hat = adj[0].astype(np.float64) + np.eye(7)
    norm = a_hat / np.sqrt(np.outer(a_hat.sum(1), a_hat.sum(1)))
    expected = norm @ (norm @ x[0] @ w["gc1.weight"] + w["gc1.bias"]) @ w["gc2.weight"]
    np.testing.assert_allclose(net.run({"x": x[0], "adj": adj[0]}, w)["y"], expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- G-CNN on p4

def _rot(a, k=1):
    """Rotate the last two (spatial) axes by k * 90 degrees counter-clockwise."""
    return np.ascontiguousarray(np.rot90(a, k, axes=(-2, -1)))


def _rotated_p4(f, k):
    """The p4 feature map of a k-times rotated input: every plane rotated and plane r moved to r + k."""
    return _rot(np.roll(f, k, axis=2), k)


def _gcnn_with_inner_outputs(tmp_path):
    text = (SPECS / "gcnn_p4.yaml").read_text()
    assert text.count("outputs: {logits: logits}") == 1
    text = text.replace("outputs: {logits: logits}", "outputs: {logits: logits, l1: l1, l2: l2, l6: l6, top: top}")
    path = tmp_path / "gcnn_p4_inner.yaml"
    path.write_text(text)
    return gn.load(path)


def _with_random_batch_norm(w, seed):
    rng = np.random.default_rng(seed)
    out = dict(w)
    for k, v in w.items():
        if k.endswith((".bn.running_mean", ".bn.bias")):
            out[k] = (0.1 * rng.standard_normal(v.shape)).astype(np.float32)
        elif k.endswith((".bn.running_var", ".bn.weight")):
            out[k] = rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
    return out


def test_gcnn_p4_param_count():
    net = gn.load(SPECS / "gcnn_p4.yaml")
    lift, conv, bn, top = 10 * 1 * 3 * 3 + 10, 10 * 10 * 4 * 3 * 3 + 10, 2 * 10, 10 * 10 * 4 * 4 * 4 + 10
    assert net.graph.param_count(trainable=True) == lift + 5 * conv + 6 * bn + top == 24_680
    assert net.graph.param_count() - 24_680 == 6 * 2 * 10        # batch-norm running statistics
    assert net.graph.params["l2.conv.weight"].type.shape == (10, 10, 4, 3, 3)
    assert net.outputs == {"logits": ("B", 10)}


def test_gcnn_p4_feature_maps_are_rotation_equivariant(tmp_path):
    net = _gcnn_with_inner_outputs(tmp_path)
    w = _with_random_batch_norm(net.init_weights(seed=1), seed=2)
    x = np.random.default_rng(3).standard_normal((2, 1, 28, 28)).astype(np.float32)
    base = net.run({"image": x}, w)
    assert base["l1"].shape == (2, 10, 4, 26, 26) and base["top"].shape == (2, 10, 4, 1, 1)
    for k in (1, 2, 3):
        turned = net.run({"image": _rot(x, k)}, w)
        for name in ("l1", "l2", "l6", "top"):          # after lifting, after a p4 conv, the last p4 maps
            np.testing.assert_allclose(turned[name], _rotated_p4(base[name], k), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name}, rotation {k}")
            assert not np.allclose(turned[name], base[name], atol=1e-3)   # the maps really move
        np.testing.assert_allclose(turned["logits"], base["logits"], rtol=1e-5, atol=1e-5)


def _p4_spec(tmp_path, padding, bias):
    path = tmp_path / "p4_layers.yaml"
    path.write_text(textwrap.dedent(f"""\
        graphnet: 1
        name: p4_layers
        use: [std]
        dims: {{B: ~}}
        inputs:
          x: [B, 2, 9, 9]
        nodes:
          - {{name: lift, block: std.p4_lift, args: {{out: 3, kernel: 3, padding: {padding}, bias: {bias}}}}}
          - {{name: conv, block: std.p4_conv, args: {{out: 4, kernel: 2, padding: {padding}, bias: {bias}}}}}
        outputs: {{lift: lift, conv: conv}}
        """))
    return gn.load(path)


@pytest.mark.parametrize("padding, bias", [(0, "true"), (1, "false")])
def test_p4_layers_equal_rot90_and_roll_filters_in_torch(tmp_path, padding, bias):
    # An independent build of the filter banks: torch.rot90 and torch.roll instead of flips,
    # transposes, splits and concats; the correlation itself is torch's conv2d.
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
    F = torch.nn.functional
    net = _p4_spec(tmp_path, padding, bias)
    w = {k: torch.from_numpy(v) for k, v in _random_biases(net.init_weights(seed=8), seed=9).items()}
    x = np.random.default_rng(10).standard_normal((2, 2, 9, 9)).astype(np.float32)
    ours = net.run({"x": x}, {k: v.numpy() for k, v in w.items()})

    def bias4(name):
        return w[name].repeat_interleave(4) if name in w else None

    lift_w = torch.stack([torch.rot90(w["lift.weight"], r, dims=(2, 3)) for r in range(4)], dim=1).reshape(12, 2, 3, 3)
    lift = F.conv2d(torch.from_numpy(x), lift_w, bias4("lift.bias"), padding=padding)
    lift = lift.reshape(2, 3, 4, *lift.shape[-2:])
    conv_w = torch.stack([torch.rot90(torch.roll(w["conv.weight"], r, dims=2), r, dims=(3, 4)) for r in range(4)],
                         dim=1).reshape(16, 12, 2, 2)
    conv = F.conv2d(lift.reshape(2, 12, *lift.shape[-2:]), conv_w, bias4("conv.bias"), padding=padding)
    conv = conv.reshape(2, 4, 4, *conv.shape[-2:])
    np.testing.assert_allclose(ours["lift"], lift.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours["conv"], conv.numpy(), rtol=1e-5, atol=1e-5)
    # and each layer is equivariant, also with padding and an even kernel
    turned = net.run({"x": _rot(x)}, {k: v.numpy() for k, v in w.items()})
    for name in ("lift", "conv"):
        np.testing.assert_allclose(turned[name], _rotated_p4(ours[name], 1), rtol=1e-5, atol=1e-5)


def test_gcnn_p4_logits_are_invariant_to_input_rotation():
    net = gn.load(SPECS / "gcnn_p4.yaml")
    w = _with_random_batch_norm(net.init_weights(seed=4), seed=5)
    x = np.random.default_rng(6).standard_normal((3, 1, 28, 28)).astype(np.float32)
    logits = [net.run({"image": _rot(x, k)}, w)["logits"] for k in range(4)]
    for k in (1, 2, 3):
        np.testing.assert_allclose(logits[k], logits[0], rtol=1e-5, atol=1e-5)
    # a transpose (a reflection) is not in p4: the logits change
    assert not np.allclose(net.run({"image": np.ascontiguousarray(x.swapaxes(-1, -2))}, w)["logits"], logits[0],
                           atol=1e-4)
