"""`graphnet export`'s deployment options: the Triton repository (its config.pbtxt parsed by
Triton's own ModelConfig protobuf, from tritonclient, and checked against the model's signature),
float16, each rewrite switched off, and the progress line kept off a stderr that is no terminal."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import graphnet as gn
from graphnet.cli import main

SPECS = Path(__file__).resolve().parent.parent / "specs"
SMALL_BERT = ["--dim", "vocab=100", "--dim", "max_positions=16", "--dim", "d_model=32", "--dim", "heads=4",
              "--dim", "d_ff=64", "--dim", "layers=2"]


def _config(path: Path):
    from tritonclient.grpc import model_config_pb2   # the test extra installs it
    from google.protobuf import text_format
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _signature(values) -> list[tuple[str, int, list]]:
    return [(v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in values]


@pytest.mark.parametrize("spec, extra, batching", [("resnet18", ["--dim", "H=32", "--dim", "W=32"], True),
                                                    ("bert_base", SMALL_BERT, True),
                                                    ("lstm", [], False)])
def test_triton_repository_config_parses_and_matches_the_model(tmp_path, capsys, spec, extra, batching):
    from tritonclient.grpc import model_config_pb2   # the test extra installs it
    assert main(["export", str(SPECS / f"{spec}.yaml"), "--triton-repo", str(tmp_path), *extra]) == 0
    model_path, config_path = tmp_path / spec / "1" / "model.onnx", tmp_path / spec / "config.pbtxt"
    assert f"wrote {model_path} and {config_path}" in capsys.readouterr().out
    config = _config(config_path)
    model = onnx.load(str(model_path))
    assert config.name == spec and config.backend == "onnxruntime"
    assert (config.max_batch_size > 0) == batching == config.HasField("dynamic_batching")
    to_onnx = {getattr(model_config_pb2, name): getattr(onnx.TensorProto, elem) for name, elem in
               [("TYPE_FP32", "FLOAT"), ("TYPE_FP16", "FLOAT16"), ("TYPE_INT64", "INT64"), ("TYPE_BOOL", "BOOL")]}
    for declared, values in ((config.input, model.graph.input), (config.output, model.graph.output)):
        expected = []
        for name, elem, dims in _signature(values):
            assert not batching or dims[0] == "B"       # Triton batches along the leading B
            dims = dims[1:] if batching else dims
            expected.append((name, elem, [d if isinstance(d, int) else -1 for d in dims]))
        assert [(t.name, to_onnx[t.data_type], list(t.dims)) for t in declared] == expected
    # the model in the repository runs
    net = gn.load(SPECS / f"{spec}.yaml")
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(net.inputs)


def test_triton_repo_and_output_are_one_or_the_other(tmp_path, capsys):
    spec = str(SPECS / "mlp.yaml")
    assert main(["export", spec]) == 1
    assert main(["export", spec, "-o", str(tmp_path / "m.onnx"), "--triton-repo", str(tmp_path)]) == 1
    assert main(["export", spec, "--triton-repo", str(tmp_path), "--max-batch-size", "0"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["<command line>:1:1: error: export needs one of -o FILE.onnx and --triton-repo DIR"] * 2 + \
        ["<command line>:1:1: error: --max-batch-size must be 1 or more, got 0"]
    assert list(tmp_path.iterdir()) == []


def test_float16_export_through_the_cli(tmp_path, capsys):
    spec, path = str(SPECS / "mlp.yaml"), tmp_path / "half.onnx"
    assert main(["export", spec, "-o", str(path), "--dtype", "float16", "--io-dtype", "float16"]) == 0
    model = onnx.load(str(path))
    assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert _signature(model.graph.input)[0][1] == onnx.TensorProto.FLOAT16
    net = gn.load(spec)
    x = net.random_inputs({"B": 2})
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x["x"].astype(np.float16)})[0]
    want = net.run(x)["logits"]
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-2, atol=2e-2 * float(np.abs(want).max()))
    assert main(["export", spec, "-o", str(path), "--io-dtype", "float16"]) == 1
    assert capsys.readouterr().err.endswith("error: --io-dtype float16 needs --dtype float16\n")


@pytest.mark.parametrize("flag, op", [("--no-fold-batch-norm", "BatchNormalization"), ("--no-fold-constants", "Split")])
def test_each_rewrite_has_its_flag(tmp_path, flag, op):
    spec = str(SPECS / ("mobilenet_v1.yaml" if "batch" in flag else "transformer_encoder.yaml"))
    small = ["--dim", "H=32", "--dim", "W=32"] if "batch" in flag else ["--dim", "layers=1"]
    for flags, present in (([], False), ([flag], True)):
        assert main(["export", spec, "-o", str(tmp_path / "m.onnx"), *small, *flags]) == 0
        assert (op in {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}) == present


def test_keep_zero_states_flag(tmp_path):
    spec = str(SPECS / "gru.yaml")
    for flags, most in (([], 4), (["--keep-zero-states"], 6)):
        assert main(["export", spec, "-o", str(tmp_path / "m.onnx"), *flags]) == 0
        model = onnx.load(str(tmp_path / "m.onnx"))
        assert max(len(n.input) for n in model.graph.node if n.op_type == "GRU") == most


def test_no_progress_line_when_stderr_is_no_terminal(tmp_path, capsys, monkeypatch):
    from graphnet.backends import onnx_write
    monkeypatch.setattr(onnx_write, "CHUNK", 1 << 16)     # many chunks: a report after each
    assert main(["export", str(SPECS / "mlp.yaml"), "-o", str(tmp_path / "m.onnx"), "--seed", "0"]) == 0
    err = capsys.readouterr().err
    assert "MiB of weights written" not in err and "\r" not in err
    assert err.splitlines() == ["<command line>:1:1: note: no --weights given: the weights are random, from the "
                                "spec's init schemes with --seed 0"]


def test_progress_line_on_a_terminal(tmp_path, capsys, monkeypatch):
    from graphnet import cli
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    report = cli._progress_line("exporting mlp", above=1 << 20)
    for done in (1 << 21, 1 << 22):
        report(done, 1 << 22)
    assert capsys.readouterr().err == ("\rexporting mlp: 2 of 4 MiB of weights written"
                                       "\rexporting mlp: 4 of 4 MiB of weights written\n")
