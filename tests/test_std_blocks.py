"""The std blocks issue 12 found missing (CNN layers; GPT-2's pieces), each against the torch.nn,
torchvision or Hugging Face module it is named for: loaded with that module's own state_dict by
name, run on NumPy and onnxruntime, and (for conv_transpose2d) initialized by PyTorch's fan rule.
The GPT-2 spec ties its LM head to wte: one tensor, two uses, counted and exported once."""

import textwrap
from functools import partial

import numpy as np
import pytest

import graphnet as gn

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
torchvision = pytest.importorskip("torchvision")


def _spec(tmp_path, node: str, c: int = 8, hw: str = "H, W") -> gn.Network:
    path = tmp_path / "block.yaml"
    path.write_text(textwrap.dedent(f"""\
        graphnet: 1
        name: block
        use: [std]
        dims: {{B: ~, H: ~, W: ~}}
        inputs:
          x: [B, {c}, {hw}]
        nodes:
          - {node}
        outputs: {{y: m}}
        """))
    return gn.load(path)


def _same_as(net: gn.Network, module, shape, tmp_path):
    module.eval()
    x = np.random.default_rng(0).uniform(-2, 2, shape).astype(np.float32)
    weights = {k: v.detach().numpy() for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    weights = {f"m.{k}": v for k, v in weights.items()}
    assert sorted(weights) == sorted(net.init_weights())
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net.run({"x": x}, weights)["y"], want, rtol=1e-4, atol=1e-5)
    import onnxruntime as ort
    model = net.to_onnx(weights)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


CONV_NORM_ACT = [
    ("{out: 16, norm: group_norm, norm_groups: 4, act: gelu}",
     dict(norm_layer=partial(torch.nn.GroupNorm, 4), activation_layer=torch.nn.GELU, inplace=None)),
    ("{out: 16, norm: none, act: silu, stride: 2}", dict(norm_layer=None, activation_layer=torch.nn.SiLU, stride=2)),
    ("{out: 16, kernel: 5, bias: true, act: relu6}", dict(kernel_size=5, bias=True, activation_layer=torch.nn.ReLU6)),
    ("{out: 16, norm: instance_norm, act: none, dilation: 2}",
     dict(norm_layer=torch.nn.InstanceNorm2d, activation_layer=None, dilation=2)),
]


@pytest.mark.parametrize("args,torch_args", CONV_NORM_ACT, ids=[a for a, _ in CONV_NORM_ACT])
def test_conv_norm_act_is_torchvisions(args, torch_args, tmp_path):
    torch_args = {"kernel_size": 3, **torch_args}
    module = torchvision.ops.Conv2dNormActivation(8, 16, **torch_args)
    _same_as(_spec(tmp_path, f"{{name: m, block: std.conv_norm_act, args: {args}}}"), module, (2, 8, 9, 7), tmp_path)


def test_layer_norm2d_is_convnexts(tmp_path):
    from torchvision.models.convnext import LayerNorm2d
    module = LayerNorm2d(8, eps=1e-6)
    with torch.no_grad():
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-1, 1)
    _same_as(_spec(tmp_path, "{name: m, block: std.layer_norm2d}"), module, (2, 8, 5, 6), tmp_path)


def test_group_and_instance_norm_are_torchs(tmp_path):
    module = torch.nn.GroupNorm(2, 8)
    with torch.no_grad():
        module.weight.uniform_(0.5, 1.5)
    _same_as(_spec(tmp_path, "{name: m, block: std.group_norm, args: {groups: 2}}"), module, (2, 8, 5, 6), tmp_path)
    module = torch.nn.InstanceNorm2d(8, affine=True)
    _same_as(_spec(tmp_path, "{name: m, block: std.instance_norm, args: {affine: true}}"), module, (2, 8, 5, 6),
             tmp_path)


def test_channel_shuffle_is_torchs(tmp_path):
    _same_as(_spec(tmp_path, "{name: m, block: std.channel_shuffle, args: {groups: 4}}"),
             torch.nn.ChannelShuffle(4), (2, 8, 3, 5), tmp_path)


def test_conv_transpose2d_is_torchs_with_its_init_fan_rule(tmp_path):
    module = torch.nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    node = ("{name: m, block: std.conv_transpose2d, args: {out: 6, kernel: 3, stride: 2, padding: 1, "
            "output_padding: 1, groups: 2}}")
    net = _spec(tmp_path, node)
    _same_as(net, module, (2, 8, 4, 5), tmp_path)
    # PyTorch's fan-in is the weight's axis 1 (out / groups) times the kernel: bound 1/sqrt(3 * 9)
    weights = net.init_weights(seed=1)
    bound = 1 / np.sqrt(6 // 2 * 9)
    for name in ("m.weight", "m.bias"):
        assert np.abs(weights[name]).max() <= bound
        assert np.abs(weights[name]).max() > 0.8 * bound
    assert weights["m.weight"].shape == tuple(module.weight.shape)


@pytest.mark.parametrize("args,torch_args", [
    ("{out: 6, kernel: [1, 7], padding: [0, 3]}", dict(kernel_size=(1, 7), padding=(0, 3))),
    ("{out: 6, kernel: [3, 5], stride: [2, 1], dilation: [1, 2], padding: [1, 4], groups: 2}",
     dict(kernel_size=(3, 5), stride=(2, 1), dilation=(1, 2), padding=(1, 4), groups=2)),
])
def test_conv2d_takes_a_kernel_stride_and_dilation_per_axis_as_torch_does(args, torch_args, tmp_path):
    module = torch.nn.Conv2d(8, 6, **torch_args)
    net = _spec(tmp_path, f"{{name: m, block: std.conv2d, args: {args}}}")
    _same_as(net, module, (2, 8, 9, 11), tmp_path)
    # PyTorch's init: the fan-in counts both kernel axes, 8 / groups * kh * kw
    bound = 1 / np.sqrt(8 // module.groups * module.kernel_size[0] * module.kernel_size[1])
    assert bound * 0.8 < np.abs(net.init_weights(seed=1)["m.bias"]).max() <= bound


class _CausalConv1d(torch.nn.Conv1d):
    """A TCN's causal conv: padded on the left only, by (kernel - 1) * dilation."""

    def forward(self, x):
        return super().forward(torch.nn.functional.pad(x, ((self.kernel_size[0] - 1) * self.dilation[0], 0)))


@pytest.mark.parametrize("args,module", [
    ("{out: 6, kernel: 5, stride: 2, padding: 2, groups: 2}", lambda: torch.nn.Conv1d(8, 6, 5, stride=2, padding=2, groups=2)),
    ("{out: 8, kernel: 4, dilation: 3, padding: same, groups: 8, bias: false}",
     lambda: torch.nn.Conv1d(8, 8, 4, dilation=3, padding="same", groups=8, bias=False)),
    ("{out: 4, kernel: 3, dilation: 2, padding: [4, 0]}", lambda: _CausalConv1d(8, 4, 3, dilation=2)),
    ("{out: 6, kernel: 4, stride: 2, padding: 1, output_padding: 1, groups: 2}",
     lambda: torch.nn.ConvTranspose1d(8, 6, 4, stride=2, padding=1, output_padding=1, groups=2)),
], ids=["conv1d", "depthwise_same", "causal", "conv_transpose1d"])
def test_conv1d_blocks_are_torchs(args, module, tmp_path):
    block = "conv_transpose1d" if "output_padding" in args else "conv1d"
    net = _spec(tmp_path, f"{{name: m, block: std.{block}, args: {args}}}", hw="H")
    module = module()
    _same_as(net, module, (2, 8, 13), tmp_path)
    # PyTorch's init: the fan-in is the weight's axis 1 times the kernel
    w = module.weight
    bound = 1 / np.sqrt(w.shape[1] * w.shape[2])
    assert bound * 0.8 < np.abs(net.init_weights(seed=1)["m.weight"]).max() <= bound


def test_conv_transpose2d_takes_each_size_per_axis_as_torch_does(tmp_path):
    module = torch.nn.ConvTranspose2d(8, 6, (3, 2), stride=(2, 1), padding=(1, 0), output_padding=(1, 0),
                                      dilation=(1, 2))
    net = _spec(tmp_path, "{name: m, block: std.conv_transpose2d, args: {out: 6, kernel: [3, 2], stride: [2, 1], "
                          "padding: [1, 0], output_padding: [1, 0], dilation: [1, 2]}}")
    _same_as(net, module, (2, 8, 4, 5), tmp_path)
    bound = 1 / np.sqrt(6 * 3 * 2)
    assert bound * 0.8 < np.abs(net.init_weights(seed=1)["m.bias"]).max() <= bound


# -- GPT-2 (issue 12, point 1): Conv1D layout, tanh GELU, causal self-attention with padding, tying --

GPT2 = """\
    graphnet: 1
    name: tiny_gpt2
    use: [std]
    dims: {B: ~, T: ~, vocab: 50, d: 32, heads: 4, layers: 2, n_pos: 16}
    inputs:
      input_ids: {shape: [B, T], dtype: int64}
      padding: {shape: [B, T], dtype: bool}
    blocks:
      gpt2:
        args: {vocab: int, d: int, heads: int, layers: int, n_pos: int}
        inputs:
          ids: {shape: [B, T], dtype: int64}
          padding: {shape: [B, T], dtype: bool}
        nodes:
          - {name: wte, block: std.embedding, args: {num: vocab, dim: d, std: 0.02}, inputs: [ids]}
          - {name: positions, op: range, attrs: {limit: T}}
          - {name: wpe, block: std.embedding, args: {num: n_pos, dim: d, std: 0.01}, inputs: [positions]}
          - {name: embed, op: add, inputs: [wte, wpe]}
          - name: h
            block: std.gpt2_block
            args: {heads: heads, key_padding: true}
            inputs: {x: embed, key_padding_mask: padding}
            repeat: layers
          - {name: ln_f, block: std.layer_norm}
        outputs: {y: ln_f}
    nodes:
      - name: transformer
        block: gpt2
        args: {vocab: vocab, d: d, heads: heads, layers: layers, n_pos: n_pos}
        inputs: [input_ids, padding]
      - {name: wte_t, op: transpose, inputs: [transformer.wte.weight]}   # the LM head, tied to wte
      - {name: lm_head, op: matmul, inputs: [transformer, wte_t]}
    outputs: {logits: lm_head}
    """


def test_a_tied_gpt2_is_hugging_faces(tmp_path):
    transformers = pytest.importorskip("transformers")
    import onnxruntime as ort
    config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    path = tmp_path / "gpt2.yaml"
    path.write_text(textwrap.dedent(GPT2))
    net = gn.load(path)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    # one tensor, two uses: the tied head is no weight of its own, and is counted once
    assert sorted(net.init_weights()) == sorted(k for k in state if k != "lm_head.weight")
    assert sum(int(np.prod(v.shape)) for v in net.init_weights().values()) == sum(
        p.numel() for p in model.parameters())
    weights = {k: v for k, v in state.items() if k != "lm_head.weight"}
    ids = np.random.default_rng(0).integers(0, 50, (2, 7))
    attention_mask = np.ones((2, 7), np.int64)
    attention_mask[1, 5:] = 0                       # the second sequence is padded at the end
    with torch.no_grad():
        want = model(torch.from_numpy(ids), attention_mask=torch.from_numpy(attention_mask)).logits.numpy()
    feeds = {"input_ids": ids, "padding": attention_mask == 0}
    got = net.run(feeds, weights)["logits"]
    keep = attention_mask.astype(bool)              # what a padded position computes is not defined
    np.testing.assert_allclose(got[keep], want[keep], rtol=1e-4, atol=1e-4)
    onnx_model = net.to_onnx(weights)
    assert [t.name for t in onnx_model.graph.initializer].count("transformer.wte.weight") == 1
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, feeds)[0][keep], want[keep], rtol=1e-4, atol=1e-4)
