"""torch.onnx exports (the TorchScript exporter) of the acceptance list's models, at small sizes:
torchvision's mobilenet_v2, efficientnet_b0 and a ViT (VisionTransformer at 32x32, two layers), a
Hugging Face BertModel from a two-layer BertConfig, and a two-layer torch.nn.LSTM. Each imports,
runs on NumPy like onnxruntime on the original file, and exported again gives onnxruntime the
original's outputs. onnxruntime is the oracle throughout."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import graphnet as gn
from graphnet.cli import main
from graphnet.onnx_import import import_model

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
torchvision = pytest.importorskip("torchvision")


def _lively(model):
    """Weights that make every path count: batch norm statistics away from 0 and 1, and the
    zero-initialized params (ViT's head, biases) random, so that a wrong op shows in the output."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean") or not t.abs().max() > 0:
                t.uniform_(-0.1, 0.1)
    return model.eval()


def _mobilenet_v2():
    return torchvision.models.mobilenet_v2(), {"x": (2, 3, 32, 32)}


def _efficientnet_b0():
    return torchvision.models.efficientnet_b0(), {"x": (2, 3, 32, 32)}


def _vit():
    from torchvision.models.vision_transformer import VisionTransformer
    return VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128,
                             num_classes=10), {"x": (2, 3, 32, 32)}


def _bert_input_ids():
    """BertModel called with input_ids alone: the export reads its token-type buffer with
    GatherElements and makes the mask from the shape."""
    model, _ = _bert()

    class Bert(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = model.bert

        def forward(self, input_ids):
            return self.bert(input_ids=input_ids).last_hidden_state

    return Bert(), {"input_ids": (2, 8)}


def _bert():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=16)
    bert = transformers.BertModel(config)

    class Bert(torch.nn.Module):       # the three inputs a deployed BERT takes, the last hidden state out
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    return Bert(), {"input_ids": (2, 8), "attention_mask": (2, 8), "token_type_ids": (2, 8)}


def _lstm():
    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(8, 16, num_layers=2, batch_first=True)
            self.fc = torch.nn.Linear(16, 4)

        def forward(self, x):
            y, _ = self.lstm(x)
            return self.fc(y[:, -1])

    return Tagger(), {"x": (2, 5, 8)}


MODELS = {"mobilenet_v2": _mobilenet_v2, "efficientnet_b0": _efficientnet_b0, "vit": _vit, "bert": _bert,
          "bert_input_ids": _bert_input_ids, "lstm": _lstm}


# (at most this many lines, blocks the spec must define, lines it must hold): the recovered blocks,
# repeated where the model repeats them, with torch's own module names
READABLE = {
    "mobilenet_v2": (55, ["residual_conv2", "conv_relu6"], ["block: residual_conv2, repeat: 3"]),
    "efficientnet_b0": (75, ["residual_block2", "conv_silu", "squeeze_excitation"],
                        ['{name: features_6, block: residual_block2, repeat: 3, path: "features.6.{index + 1}"}']),
    "vit": (80, ["encoder_layer", "mlp"],
            ["{name: encoder_layer_1, block: encoder_layer, path: encoder.layers.encoder_layer_1",
             "{name: ln_1, block: std.layer_norm", "{name: out_proj, block: std.linear"]),
    "bert": (110, ["layer", "attention", "self"],
             ['{name: layer, block: layer, repeat: 2, path: "bert.encoder.layer.{index}"',
              "{name: query, block: std.linear, args: {out: 32}", "{name: LayerNorm, block: std.layer_norm"]),
}


def _check_readable(path, most: int, blocks: list[str], holds: list[str], tmp_path, capsys):
    text = import_model(path).text
    assert len(text.splitlines()) <= most, text
    for b in blocks:
        assert f"\n  {b}:\n" in text, text
    for line in holds:
        assert line in text, text
    spec = tmp_path / "imported.yaml"
    spec.write_text(text)
    capsys.readouterr()
    assert main(["render", str(spec), "--format", "mermaid"]) == 0
    diagram = capsys.readouterr().out
    assert blocks[0] in diagram         # the diagram shows the recovered blocks (the first one called at the top)


def _feeds(shapes: dict, rng) -> dict[str, np.ndarray]:
    feeds = {}
    for name, shape in shapes.items():
        if name == "input_ids":
            feeds[name] = rng.integers(0, 100, shape).astype(np.int64)
        elif name == "attention_mask":
            mask = np.ones(shape, np.int64)
            mask[0, -3:] = 0             # a padded sequence, so the mask matters
            feeds[name] = mask
        elif name == "token_type_ids":
            feeds[name] = (np.arange(shape[1]) >= shape[1] // 2).astype(np.int64)[None].repeat(shape[0], 0)
        else:
            feeds[name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _close(got, want):
    assert got.shape == want.shape
    scale = max(float(np.abs(want).max()), 1.0)
    assert float(np.abs(got - want).max()) <= 1e-4 * scale


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_export_imports_runs_and_round_trips(tmp_path, capsys, name):
    model, shapes = MODELS[name]()
    model = _lively(model)
    feeds = _feeds(shapes, np.random.default_rng(0))
    path = tmp_path / f"{name}.onnx"
    names = list(shapes)
    torch.onnx.export(model, tuple(torch.from_numpy(feeds[k]) for k in names), str(path), dynamo=False,
                      input_names=names, output_names=["y"],
                      dynamic_axes={**{k: {0: "B"} for k in names}, "y": {0: "B"}})
    want = ort.InferenceSession(str(path)).run(None, feeds)[0]
    assert np.abs(want).max() > 1e-2                  # a model whose output says something
    net, weights = gn.import_onnx(path)
    _close(net.run(feeds, weights=weights)["y"], want)
    if name in READABLE:
        _check_readable(path, *READABLE[name], tmp_path, capsys)
    again = tmp_path / "again.onnx"
    net.export_onnx(again, weights)
    _close(ort.InferenceSession(str(again)).run(None, feeds)[0], want)
    # another batch size: the batch stayed a free dim
    more = _feeds({k: (3,) + tuple(s[1:]) for k, s in shapes.items()}, np.random.default_rng(1))
    _close(net.run(more, weights=weights)["y"], ort.InferenceSession(str(path)).run(None, more)[0])
