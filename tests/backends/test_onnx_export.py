"""ONNX lowering details: opset range, and free dims handled without needless shape arithmetic."""

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
import pytest

import graphnet as gn

SPECS = Path(__file__).resolve().parents[2] / "specs"


def test_reshape_targets_need_no_shape_subgraph():
    # [B, T, 512] -> [B, T, 8, 64] and back: 0 copies B and T in place, so no Shape ops are needed
    model = gn.load(SPECS / "transformer_encoder.yaml").to_onnx()
    ops = {n.op_type for n in model.graph.node}
    assert "Shape" not in ops and "LayerNormalization" in ops


@pytest.mark.parametrize("opset", [17, 18, 20, 21])
def test_supported_opsets_pass_the_full_checker(opset):
    model = gn.load(SPECS / "transformer_encoder.yaml").to_onnx(opset=opset)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == opset


def test_unsupported_opset_is_refused():
    with pytest.raises(ValueError, match="opset 12 is not supported"):
        gn.load(SPECS / "mlp.yaml").to_onnx(opset=12)


def test_output_names_are_the_spec_outputs():
    model = gn.load(SPECS / "resnet18.yaml").to_onnx()
    assert [o.name for o in model.graph.output] == ["logits"]
    assert [i.name for i in model.graph.input] == ["image"]
    assert "conv1.weight" in {t.name for t in model.graph.initializer}


def _op_counts(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


@pytest.mark.parametrize("name, expected", [
    ("mlp", {"Gemm": 3, "Relu": 2}),
    # per layer: q, k, v and out projections, two feed-forward matmuls; the Transposes left move heads;
    # W_q, W_k, W_v and their biases, split from torch's packed in_proj weight and bias, are stored split
    ("transformer_encoder", {"MatMul": 48, "Add": 48, "Reshape": 24, "Transpose": 24, "Mul": 6, "Softmax": 6,
                             "LayerNormalization": 12, "Relu": 6}),
])
def test_export_is_what_one_would_write_by_hand(name, expected):
    net = gn.load(SPECS / f"{name}.yaml")
    weights = net.init_weights(0)
    model = net.to_onnx(weights)
    assert _op_counts(model) == expected
    # each weight stored once, transposed where the graph transposes it: no second copy
    stored = sum(numpy_helper.to_array(t).size for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    assert stored - net.graph.param_count() < 100          # plus a few scalar constants


@pytest.mark.parametrize("how", ["asked", "over the limit"])
def test_external_data_beside_the_model(tmp_path, monkeypatch, how):
    import onnxruntime as ort

    from graphnet.backends import onnx_export
    net = gn.load(SPECS / "mlp.yaml")
    weights = net.init_weights(3)
    path = tmp_path / "mlp.onnx"
    if how == "asked":
        net.export_onnx(path, weights, external_data=True)
    else:   # the 2 GB limit, scaled down to this model's 7 MB
        monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_ABOVE", 1 << 20)
        net.export_onnx(path, weights)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.onnx", "mlp.onnx.data"]   # nothing else left
    assert path.stat().st_size < 100_000 < (tmp_path / "mlp.onnx.data").stat().st_size
    x = net.random_inputs({"B": 3})
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, x)[0]
    np.testing.assert_allclose(got, net.run(x, weights)["logits"], rtol=1e-5, atol=1e-6)


def test_a_failed_external_data_export_leaves_no_file(tmp_path, monkeypatch):
    from graphnet.backends import onnx_export

    def broken(*args, **kwargs):
        raise onnx.checker.ValidationError("checker says no")
    monkeypatch.setattr(onnx_export.onnx.checker, "check_model", broken)
    with pytest.raises(onnx.checker.ValidationError):
        gn.load(SPECS / "mlp.yaml").export_onnx(tmp_path / "m.onnx", external_data=True)
    assert list(tmp_path.iterdir()) == []


def test_output_names_that_clash_with_inputs_or_params(tmp_path, capsys):
    import onnxruntime as ort

    from graphnet.cli import main
    spec = tmp_path / "clash.yaml"
    spec.write_text("graphnet: 1\nname: t\ndims: {B: ~}\ninputs:\n  x: [B, 4]\nparams:\n  w: {shape: [4], init: ones}\n"
                    "nodes:\n  - {name: r, op: relu, inputs: [x]}\n  - {name: m, op: mul, inputs: [r, w]}\n"
                    "outputs: {w: m, r: r}\n")
    # an output named like a param: the param's initializer is renamed, the outputs keep their names
    net = gn.load(spec)
    net.export_onnx(tmp_path / "clash.onnx")
    session = ort.InferenceSession(str(tmp_path / "clash.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["w", "r"]
    x = net.random_inputs({"B": 2})
    for got, (key, value) in zip(session.run(None, x), net.run(x).items()):
        np.testing.assert_allclose(got, value, rtol=1e-6)
    # an output named like an input cannot be: a located error, not the checker's traceback
    spec.write_text("graphnet: 1\nname: t\ndims: {B: ~}\ninputs:\n  x: [B, 4]\n"
                    "nodes:\n  - {name: r, op: relu, inputs: [x]}\noutputs: {x: r}\n")
    assert main(["export", str(spec), "-o", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert err == f"{spec}:8:14: error: output 'x' has the name of an input; ONNX needs every tensor named once\n"
    assert not (tmp_path / "x.onnx").exists()
