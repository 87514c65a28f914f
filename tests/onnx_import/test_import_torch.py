"""PyTorch's own exports (torch.onnx, the legacy TorchScript exporter: the dynamo one needs
onnxscript, which is not installed) import into the spec a person would write: torchvision's
resnet18 in under 60 lines with its four stages one repeated `basic_block`, running like
onnxruntime, and working with validate, summary and render."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import graphnet as gn
from graphnet.cli import main

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory):
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    with torch.no_grad():      # trained-looking statistics, so no two initializers are equal
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("torch") / "resnet18.onnx"
    torch.onnx.export(model, torch.randn(1, 3, 64, 64), str(path), dynamo=False, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "B"}, "logits": {0: "B"}})
    return path, model


def test_resnet18_imports_as_stages_of_one_block(resnet18, tmp_path, capsys):
    path, model = resnet18
    spec = tmp_path / "resnet18.yaml"
    assert main(["import", str(path), "-o", str(spec), "--weights-out", str(tmp_path / "w.safetensors")]) == 0
    text = spec.read_text()
    assert len(text.splitlines()) <= 60
    assert "  basic_block:" in text
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        assert f"{{name: {stage}, block: basic_block, repeat: 2" in text
    net = gn.load(spec)
    weights = gn.load_weights(tmp_path / "w.safetensors")
    # torch folds each batch norm into its conv and names the result 'onnx::Conv_193'; the import
    # names it by the conv's module instead, the state_dict's name for the conv
    state = {k for k in model.state_dict() if k.endswith(".weight") and "bn" not in k and "downsample.1" not in k}
    assert state <= set(weights)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"image": x})[0]
    got = net.run({"image": x}, weights=weights)["logits"]
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    capsys.readouterr()
    assert main(["render", str(spec), "--format", "mermaid"]) == 0
    assert "basic_block" in capsys.readouterr().out
    assert "layer4.1.conv2.conv" in net.summary()


def test_resnet18_flat_import_round_trips_through_export(resnet18, tmp_path):
    path, _ = resnet18
    net, weights = gn.import_onnx(path, flat=True)
    out = tmp_path / "again.onnx"
    net.export_onnx(out, weights)
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"image": x})[0]
    got = ort.InferenceSession(str(out)).run(None, {"image": x})[0]
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    assert len(onnx.load(out).graph.node) <= len(onnx.load(path).graph.node)

