"""The Transformer specs load their upstream modules' own state_dict() by name, with no renaming and
no flag, through the command line:

    transformer_encoder  torch.nn.TransformerEncoder(nn.TransformerEncoderLayer(...), num_layers)
    transformer          torch.nn.TransformerEncoder and TransformerDecoder (torch.nn.Transformer
                         without its final norms) beside the paper's shared `embedding`
    local_attention      torch.nn.TransformerEncoder, run with the window as its attention mask
    vit_b16              torchvision.models.VisionTransformer (vit_b_16 at full size)
    bert_base            transformers.BertModel(BertConfig(...))

Each module is built by its library's own code (the names must be theirs, not a rebuild's), every
tensor it initializes to a constant is redrawn so that a weight in the wrong place changes the output,
its state_dict() is saved with torch.save, as .safetensors (and BERT with save_pretrained) and as
.npz, and `graphnet run SPEC --weights FILE --inputs ...` on NumPy and on onnxruntime, for each file,
and `graphnet export --weights` run in onnxruntime, give the module's outputs (eval mode, dropout off)
within 1e-4 of their scale. Reduced dims (--dim: fewer, narrower layers of the same
graph; for ViT a 32x32 image) keep it quick; at full size the module's names and shapes must be
exactly the spec's params. Tests needing torchvision or transformers are skipped, saying so, where
those cannot be imported.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import graphnet as gn
from tests.test_upstream_weights import _library
from graphnet.cli import main

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch)")
nn = torch.nn
SPECS = Path(__file__).resolve().parent.parent / "specs"




def _redraw_constants(module: nn.Module, seed: int) -> nn.Module:
    """Every tensor the library initialized to one value (zero biases, layer norms, a class token)
    gets random values around it; the module then goes to eval mode (dropout off)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if torch.all(p == p.flatten()[0]):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    state = module.state_dict()
    assert not any(torch.all(v == v.flatten()[0]) for v in state.values() if v.is_floating_point() and v.numel() > 1)
    return module.eval()


def _saved(module: nn.Module, folder: Path) -> list[Path]:
    """The module's state_dict() as the files people have: written by torch.save and by the
    safetensors package's own torch writer, and as an .npz of NumPy arrays."""
    from safetensors.torch import save_file
    state = module.state_dict()
    files = [folder / "weights.pt", folder / "weights.safetensors", folder / "weights.npz"]
    torch.save(state, files[0])
    save_file(state, files[1])
    np.savez(files[2], **{k: v.numpy() for k, v in state.items()})
    return files


def _assert_close(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    assert ours.shape == theirs.shape, what
    scale = float(np.abs(theirs).max())
    assert scale > 0 and np.isfinite(ours).all(), what
    err = float(np.abs(ours - theirs).max())
    assert err <= 1e-4 * scale, f"{what}: max difference {err:.3g} against a scale of {scale:.3g}"


def _same_names(spec: str, module: nn.Module, dims: dict | None = None) -> int:
    """The module's state_dict names and shapes are exactly the spec's params; how many."""
    net = gn.load(SPECS / f"{spec}.yaml", dims)
    theirs = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    ours = {k: tuple(d.value for d in p.type.shape) for k, p in net.graph.params.items()}
    assert theirs == ours, (sorted(set(theirs) ^ set(ours))[:10], [k for k in ours if theirs.get(k, ours[k]) != ours[k]])
    return len(ours)


def _check_cli(tmp_path: Path, spec: str, dims: dict, module: nn.Module, feed: dict, expected: dict,
               files: list[Path] | None = None) -> None:
    """run (NumPy, onnxruntime) with each of the module's saved weight files, and export with the
    first, give `expected`."""
    files = files or _saved(module, tmp_path)
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, **feed)
    spec_path = str(SPECS / f"{spec}.yaml")
    dim_args = [a for k, v in dims.items() for a in ("--dim", f"{k}={v}")]
    for weights in files:
        for backend in ("numpy", "onnxruntime"):
            out = tmp_path / f"out_{backend}.npz"
            assert main(["run", spec_path, "--weights", str(weights), "--inputs", str(inputs), "-o", str(out),
                         "--backend", backend, *dim_args]) == 0
            got = np.load(out)
            assert sorted(got.files) == sorted(expected)
            for name, value in expected.items():
                _assert_close(got[name], value, f"{spec} {name} ({weights.name}, {backend})")
    model = tmp_path / f"{spec}.onnx"
    assert main(["export", spec_path, "--weights", str(files[0]), "-o", str(model), *dim_args]) == 0
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    for name, value in expected.items():
        _assert_close(got[name], value, f"{spec} {name} (exported)")


def _numpy(*tensors):
    return tuple(t.detach().numpy() for t in tensors)


# -- torch.nn ---------------------------------------------------------------------------------------

def _encoder(d, heads, d_ff, layers):
    layer = nn.TransformerEncoderLayer(d, heads, d_ff, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def test_transformer_encoder_loads_torch_transformer_encoder(tmp_path):
    with torch.device("meta"):
        assert _same_names("transformer_encoder", _encoder(512, 8, 2048, 6)) == 72
    dims = {"d_model": 64, "heads": 4, "d_ff": 128, "layers": 2}
    torch.manual_seed(0)
    module = _redraw_constants(_encoder(64, 4, 128, 2), seed=1)
    assert _same_names("transformer_encoder", module, dims) == 24
    x = np.random.default_rng(2).standard_normal((2, 9, 64)).astype(np.float32)
    with torch.no_grad():
        (y,) = _numpy(module(torch.from_numpy(x)))
    _check_cli(tmp_path, "transformer_encoder", dims, module, {"x": x}, {"y": y})


def _sinusoids(T: int, d: int) -> torch.Tensor:
    """The paper's PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...)."""
    pe = torch.zeros(T, d, dtype=torch.float64)
    for pos in range(T):
        for i in range(d // 2):
            pe[pos, 2 * i] = math.sin(pos / 10000 ** (2 * i / d))
            pe[pos, 2 * i + 1] = math.cos(pos / 10000 ** (2 * i / d))
    return pe.float()


def test_local_attention_loads_torch_transformer_encoder(tmp_path):
    torch.manual_seed(3)
    module = _redraw_constants(_encoder(256, 4, 1024, 2), seed=4)
    assert _same_names("local_attention", module) == 24
    T, window = 11, 3
    x = np.random.default_rng(5).standard_normal((2, T, 256)).astype(np.float32)
    t = torch.arange(T)
    outside = (t[:, None] - t[None, :]).abs() > window           # True: may not attend
    with torch.no_grad():
        (y,) = _numpy(module(torch.from_numpy(x) + _sinusoids(T, 256), mask=outside))
    _check_cli(tmp_path, "local_attention", {}, module, {"x": x}, {"y": y})


class _PaperTransformer(nn.Module):
    """torch's encoder and decoder stacks, composed as the paper does: one embedding shared by source,
    target and the output projection, scaled by sqrt(d), plus sinusoidal positions. The composition
    is the test's; every weight but `embedding` is in torch's own modules."""

    def __init__(self, vocab, d, heads, d_ff, layers):
        super().__init__()
        self.embedding = nn.Parameter(torch.randn(vocab, d) / d ** 0.5)
        self.encoder = _encoder(d, heads, d_ff, layers)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(d, heads, d_ff, batch_first=True), layers)

    def embed(self, tokens):
        d = self.embedding.shape[1]
        return self.embedding[tokens] * d ** 0.5 + _sinusoids(tokens.shape[1], d)

    def forward(self, src, tgt):
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        y = self.decoder(self.embed(tgt), self.encoder(self.embed(src)), tgt_mask=causal)
        logits = y @ self.embedding.T
        return logits, torch.softmax(logits, -1)


def test_transformer_loads_torch_encoder_and_decoder(tmp_path):
    with torch.device("meta"):
        full = _PaperTransformer(32000, 512, 8, 2048, 6)
        reference = nn.Transformer(512, 8, 6, 6, 2048, batch_first=True)
    assert _same_names("transformer", full) == 1 + 72 + 6 * 18
    # torch.nn.Transformer's names are these but for its final norms, which the paper does not have
    assert set(reference.state_dict()) - set(full.state_dict()) == {
        f"{stack}.norm.{k}" for stack in ("encoder", "decoder") for k in ("weight", "bias")}
    dims = {"vocab": 50, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2}
    torch.manual_seed(6)
    module = _redraw_constants(_PaperTransformer(50, 32, 4, 64, 2), seed=7)
    rng = np.random.default_rng(8)
    feed = {"src": rng.integers(0, 50, (2, 7)), "tgt": rng.integers(0, 50, (2, 5))}
    with torch.no_grad():
        logits, probs = _numpy(*module(torch.from_numpy(feed["src"]), torch.from_numpy(feed["tgt"])))
    _check_cli(tmp_path, "transformer", dims, module, feed, {"logits": logits, "probs": probs})


# -- torchvision ------------------------------------------------------------------------------------

def test_vit_b16_loads_torchvision_vision_transformer(tmp_path):
    models = _library("torchvision.models")
    with torch.device("meta"):
        assert _same_names("vit_b16", models.vit_b_16(weights=None)) == 152
    # torchvision's VisionTransformer takes a square image; its class token starts at zero
    dims = {"H": 32, "W": 32, "classes": 10, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2}
    torch.manual_seed(9)
    module = _redraw_constants(models.VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=4,
                                                        hidden_dim=32, mlp_dim=64, num_classes=10), seed=10)
    image = np.random.default_rng(11).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        (logits,) = _numpy(module(torch.from_numpy(image)))
    _check_cli(tmp_path, "vit_b16", dims, module, {"image": image}, {"logits": logits})


# -- Hugging Face transformers ----------------------------------------------------------------------

def test_bert_base_loads_hugging_face_bert_model(tmp_path):
    transformers = _library("transformers")
    with torch.device("meta"):
        assert _same_names("bert_base", transformers.BertModel(transformers.BertConfig())) == 199
    dims = {"vocab": 100, "max_positions": 16, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2}
    config = transformers.BertConfig(vocab_size=100, max_position_embeddings=16, hidden_size=32, num_attention_heads=4,
                                     intermediate_size=64, num_hidden_layers=2)
    torch.manual_seed(12)
    module = _redraw_constants(transformers.BertModel(config), seed=13)
    rng = np.random.default_rng(14)
    feed = {"input_ids": rng.integers(0, 100, (3, 9)), "token_type_ids": rng.integers(0, 2, (3, 9)),
            "attention_mask": np.ones((3, 9), np.int64)}
    feed["attention_mask"][1, 6:] = 0        # padding at the end of two sequences
    feed["attention_mask"][2, 2:] = 0
    with torch.no_grad():
        out = module(**{k: torch.from_numpy(v) for k, v in feed.items()})
    hidden, pooled = _numpy(out.last_hidden_state, out.pooler_output)
    # and the folder Hugging Face's save_pretrained writes (config.json, model.safetensors)
    module.save_pretrained(tmp_path / "bert")
    files = [tmp_path / "bert", *_saved(module, tmp_path)]
    _check_cli(tmp_path, "bert_base", dims, module, feed, {"last_hidden_state": hidden, "pooler_output": pooled}, files)
