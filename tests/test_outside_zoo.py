"""Networks outside the zoo, written as a user would write them (tests/outside_zoo/*.yaml), against
the torch.nn modules they name their params after: torch's state_dict loads by name, and NumPy and
onnxruntime give torch's outputs (and, for two of them, its gradients). PyTorch is an optional
test dependency; without it these tests are skipped and say so."""

from pathlib import Path

import numpy as np
import pytest

import graphnet as gn

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch)")
ort = pytest.importorskip("onnxruntime")
nn = torch.nn
F = torch.nn.functional
SPECS = Path(__file__).resolve().parent / "outside_zoo"



def double_conv(c_in, out):
    return nn.Sequential(nn.Conv2d(c_in, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(),
                         nn.Conv2d(out, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU())


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.inc, self.down1, self.down2 = double_conv(1, 8), double_conv(8, 16), double_conv(16, 32)
        self.up1 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.conv1 = double_conv(32, 16)
        self.up2 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.conv2 = double_conv(16, 8)
        self.outc = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(F.max_pool2d(x1, 2))
        x3 = self.down2(F.max_pool2d(x2, 2))
        y = self.conv1(torch.cat([x2, self.up1(x3)], 1))
        y = self.conv2(torch.cat([x1, self.up2(y)], 1))
        return self.outc(y)


class Audio(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv1d(1, 16, 9, stride=4, padding=4), nn.BatchNorm1d(16), nn.ReLU(),
                                      nn.MaxPool1d(4), nn.Conv1d(16, 32, 3, padding=1), nn.BatchNorm1d(32),
                                      nn.ReLU(), nn.AdaptiveAvgPool1d(1))
        self.classifier = nn.Linear(32, 10)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class DCGAN(nn.Module):
    def __init__(self, nz=16, ngf=8, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class ResBlock(nn.Module):
    def __init__(self, c=32, c_out=64, e=24, groups=8):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c), nn.Conv2d(c, c_out, 3, padding=1)
        self.time_emb = nn.Linear(e, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c, c_out, 1)

    def forward(self, x, t_emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb(F.silu(t_emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Pointwise(nn.Module):
    def __init__(self, c, out):
        super().__init__()
        self.conv, self.bn = nn.Conv1d(c, out, 1), nn.BatchNorm1d(out)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class PointNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp1, self.mlp2 = Pointwise(3, 32), Pointwise(32, 64)
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, p):
        h = self.mlp2(self.mlp1(p)).amax(2)
        return self.fc2(F.relu(self.fc1(h)))


class CausalConv(nn.Conv1d):
    """Conv1d padded on the left only, so that output t sees inputs up to t."""

    def __init__(self, c, out, k, d):
        super().__init__(c, out, k, dilation=d)
        self.left = (k - 1) * d

    def forward(self, x):
        return super().forward(F.pad(x, (self.left, 0)))


class TemporalBlock(nn.Module):
    def __init__(self, c, out, k, d):
        super().__init__()
        self.conv1, self.conv2 = CausalConv(c, out, k, d), CausalConv(out, out, k, d)
        self.downsample = nn.Conv1d(c, out, 1) if c != out else None

    def forward(self, x):
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class TCN(nn.Module):
    def __init__(self):
        super().__init__()
        chans, layers = [4, 8, 8, 16], []
        for i in range(3):
            layers.append(TemporalBlock(chans[i], chans[i + 1], 3, 2 ** i))
        self.network = nn.Sequential(*layers)

    def forward(self, x):
        return self.network(x)


class TinyGPT(nn.Module):
    def __init__(self, vocab=50, d=32, heads=4, layers=2, max_pos=32):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab, d), nn.Embedding(max_pos, d)
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(d, heads, 4 * d, 0.0, "gelu", batch_first=True,
                                                               norm_first=True) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, tokens):
        T = tokens.shape[1]
        h = self.tok_emb(tokens) + self.pos_emb(torch.arange(T))
        mask = nn.Transformer.generate_square_subsequent_mask(T)
        for layer in self.layers:
            h = layer(h, src_mask=mask, is_causal=True)
        return self.ln_f(h) @ self.tok_emb.weight.T


class Decoder(nn.TransformerDecoderLayer):
    def __init__(self):
        super().__init__(32, 4, 64, 0.0, batch_first=True)

    def forward(self, tgt, memory):
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        return super().forward(tgt, memory, tgt_mask=mask, tgt_is_causal=True)


class MoE(nn.Module):
    def __init__(self, d=16, hidden=32, e=4):
        super().__init__()
        self.gate = nn.Linear(d, e)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, d))
                                     for _ in range(e))

    def forward(self, x):
        g = torch.softmax(self.gate(x), -1)
        return sum(g[:, i:i + 1] * ex(x) for i, ex in enumerate(self.experts))


class DWSep(nn.Module):
    def __init__(self, c=12, out=24):
        super().__init__()
        self.depthwise = nn.Conv1d(c, c, 5, groups=c, padding="same")
        self.pointwise = nn.Conv1d(c, out, 1)
        self.depthwise2 = nn.Conv1d(out, out, 4, groups=out, padding="same")

    def forward(self, x):
        return self.depthwise2(F.gelu(self.pointwise(self.depthwise(x))))


class Siamese(nn.Module):
    def __init__(self, d=20, hidden=16, code=8):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, code))

    def forward(self, a, b):
        ca, cb = self.encoder(a), self.encoder(b)
        return (ca * cb).sum(1), ca


def _randomized(module):
    """The module in eval mode with batch statistics and norm affines away from their defaults,
    so that a mix-up of mean and variance, or of scale and shift, shows."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return module.eval()


def _f32(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# spec -> (module, inputs at two sizes of the free dims: the export is made once and run at both)
CASES = {
    "unet_small": (UNet, [{"x": _f32(0, 2, 1, 16, 24)}, {"x": _f32(1, 1, 1, 8, 4)}]),
    "audio_cnn1d": (Audio, [{"wave": _f32(2, 2, 1, 400)}, {"wave": _f32(3, 1, 1, 64)}]),
    "dcgan_generator": (DCGAN, [{"z": _f32(4, 2, 16, 1, 1)}]),
    "diffusion_resblock": (ResBlock, [{"x": _f32(5, 2, 32, 6, 5), "t_emb": _f32(6, 2, 24)},
                                      {"x": _f32(7, 1, 32, 1, 3), "t_emb": _f32(8, 1, 24)}]),
    "pointnet": (PointNet, [{"points": _f32(9, 2, 3, 50)}, {"points": _f32(10, 1, 3, 1)}]),
    "tcn": (TCN, [{"x": _f32(11, 2, 4, 30)}, {"x": _f32(12, 1, 4, 1)}]),
    "tiny_gpt": (TinyGPT, [{"tokens": np.random.default_rng(13).integers(0, 50, (2, 7))},
                           {"tokens": np.random.default_rng(14).integers(0, 50, (1, 32))}]),
    "decoder_layer": (Decoder, [{"tgt": _f32(15, 2, 5, 32), "memory": _f32(16, 2, 9, 32)},
                                {"tgt": _f32(17, 1, 1, 32), "memory": _f32(18, 1, 3, 32)}]),
    "moe": (MoE, [{"x": _f32(19, 3, 16)}]),
    "dwsep_conv1d": (DWSep, [{"x": _f32(20, 2, 12, 17)}, {"x": _f32(21, 1, 12, 1)}]),
    "siamese": (Siamese, [{"a": _f32(22, 3, 20), "b": _f32(23, 3, 20)}]),
}


def _state(module) -> dict:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _torch_outputs(module, inputs) -> tuple:
    with torch.no_grad():
        out = module(*[torch.from_numpy(v) for v in inputs.values()])
    return tuple(o.numpy() for o in (out if isinstance(out, tuple) else (out,)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_network_outside_the_zoo_computes_what_torch_does(name, tmp_path):
    cls, feeds = CASES[name]
    torch.manual_seed(0)
    module = _randomized(cls())
    net = gn.load(SPECS / f"{name}.yaml")
    if name == "unet_small":     # through a file, as a user would save it (num_batches_tracked and all)
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, tmp_path / "w.safetensors")
        weights = gn.load_weights(tmp_path / "w.safetensors")
    else:
        weights = {k: v for k, v in _state(module).items() if not k.endswith("num_batches_tracked")}
    assert set(net.init_weights()) == {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}
    session = net.session(weights)
    onnx = ort.InferenceSession(net.to_onnx(weights).SerializeToString(), providers=["CPUExecutionProvider"])
    for inputs in feeds:
        expected = _torch_outputs(module, inputs)
        ours = session.run(inputs)
        theirs = onnx.run(list(net.outputs), inputs)
        assert len(ours) == len(expected)
        for want, got, ort_got in zip(expected, ours.values(), theirs):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(ort_got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, mode", [("dcgan_generator", "train"), ("decoder_layer", "eval"),
                                        ("tcn", "eval")])
def test_gradients_outside_the_zoo_are_torchs(name, mode):
    # tcn at a fixed T: a conv's vjp needs its spatial dims known (docs/training.md)
    cls, feeds = CASES[name]
    torch.manual_seed(0)
    module = _randomized(cls()).train(mode == "train")
    net = gn.load(SPECS / f"{name}.yaml", {"T": 30} if name == "tcn" else None)
    inputs = feeds[0]
    weights = {k: v for k, v in _state(module).items() if not k.endswith("num_batches_tracked")}
    given = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in inputs.items()}
    out = module(*given.values())
    out = out if isinstance(out, tuple) else (out,)
    cotangents = {k: _f32(30 + i, *o.shape) for i, (k, o) in enumerate(zip(net.outputs, out))}
    sum((o * torch.from_numpy(cotangents[k])).sum() for k, o in zip(net.outputs, out)).backward()
    _, weight_grads, input_grads = net.vjp(inputs, weights, cotangents, mode=mode, dropout=False)
    grads = {**{k: p.grad for k, p in module.named_parameters()}, **{k: t.grad for k, t in given.items()}}
    assert set(grads) == set(weight_grads) | set(input_grads)
    for k, want in grads.items():
        got = weight_grads[k] if k in weight_grads else input_grads[k]
        scale = max(float(want.abs().max()), 1e-3)
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-4 * scale, err_msg=k)


# A user's mistakes in these specs: each is one located error at the line that is wrong (a mismatch
# where the two shapes meet; for a line of a block, with the call as a note), saying what is wrong.
MISTAKES = [   # spec, text, its replacement, the line the error is at (a part of it), message, notes
    ("audio_cnn1d", "{name: relu1, op: relu}", "{name: relu1, op: reluu}", "reluu",
     "unknown op 'reluu'; did you mean 'relu'?", ()),
    ("unet_small", "inputs: [inc, up2]", "inputs: [inc, up1]", "name: cat2",
     "node 'cat2' (concat): inputs differ in dim 2", ()),
    ("diffusion_resblock", "args: {out: C_out, kernel: 1}, inputs: [x]", "args: {out: C, kernel: 1}, inputs: [x]",
     "name: out,", "node 'out' (add): cannot broadcast [B, 32, H, W] with [B, 64, H, W]", ()),
    ("moe", "axes: [1]}", "axis: [1]}", "axis: [1]", "unknown attribute 'axis'; did you mean 'axes'?",
     ("from 'experts.0'",)),
    ("tcn", "if: C != out}", "if: C != outt}", "outt", "unknown name 'outt'; did you mean 'out'?",
     ("from 'network.0'",)),
    ("pointnet", "weight: {shape: [out, C, 1]", "weight: {shape: [out, P, 1]", "[out, P, 1]",
     "param 'mlp1.conv.weight' has shape [32, N, 1], which depends on the free dim(s) N", ("from 'mlp1'",)),
]


@pytest.mark.parametrize("name, old, new, where, message, notes", MISTAKES, ids=[m[4][:30] for m in MISTAKES])
def test_a_mistake_in_a_network_outside_the_zoo_is_located(name, old, new, where, message, notes, tmp_path):
    text = (SPECS / f"{name}.yaml").read_text()
    assert text.count(old) == 1
    text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    with pytest.raises(gn.SpecError) as info:
        gn.load(path)
    (d,) = info.value.diagnostics
    assert message in d.message
    assert where in text.splitlines()[d.loc.line - 1]
    assert [n.message for n in d.notes] == list(notes)
