"""`graphnet weights SPEC FILE`, the report, through the command line; --weights-prefix on run and
export; writers that pick the format by the name's extension."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from safetensors.numpy import load_file, save_file


def test_a_file_that_fits_reports_ok_and_exit_0(cli, tiny_spec, tiny_weights, tmp_path):
    save_file(tiny_weights(dtype=np.float16), tmp_path / "w.safetensors")
    code, out, err = cli("weights", tiny_spec, tmp_path / "w.safetensors")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"{tmp_path / 'w.safetensors'} against tiny (8 params)"
    assert [line.split()[:2] for line in lines[1:9]] == [
        ["matched", "8"], ["missing", "0"], ["unexpected", "0"], ["mis-shaped", "0"], ["mis-typed", "0"],
        ["non-finite", "0"], ["ignored", "0"], ["cast", "8"]]
    assert "float16 -> float32 (8), changing no value" in out
    assert lines[-1] == "ok: every param has its weight"


def test_another_networks_file_reports_every_mismatch_and_exit_1(cli, tiny_spec, tmp_path):
    other = {f"layer{i}.conv.weight": np.zeros((2, 2), np.float32) for i in range(12)}
    other["fc1.weight"] = np.zeros((8, 5), np.float32)
    other["fc2.biass"] = np.zeros(3, np.float32)
    save_file(other, tmp_path / "w.safetensors")
    code, out, _ = cli("weights", tiny_spec, tmp_path / "w.safetensors")
    assert code == 1
    assert "mis-shaped (1):\n  fc1.weight  has shape [8, 5] but the spec declares [8, 4]" in out
    assert ("fc2.bias float32[3] declared at <std>/layers.yaml:16:13; did you mean 'fc2.biass'?"
            in [" ".join(line.split()) for line in out.splitlines()])
    assert "unexpected (13, the first 10):" in out
    assert out.count("  layer") == 9 and "  fc2.biass " in out      # the file's order: sorted
    assert out.rstrip().endswith("not ok: 21 mismatches")
    code, out, _ = cli("weights", tiny_spec, tmp_path / "w.safetensors", "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert report["counts"] == {"params": 8, "matched": 0, "missing": 7, "unexpected": 13, "mis-shaped": 1,
                                "mis-typed": 0, "non-finite": 0, "ignored": 0, "outside_prefix": 0, "cast": 0}
    assert len(report["unexpected"]) == 13
    assert {"name": "fc2.bias", "dtype": "float32", "shape": [3], "declared_at": "<std>/layers.yaml:16:13",
            "did_you_mean": "fc2.biass"} in report["missing"]


def test_a_prefix_in_run_export_and_the_report(cli, tiny_spec, tiny_weights, tmp_path):
    w = tiny_weights()
    save_file({**{f"model.{k}": v for k, v in w.items()}, "head.weight": np.zeros((2, 3), np.float32)},
              tmp_path / "w.safetensors")
    code, out, _ = cli("weights", tiny_spec, tmp_path / "w.safetensors")
    assert code == 1 and "hint: --weights-prefix model. would match 8 of the 8 missing" in out
    code, out, _ = cli("weights", tiny_spec, tmp_path / "w.safetensors", "--weights-prefix", "model.")
    assert code == 0 and f"against tiny (8 params, --weights-prefix model.)" in out
    assert "outside prefix 1 left out" in " ".join(out.split())
    np.savez(tmp_path / "x.npz", x=np.ones((2, 4), np.float32))
    code, _, err = cli("run", tiny_spec, "--weights", tmp_path / "w.safetensors", "--weights-prefix", "model",
                       "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.safetensors")
    assert code == 0, err
    y = load_file(tmp_path / "y.safetensors")["y"]
    code, _, err = cli("export", tiny_spec, "--weights", tmp_path / "w.safetensors", "--weights-prefix", "model.",
                       "-o", tmp_path / "m.onnx")
    assert code == 0, err
    session = ort.InferenceSession(onnx.load(tmp_path / "m.onnx").SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": np.ones((2, 4), np.float32)})[0], y, rtol=1e-5, atol=1e-6)


def test_init_weights_writes_the_format_its_extension_names(cli, tiny_spec, tmp_path):
    assert cli("init-weights", tiny_spec, "-o", tmp_path / "w.safetensors", "--seed", "3")[0] == 0
    assert cli("init-weights", tiny_spec, "-o", tmp_path / "w.npz", "--seed", "3")[0] == 0
    a, b = load_file(tmp_path / "w.safetensors"), np.load(tmp_path / "w.npz")
    assert sorted(a) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("command", ["init-weights", "run"])
@pytest.mark.parametrize("name", ["w.pt", "w", "w.npy", "w.safetensor"])
def test_another_extension_is_an_error_before_any_work(command, name, cli, tiny_spec, tmp_path):
    target = tmp_path / name
    code, out, err = cli(command, tiny_spec, "-o", target)
    assert code == 1 and out == ""
    suffix = target.suffix
    assert err.strip() == (f"<command line>:1:1: error: '{target}': weights are written as .npz or .safetensors, "
                           f"chosen by the name's extension, and {repr(suffix) if suffix else 'no extension'} is neither")
    assert list(tmp_path.iterdir()) == [tiny_spec]
