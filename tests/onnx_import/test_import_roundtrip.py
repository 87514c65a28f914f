"""Round trips through the ONNX front end, onnxruntime as the oracle: an imported model run on
NumPy equals the original in onnxruntime; imported then exported, onnxruntime gives the original's
outputs again; graphnet's own exports of the zoo import back to the same params and outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx_models import MODELS

import graphnet as gn
from graphnet.backends.onnx_export import ExportOptions
from graphnet.cli import main
from graphnet.onnx_import import import_model

SPECS = Path(__file__).resolve().parents[2] / "specs"


def _feeds(model: onnx.ModelProto, size: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    feeds = {}
    for vi in model.graph.input:
        if vi.name in {t.name for t in model.graph.initializer}:
            continue
        shape = [d.dim_value if d.HasField("dim_value") else size for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _ort(model: onnx.ModelProto, feeds) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _close(got, want, tol=1e-4):
    scale = max(float(np.abs(want).max()), 1.0)
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= tol * scale


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("flat", [True, False], ids=["flat", "blocks"])
def test_imported_model_runs_like_onnxruntime(name, flat):
    model = MODELS[name]()
    feeds = _feeds(model)
    want = _ort(model, feeds)
    net, weights = gn.import_onnx(model, flat=flat)
    got = net.run(feeds, weights=weights)
    for g, w in zip(got.values(), want):
        _close(g, w)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_import_then_export_gives_the_original_outputs(tmp_path, name):
    model = MODELS[name]()
    feeds = _feeds(model)
    net, weights = gn.import_onnx(model)
    out = tmp_path / "again.onnx"
    net.export_onnx(out, weights)
    again = onnx.load(out)
    got = _ort(again, feeds)
    for g, w in zip(got, _ort(model, feeds)):
        _close(g, w)


# (spec, dims, whether every param comes back under its name). The exporter stores a weight read
# through a transpose transposed, named after the transpose node; where that node's path is not
# the param's (transformer_encoder's ffn, called with `path: ""`), the name cannot be recovered from
# the file, and where it fuses scanned cells into ONNX LSTM (lstm.yaml) the weights are restacked.
ZOO = [("mlp", {}, True), ("lenet5", {}, True), ("resnet18", {"H": 32, "W": 32}, True),
       ("transformer_encoder", {"T": 5}, False), ("lstm", {"T": 4}, False)]


@pytest.mark.parametrize("spec, dims, same_names", ZOO, ids=[z[0] for z in ZOO])
def test_graphnets_own_export_imports_back(tmp_path, spec, dims, same_names):
    net = gn.load(SPECS / f"{spec}.yaml", dims=dims)
    weights = net.init_weights(seed=3)
    path = tmp_path / f"{spec}.onnx"
    # without the deployment rewrites, which fold batch norm's params into the conv's for good
    net.export_onnx(path, weights, options=ExportOptions(fold_batch_norm=False, drop_zero_states=False))
    back, back_weights = gn.import_onnx(path)
    if same_names:
        assert set(back_weights) == set(weights)
        for k, w in weights.items():
            np.testing.assert_array_equal(back_weights[k], w)
    assert back.graph.param_count() == net.graph.param_count()
    rng = np.random.default_rng(0)
    feeds = {}
    for k, t in net.graph.inputs.items():
        shape = [d.value if d.is_const() else 2 for d in t.shape]
        feeds[k] = (rng.integers(0, 5, shape) if t.dtype.startswith("int") else rng.standard_normal(shape)).astype(t.dtype)
    want = net.run(feeds, weights=weights)
    got = back.run(feeds, weights=back_weights)
    assert list(got) == list(want)
    for k in want:
        _close(got[k], want[k])


def test_the_command_writes_a_spec_that_validates(tmp_path, capsys):
    path = tmp_path / "cnn.onnx"
    onnx.save(MODELS["opset11_cnn"](), path)
    spec, weights = tmp_path / "cnn.yaml", tmp_path / "cnn.safetensors"
    assert main(["import", str(path), "-o", str(spec), "--weights-out", str(weights)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["validate", str(spec)]) == 0
    feeds = _feeds(MODELS["opset11_cnn"]())
    out = gn.load(spec).run(feeds, weights=gn.load_weights(weights))
    _close(next(iter(out.values())), _ort(onnx.load(path), feeds)[0])
