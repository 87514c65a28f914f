"""Attention masks and the Transformer blocks of std (graphnet/std/transformer.yaml): the decoder of
specs/transformer.yaml is causal, truncated self-attention sees only its window, the sinusoidal
positional encoding is the paper's formula, and std.mha, std.encoder_layer and std.decoder_layer
compute what torch.nn.MultiheadAttention, TransformerEncoderLayer and TransformerDecoderLayer do
with the same masks, loading those modules' own state_dict() by name. The torch comparisons are
skipped without PyTorch."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn

SPECS = Path(__file__).resolve().parent.parent / "specs"

# The base Transformer shrunk to run in milliseconds: same graph, fewer and narrower layers.
SMALL_TRANSFORMER = {"vocab": 50, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2}


@functools.cache
def _small_transformer() -> tuple[gn.Network, dict]:
    net = gn.load(SPECS / "transformer.yaml", SMALL_TRANSFORMER)
    return net, net.init_weights(seed=1)


def _spec(tmp_path: Path, text: str) -> gn.Network:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return gn.load(path)


def _changed_positions(a: np.ndarray, b: np.ndarray, axis: int = 1) -> set[int]:
    """Positions along `axis` where two outputs differ by more than rounding."""
    diff = np.abs(a - b).max(axis=tuple(i for i in range(a.ndim) if i != axis))
    return {int(i) for i in np.flatnonzero(diff > 1e-5)}


# -- (a) the decoder is causal ----------------------------------------------------------------------

def test_decoder_output_at_t_does_not_depend_on_later_target_tokens():
    net, w = _small_transformer()
    rng = np.random.default_rng(0)
    src = rng.integers(0, 50, (2, 6), dtype=np.int64)
    tgt = rng.integers(0, 50, (2, 7), dtype=np.int64)
    base = net.run({"src": src, "tgt": tgt}, w)
    assert base["probs"].shape == (2, 7, 50)
    np.testing.assert_allclose(base["probs"].sum(-1), 1.0, rtol=1e-5)
    for k in range(7):
        changed = tgt.copy()
        changed[:, k] = (changed[:, k] + 1 + rng.integers(0, 48)) % 50
        out = net.run({"src": src, "tgt": changed}, w)
        # Earlier positions are untouched (bit for bit: the hidden keys get exactly zero weight);
        # position k and every later one see the new token.
        np.testing.assert_array_equal(out["logits"][:, :k], base["logits"][:, :k])
        assert _changed_positions(out["logits"], base["logits"]) == set(range(k, 7))


def test_every_target_position_attends_to_the_whole_source():
    # Cross-attention has no mask: changing one source token changes every target position.
    net, w = _small_transformer()
    rng = np.random.default_rng(1)
    src = rng.integers(0, 50, (1, 6), dtype=np.int64)
    tgt = rng.integers(0, 50, (1, 5), dtype=np.int64)
    base = net.run({"src": src, "tgt": tgt}, w)["logits"]
    for s in (0, 5):
        changed = src.copy()
        changed[0, s] = (changed[0, s] + 7) % 50
        out = net.run({"src": changed, "tgt": tgt}, w)["logits"]
        assert _changed_positions(out, base) == set(range(5))


def test_transformer_embeddings_and_output_projection_share_one_matrix():
    net, _ = _small_transformer()
    assert [k for k in net.graph.params if "embed" in k] == ["embedding"]
    consumers = sorted({n.op.name for n in net.graph.nodes if "embedding" in n.inputs})
    assert consumers == ["gather", "transpose"]


# -- (b) truncated self-attention sees only its window ----------------------------------------------

@pytest.mark.parametrize("layers", [1, 2])
def test_local_attention_receptive_field_grows_by_window_per_layer(layers):
    # Each layer lets position t read positions s with |t - s| <= window; everything else in a layer
    # (layer norm, feed-forward, residual) is per position. So after L layers a change of the input
    # at s reaches exactly the outputs t with |t - s| <= L * window: within that reach every output
    # changes, outside it none does, bit for bit.
    net = gn.load(SPECS / "local_attention.yaml", {"layers": layers})
    w = net.init_weights(seed=2)
    window, T = 3, 17
    reach = layers * window
    x = np.random.default_rng(3).standard_normal((2, T, 256)).astype(np.float32)
    base = net.run({"x": x}, w)["y"]
    for s in (0, 8, 16):
        changed = x.copy()
        changed[:, s] += np.random.default_rng(s).standard_normal(256).astype(np.float32)
        out = net.run({"x": changed}, w)["y"]
        inside = {t for t in range(T) if abs(t - s) <= reach}
        assert _changed_positions(out, base) == inside
        outside = sorted(set(range(T)) - inside)
        np.testing.assert_array_equal(out[:, outside], base[:, outside])


def test_window_zero_means_unlimited(tmp_path):
    net = _spec(tmp_path, """
        graphnet: 1
        name: w0
        use: [std]
        dims: {B: ~, T: ~}
        inputs:
          x: [B, T, 16]
        nodes:
          - {name: attn, block: std.mha, args: {heads: 2, window: 0}, inputs: {q: x, kv: x}}
        outputs: {y: attn}
        """)
    assert not any("window" in n.name or "offset" in n.name for n in net.graph.nodes)
    w = net.init_weights(seed=4)
    x = np.random.default_rng(5).standard_normal((1, 9, 16)).astype(np.float32)
    base = net.run({"x": x}, w)["y"]
    x[:, 0] += 1
    assert _changed_positions(net.run({"x": x}, w)["y"], base) == set(range(9))


# -- (c) the positional encoding is the paper's formula ---------------------------------------------

def _paper_encoding(T: int, D: int) -> np.ndarray:
    """PE[pos, 2i] = sin(pos / 10000^(2i/D)), PE[pos, 2i+1] = cos(pos / 10000^(2i/D)), in float64."""
    pe = np.zeros((T, D))
    for pos in range(T):
        for i in range(D // 2):
            angle = pos / 10000 ** (2 * i / D)
            pe[pos, 2 * i] = np.sin(angle)
            pe[pos, 2 * i + 1] = np.cos(angle)
    return pe


def test_sinusoidal_positions_are_the_papers_formula(tmp_path):
    net = _spec(tmp_path, """
        graphnet: 1
        name: pe
        use: [std]
        dims: {B: ~, T: ~, D: 64}
        inputs:
          x: [B, T, D]
        nodes:
          - {name: pos, block: std.sinusoidal_positions}
        outputs: {y: pos}
        """)
    assert net.graph.param_count() == 0 and net.outputs == {"y": ("B", "T", 64)}
    for T in (1, 7, 60):   # one network, any sequence length
        x = np.random.default_rng(T).standard_normal((2, T, 64)).astype(np.float32)
        y = net.run({"x": x}, {})["y"]
        np.testing.assert_allclose(y - x, np.broadcast_to(_paper_encoding(T, 64), (2, T, 64)), atol=2e-5)


def test_sinusoidal_positions_need_an_even_width(tmp_path):
    with pytest.raises(gn.SpecError, match="D % 2 == 0"):
        _spec(tmp_path, """
            graphnet: 1
            name: pe_odd
            use: [std]
            dims: {B: ~, T: ~}
            inputs:
              x: [B, T, 7]
            nodes:
              - {name: pos, block: std.sinusoidal_positions}
            outputs: {y: pos}
            """)


def test_embedding_is_torch_embedding(tmp_path):
    net = _spec(tmp_path, """
        graphnet: 1
        name: emb
        use: [std]
        dims: {B: ~, T: ~}
        inputs:
          ids: {shape: [B, T], dtype: int64}
        nodes:
          - {name: tok, block: std.embedding, args: {num: 1000, dim: 64}}
        outputs: {y: tok}
        """)
    assert {k: p.type.shape for k, p in net.graph.params.items()} == {"tok.weight": (1000, 64)}
    w = net.init_weights(seed=6)
    assert abs(w["tok.weight"].std() - 1.0) < 0.02 and abs(w["tok.weight"].mean()) < 0.02   # N(0, 1)
    ids = np.array([[3, 999, 0], [3, 3, 12]], np.int64)
    np.testing.assert_array_equal(net.run({"ids": ids}, w)["y"], w["tok.weight"][ids])


# -- (d) std.mha with masks is torch.nn.MultiheadAttention, names and all ---------------------------

def _torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")


def _torch_weights(module, prefix: str, seed: int) -> dict:
    """torch's own state_dict, as is but for the prefix of the node that holds it. Every tensor
    torch initializes to a constant (zero biases, layer norms) is redrawn, so that a weight in the
    wrong place changes the output."""
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if torch.all(p == p.flatten()[0]):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return {prefix + k: v.numpy().copy() for k, v in module.state_dict().items()}


MHA_SPEC = """
    graphnet: 1
    name: mha_masks
    use: [std]
    dims: {{B: ~, T: ~, S: ~, D: 32, K: {kdim}}}
    inputs:
      q: [B, T, D]
      kv: [B, S, K]
      {extra_inputs}
    nodes:
      - {{name: attn, block: std.mha, args: {args}, inputs: {inputs}}}
    outputs: {{y: attn}}
    """


def _positions_mask(T: int, S: int, causal: bool, window: int) -> np.ndarray:
    t, s = np.arange(T)[:, None], np.arange(S)[None, :]
    hidden = np.zeros((T, S), bool)
    if causal:
        hidden |= s > t
    if window:
        hidden |= np.abs(t - s) > window
    return hidden


# (case, our args, self-attention?)
MHA_CASES = [
    ("additive_mask_and_key_padding_cross", {"mask": "additive", "key_padding": True}, False),
    ("bool_mask_self", {"mask": "bool"}, True),
    ("causal", {"causal": True}, True),
    ("window", {"window": 2}, True),
    ("causal_window_key_padding", {"causal": True, "window": 1, "key_padding": True}, True),
    ("no_mask_cross", {}, False),
    ("kdim_cross", {"kdim": 24}, False),
    ("kdim_no_bias_cross", {"kdim": 24, "bias": False}, False),
    ("no_bias_self", {"bias": False}, True),
]


@pytest.mark.parametrize("case, args, self_attention", MHA_CASES, ids=[c[0] for c in MHA_CASES])
def test_mha_with_masks_matches_torch_multihead_attention(tmp_path, case, args, self_attention):
    torch = _torch()
    args = dict(args)
    B, T, S, D, K, heads = 2, 6, 6 if self_attention else 4, 32, args.pop("kdim", 32), 4
    extra, inputs = [], {"q": "q", "kv": "q" if self_attention else "kv"}
    keys = "T" if self_attention else "S"    # the key axis: the query's own for self-attention
    if args.get("mask") == "additive":
        extra.append(f"attn_mask: [T, {keys}]")
        inputs["attn_mask"] = "attn_mask"
    if args.get("mask") == "bool":
        extra.append(f"bool_mask: {{shape: [T, {keys}], dtype: bool}}")
        inputs["bool_mask"] = "bool_mask"
    if args.get("key_padding"):
        extra.append(f"key_padding_mask: {{shape: [B, {keys}], dtype: bool}}")
        inputs["key_padding_mask"] = "key_padding_mask"
    arg_text = "{" + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                               for k, v in {"heads": heads, **args}.items()) + "}"
    input_text = "{" + ", ".join(f"{k}: {v}" for k, v in inputs.items()) + "}"
    spec = MHA_SPEC.format(kdim=K, extra_inputs="\n      ".join(extra), args=arg_text, inputs=input_text)
    if self_attention:
        spec = spec.replace("      kv: [B, S, K]\n", "")
    net = _spec(tmp_path, spec)
    module = torch.nn.MultiheadAttention(D, heads, bias=args.get("bias", True), kdim=K, vdim=K,
                                         batch_first=True).eval()
    w = _torch_weights(module, "attn.", seed=7)
    # torch's names and shapes, all of them: packed in_proj_weight unless kdim differs
    assert {k: v.shape for k, v in w.items()} == {k: p.type.shape for k, p in net.graph.params.items()}
    assert ("attn.in_proj_weight" in w) == (K == D)

    rng = np.random.default_rng(8)
    feed = {"q": rng.standard_normal((B, T, D)).astype(np.float32)}
    kv = feed["q"] if self_attention else rng.standard_normal((B, S, K)).astype(np.float32)
    if not self_attention:
        feed["kv"] = kv
    hidden = _positions_mask(T, S, args.get("causal", False), args.get("window", 0))
    torch_kwargs = {}
    if args.get("mask") == "additive":
        feed["attn_mask"] = rng.standard_normal((T, S)).astype(np.float32)
        torch_kwargs["attn_mask"] = torch.from_numpy(feed["attn_mask"])
    if args.get("mask") == "bool":
        feed["bool_mask"] = (rng.random((T, S)) < 0.4) & ~np.eye(T, S, dtype=bool)   # never a whole row
        hidden = hidden | feed["bool_mask"]
    if args.get("key_padding"):
        padding = np.zeros((B, S), bool)
        padding[0, S - 2] = True     # no query is left without a key, also with causal + window 1
        padding[1, 1] = True
        feed["key_padding_mask"] = padding
        # PyTorch wants both masks of one kind: the float form of the padding mask.
        if "attn_mask" in torch_kwargs:
            torch_kwargs["key_padding_mask"] = torch.from_numpy(np.where(padding, -np.inf, 0).astype(np.float32))
        else:
            torch_kwargs["key_padding_mask"] = torch.from_numpy(padding)
    if hidden.any():
        torch_kwargs["attn_mask"] = torch.from_numpy(hidden)
    ours = net.run(feed, w)["y"]
    with torch.no_grad():
        theirs, _ = module(torch.from_numpy(feed["q"]), torch.from_numpy(kv), torch.from_numpy(kv),
                           need_weights=False, **torch_kwargs)
    assert not np.isnan(ours).any()
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-5)


def test_mask_args_reject_unknown_kinds(tmp_path):
    with pytest.raises(gn.SpecError, match="mask == 'none' or mask == 'additive' or mask == 'bool'"):
        _spec(tmp_path, MHA_SPEC.format(kdim=32, extra_inputs="", args="{heads: 4, mask: float}",
                                        inputs="{q: q, kv: kv}"))


def test_fully_masked_query_gives_nan_as_in_torch(tmp_path):
    # A query whose keys are all padding has no distribution to take: NaN, as in PyTorch.
    net = _spec(tmp_path, MHA_SPEC.format(kdim=32, extra_inputs="key_padding_mask: {shape: [B, S], dtype: bool}",
                                          args="{heads: 4, key_padding: true}",
                                          inputs="{q: q, kv: kv, key_padding_mask: key_padding_mask}"))
    feed = net.random_inputs({"B": 2, "T": 3, "S": 4}, seed=9)
    feed["key_padding_mask"] = np.array([[True] * 4, [False, True, False, True]])
    with np.errstate(invalid="ignore"):    # -inf - (-inf) in the softmax
        y = net.run(feed)["y"]
    assert np.isnan(y[0]).all() and not np.isnan(y[1]).any()


# -- (e) the layers are PyTorch's, names and all -------------------------------------------------------

DECODER_SPEC = """
    graphnet: 1
    name: decoder_layer
    use: [std]
    dims: {{B: ~, T: ~, S: ~, D: 32}}
    inputs:
      x: [B, T, D]
      memory: [B, S, D]
      tgt_pad: {{shape: [B, T], dtype: bool}}
      mem_pad: {{shape: [B, S], dtype: bool}}
    nodes:
      - name: dec
        block: std.decoder_layer
        args: {{heads: 4, d_ff: 64, norm_first: {norm_first}, tgt_key_padding: true, memory_key_padding: true}}
        inputs: {{x: x, memory: memory, tgt_key_padding_mask: tgt_pad, memory_key_padding_mask: mem_pad}}
    outputs: {{y: dec}}
    """


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(tmp_path, norm_first):
    torch = _torch()
    net = _spec(tmp_path, DECODER_SPEC.format(norm_first=str(norm_first).lower()))
    module = torch.nn.TransformerDecoderLayer(32, 4, 64, dropout=0.1, batch_first=True, norm_first=norm_first).eval()
    w = _torch_weights(module, "dec.", seed=10)
    assert {k: v.shape for k, v in w.items()} == {k: p.type.shape for k, p in net.graph.params.items()}

    rng = np.random.default_rng(12)
    B, T, S = 2, 5, 7
    feed = {"x": rng.standard_normal((B, T, 32)).astype(np.float32),
            "memory": rng.standard_normal((B, S, 32)).astype(np.float32),
            "tgt_pad": np.zeros((B, T), bool), "mem_pad": np.zeros((B, S), bool)}
    feed["tgt_pad"][1, 3:] = True     # padding at the end; position 0 always sees itself
    feed["mem_pad"][0, 5:] = True
    ours = net.run(feed, w)["y"]
    with torch.no_grad():
        theirs = module(torch.from_numpy(feed["x"]), torch.from_numpy(feed["memory"]),
                        tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(T),
                        tgt_key_padding_mask=torch.from_numpy(np.where(feed["tgt_pad"], -np.inf, 0).astype(np.float32)),
                        memory_key_padding_mask=torch.from_numpy(feed["mem_pad"])).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


ENCODER_SPEC = """
    graphnet: 1
    name: encoder_layer
    use: [std]
    dims: {{B: ~, T: ~, D: 32}}
    inputs:
      x: [B, T, D]
      mask: [B, 1, 1, T]
    nodes:
      - name: enc
        block: std.encoder_layer
        args: {{heads: 4, d_ff: 64, activation: {activation}, eps: {eps}, norm_first: {norm_first}, mask: additive}}
        inputs: [x, mask]
    outputs: {{y: enc}}
    """


@pytest.mark.parametrize("norm_first, activation, eps", [(False, "relu", 1e-5), (False, "gelu", 1e-12),
                                                         (True, "gelu", 1e-6)],
                         ids=["post_norm", "bert_style", "vit_style_pre_norm"])
def test_encoder_layer_matches_torch(tmp_path, norm_first, activation, eps):
    torch = _torch()
    net = _spec(tmp_path, ENCODER_SPEC.format(activation=activation, eps=eps, norm_first=str(norm_first).lower()))
    module = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, activation=activation, layer_norm_eps=eps,
                                              batch_first=True, norm_first=norm_first).eval()
    w = _torch_weights(module, "enc.", seed=13)
    assert {k: v.shape for k, v in w.items()} == {k: p.type.shape for k, p in net.graph.params.items()}
    rng = np.random.default_rng(15)
    B, T, heads = 3, 6, 4
    x = rng.standard_normal((B, T, 32)).astype(np.float32)
    keep = np.ones((B, T), np.float32)
    keep[1, 4:] = 0
    mask = ((1 - keep) * np.finfo(np.float32).min).reshape(B, 1, 1, T)    # Hugging Face's additive form
    ours = net.run({"x": x, "mask": mask}, w)["y"]
    # torch wants a float mask of [B * heads, T, S]
    torch_mask = np.broadcast_to(mask, (B, heads, T, T)).reshape(B * heads, T, T)
    with torch.no_grad():
        theirs = module(torch.from_numpy(x), src_mask=torch.from_numpy(np.ascontiguousarray(torch_mask))).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


# -- MACs of the Transformer specs, derived ---------------------------------------------------------

def _macs(name: str, **dims) -> int:
    return gn.load(SPECS / f"{name}.yaml").graph.total_macs().subs(dims).value


def test_transformer_macs_are_the_sum_of_its_matmuls():
    d, dff, V, L, S, T = 512, 2048, 32000, 6, 11, 13
    encoder = L * (4 * S * d * d + 2 * S * S * d + 2 * S * d * dff)                 # q, k, v, out; QK^T, AV; FFN
    decoder = L * (4 * T * d * d + 2 * T * T * d                                    # masked self-attention
                   + 2 * T * d * d + 2 * S * d * d + 2 * T * S * d                  # cross: q, out on T; k, v on S
                   + 2 * T * d * dff)
    assert _macs("transformer", B=1, S=S, T=T) == encoder + decoder + T * d * V


def test_bert_and_local_attention_macs_are_the_sum_of_their_matmuls():
    d, T = 768, 128
    assert _macs("bert_base", B=1, T=T) == 12 * (4 * T * d * d + 2 * T * T * d + 2 * T * d * 3072) + d * d
    # The window is a mask: the scores are still computed for every pair of positions.
    assert _macs("local_attention", B=1, T=T) == 2 * (4 * T * 256 * 256 + 2 * T * T * 256 + 2 * T * 256 * 1024)
