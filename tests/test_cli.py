"""The command line: reports, outputs, and the same seed giving the same weights everywhere."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from graphnet.cli import main

SPECS = Path(__file__).resolve().parent.parent / "specs"
MLP = str(SPECS / "mlp.yaml")


def test_validate_prints_the_summary_table(capsys):
    assert main(["validate", str(SPECS / "resnet18.yaml")]) == 0
    out = capsys.readouterr().out
    assert "layer4.1.conv2.conv" in out and "[B, 512, 7, 7]" in out
    assert "params: 11,699,112 (11,689,512 trainable, 9,600 non-trainable)" in out


def test_validate_json_report(capsys):
    assert main(["validate", MLP, "--json", "--dim", "B=4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"name", "params", "macs", "inputs", "outputs", "nodes"}
    assert report["inputs"] == {"x": [4, 784]} and report["outputs"] == {"logits": [4, 10]}
    assert report["macs"] == 4 * (784 * 1024 + 1024 * 1024 + 1024 * 10)
    # a param is counted on the first node that reads it: the linear's weight transpose
    assert report["nodes"][0] == {"path": "fc1.weight_t", "op": "transpose", "shape": "[784, 1024]", "level": 0,
                                  "params": 784 * 1024, "macs": 0, "bytes": 0}
    assert report["nodes"][1] == {"path": "fc1.matmul", "op": "matmul", "shape": "[4, 1024]", "level": 0,
                                  "params": 0, "macs": 4 * 784 * 1024, "bytes": 4 * 4 * 1024}


def test_validate_json_depth_collapses_blocks(capsys):
    assert main(["validate", MLP, "--json", "--depth", "1"]) == 0
    nodes = json.loads(capsys.readouterr().out)["nodes"]
    assert [(n["path"], n["op"]) for n in nodes] == [("fc1", "std.linear"), ("relu1", "relu"), ("fc2", "std.linear"),
                                                     ("relu2", "relu"), ("fc3", "std.linear")]
    assert nodes[0]["params"] == 784 * 1024 + 1024 and nodes[0]["macs"] == "802816*B"


def test_validate_json_keeps_free_dims_as_formulas(capsys):
    assert main(["validate", str(SPECS / "transformer_encoder.yaml"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["inputs"] == {"x": ["B", "T", 512]}
    assert report["macs"] == "18874368*B*T + 6144*B*T^2"


def test_validate_many_specs_reports_all(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("graphnet: 1\nname: bad\ninputs: {x: [2]}\nnodes: [{op: rleu}]\noutputs: {y: '0'}\n")
    assert main(["validate", MLP, str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{MLP}: ok" in captured.out
    assert captured.err.startswith(f"{bad}:4:14: error: unknown op 'rleu'; did you mean 'relu'?")


def test_same_seed_same_weights_in_every_command(tmp_path, capsys):
    weights, onnx_path, out = tmp_path / "w.npz", tmp_path / "m.onnx", tmp_path / "out.npz"
    inputs = tmp_path / "in.npz"
    x = np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32)
    np.savez(inputs, x=x)
    assert main(["init-weights", MLP, "-o", str(weights), "--seed", "7"]) == 0
    assert main(["export", MLP, "-o", str(onnx_path), "--seed", "7"]) == 0
    assert main(["run", MLP, "--inputs", str(inputs), "--seed", "7", "-o", str(out)]) == 0
    w = np.load(weights)
    model = onnx.load(str(onnx_path))
    stored = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    for name in w.files:   # as it is, or stored transposed where the graph reads it transposed
        assert any(np.array_equal(w[name], a) or np.array_equal(w[name].T, a) for a in stored), name
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(np.load(out)["logits"], session.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)
    assert main(["run", MLP, "--inputs", str(inputs), "--weights", str(weights), "--backend", "onnxruntime"]) == 0


def test_cuda_without_provider_is_a_clear_error(capsys):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        return  # this machine can run it; the message is for machines that cannot
    assert main(["run", MLP, "--backend", "onnxruntime", "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert "onnxruntime has no CUDA provider here; install onnxruntime-gpu" in err


def test_failed_export_leaves_the_old_file(tmp_path, capsys):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    bad = tmp_path / "w.npz"
    np.savez(bad, nothing=np.zeros(1))
    assert main(["export", MLP, "-o", str(target), "--weights", str(bad)]) == 1
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_command_line_exits_1(capsys):
    assert _exit_code(["validate"]) == 1
    assert main(["validate", MLP, "--dim", "B"]) == 1
    assert "--dim takes NAME=VALUE, got 'B'" in capsys.readouterr().err


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_a_closed_pipe_ends_quietly():
    import subprocess
    import sys
    script = ("import sys; from graphnet.cli import main; "
              f"sys.exit(main(['validate', {str(SPECS / 'vgg16.yaml')!r}, {MLP!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()                       # like `| head -1`
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "error" not in err


def test_validate_a_folder_reports_every_spec(tmp_path, capsys):
    (tmp_path / "good.yaml").write_text((SPECS / "mlp.yaml").read_text())
    (tmp_path / "bad.yaml").write_text("graphnet: 1\nname: bad\ninputs: {x: [2]}\nnodes: [{op: rleu}]\noutputs: {y: '0'}\n")
    (tmp_path / "notes.txt").write_text("not a spec")
    assert main(["validate", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert f"{tmp_path / 'good.yaml'}: ok" in captured.out
    assert captured.err.startswith(f"{tmp_path / 'bad.yaml'}:4:14: error: unknown op 'rleu'")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["validate", str(empty)]) == 1
    assert f"{empty}:1:1: error: no .yaml files in this folder" in capsys.readouterr().err


def test_the_whole_zoo_validates_as_a_folder(capsys):
    assert main(["validate", str(SPECS), "--depth", "1"]) == 0
    assert capsys.readouterr().out.count(": ok") == len(list(SPECS.glob("*.yaml")))


def test_a_run_over_the_memory_limit_is_refused_before_allocating(capsys, tmp_path):
    # B = 10^6 images would need about 11 TiB; refused from types alone, in well under the time
    # making the random inputs would take
    code = main(["run", str(SPECS / "resnet18.yaml"), "--dim", "B=1000000"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"{SPECS / 'resnet18.yaml'}:14:10: error: running 'resnet18' on image[1000000, 3, 224, 224] "
                          "needs about ")
    assert "TiB beyond its weights, over the memory limit of" in err
    # a limit of one's own, in either back end; 'none' lifts it
    for backend in ("numpy", "onnxruntime"):
        assert main(["run", str(SPECS / "mlp.yaml"), "--dim", "B=64", "--max-memory", "100K", "--backend", backend]) == 1
        assert "over the memory limit of 100.0 KiB" in capsys.readouterr().err
    assert main(["run", str(SPECS / "mlp.yaml"), "--dim", "B=64", "--max-memory", "none"]) == 0
    assert _exit_code(["run", str(SPECS / "mlp.yaml"), "--max-memory", "lots"]) == 1
    assert "'lots' is not a size like 8G, 512M or none" in capsys.readouterr().err


def test_no_optimize_gives_the_same_outputs_and_profile_names_the_ops(capsys, tmp_path):
    spec = str(SPECS / "resnet18.yaml")
    dims = ["--dim", "B=1", "--dim", "H=32", "--dim", "W=32"]
    assert main(["run", spec, *dims, "-o", str(tmp_path / "a.npz"), "--profile"]) == 0
    out = capsys.readouterr().out
    # batch_norm is folded into the convolutions by default, so it takes no time of its own
    assert "profile:" in out and "\n  conv " in out and "batch_norm" not in out
    assert main(["run", spec, *dims, "-o", str(tmp_path / "b.npz"), "--no-optimize", "--profile"]) == 0
    assert "\n  batch_norm " in capsys.readouterr().out
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    np.testing.assert_allclose(a["logits"], b["logits"], rtol=1e-5, atol=1e-6)


def test_validate_imports_neither_onnx_nor_onnxruntime():
    import subprocess
    import sys
    code = ("import sys; from graphnet.cli import main; main(['validate', sys.argv[1]]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code, str(SPECS / "resnet50.yaml")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[]")
