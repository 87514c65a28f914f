"""`-` on the command line: a spec from standard input (named `<stdin>` in its errors), and every
output written to standard output whole, or not at all, with the command's messages on standard
error. The outputs are checked by what reads them: onnxruntime, NumPy's .npz reader."""

import io
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import graphnet as gn
from graphnet.cli import main
from graphnet.source import MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parent.parent.parent
MLP = ROOT / "specs" / "mlp.yaml"


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_a_spec_from_standard_input_validates_as_the_file_does(monkeypatch, capsys):
    assert main(["validate", str(MLP)]) == 0
    from_file = capsys.readouterr().out
    _stdin(monkeypatch, MLP.read_bytes())
    assert main(["validate", "-"]) == 0
    assert capsys.readouterr().out == from_file.replace(f"{MLP}: ok", "<stdin>: ok")


def test_a_spec_from_standard_input_is_located_as_stdin(monkeypatch, capsys):
    _stdin(monkeypatch, b"graphnet: 1\nname: bad\ninputs: {x: [2]}\nnodes: [{op: rleu}]\noutputs: {y: '0'}\n")
    assert main(["validate", "-"]) == 1
    assert capsys.readouterr().err.startswith("<stdin>:4:14: error: unknown op 'rleu'; did you mean 'relu'?")
    _stdin(monkeypatch, b"graphnet: 1\nname: \xff\n")
    assert main(["validate", "-"]) == 1
    assert capsys.readouterr().err == "<stdin>:2:7: error: file is not valid UTF-8\n"


def test_standard_input_is_read_no_further_than_a_spec_can_be(monkeypatch, capsys):
    _stdin(monkeypatch, b"#" * (MAX_FILE_BYTES + 10))
    assert main(["validate", "-"]) == 1
    assert capsys.readouterr().err.startswith(f"<stdin>:1:1: error: more than {MAX_FILE_BYTES} bytes")
    assert sys.stdin.buffer.read() == b"#" * 9        # the rest is left unread


def test_standard_input_is_given_once(monkeypatch, capsys):
    _stdin(monkeypatch, MLP.read_bytes())
    assert main(["validate", "-", "-"]) == 1
    assert capsys.readouterr().err == "<command line>:1:1: error: '-' (standard input) can be given once\n"


def test_export_to_standard_output_is_the_model(capsysbinary, tmp_path):
    assert main(["export", str(MLP), "-o", "-", "--seed", "3"]) == 0
    captured = capsysbinary.readouterr()
    assert captured.err.decode().splitlines()[0] == "wrote standard output (opset 17, 1,863,690 params)"
    x = np.random.default_rng(0).standard_normal((2, 784)).astype(np.float32)
    got = ort.InferenceSession(captured.out, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    net = gn.load(MLP)
    np.testing.assert_allclose(got, net.run({"x": x}, net.init_weights(3))["logits"], rtol=1e-4, atol=1e-5)
    assert list(Path.cwd().glob("-*")) == []          # no file named '-'


def test_run_and_init_weights_to_standard_output_are_npz(capsysbinary):
    assert main(["run", str(MLP), "--seed", "2", "-o", "-"]) == 0
    captured = capsysbinary.readouterr()
    err = captured.err.decode()
    assert err.startswith("logits: float32[1, 10] mean") and "wrote standard output\n" in err
    net = gn.load(MLP)
    expected = net.run(net.random_inputs(seed=2), net.init_weights(2))["logits"]
    np.testing.assert_array_equal(np.load(io.BytesIO(captured.out))["logits"], expected)
    assert main(["init-weights", str(MLP), "-o", "-", "--seed", "4"]) == 0
    with np.load(io.BytesIO(capsysbinary.readouterr().out)) as w:
        assert sorted(w.files) == sorted(net.init_weights(4))
        np.testing.assert_array_equal(w["fc2.weight"], net.init_weights(4)["fc2.weight"])


def test_render_to_standard_output_is_what_render_prints(capsysbinary):
    assert main(["render", str(MLP)]) == 0
    plain = capsysbinary.readouterr().out
    assert main(["render", str(MLP), "-o", "-", "--format", "dot"]) == 0
    assert capsysbinary.readouterr().out.startswith(b'digraph "mlp" {')
    assert main(["render", str(MLP), "-o", "-"]) == 0
    assert capsysbinary.readouterr().out == plain


@pytest.mark.parametrize("argv", [["export", str(MLP), "-o", "-", "--external-data"],
                                  ["export", str(MLP), "-o", "-", "--weights", str(MLP)]])
def test_a_failing_command_writes_nothing_to_standard_output(capsysbinary, argv):
    assert main(argv) == 1
    captured = capsysbinary.readouterr()
    assert captured.out == b"" and b": error: " in captured.err


def test_run_reads_its_inputs_from_standard_input(monkeypatch, capsys, tmp_path):
    x = np.random.default_rng(1).standard_normal((3, 784)).astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, x=x)
    _stdin(monkeypatch, buffer.getvalue())
    assert main(["run", str(MLP), "--inputs", "-", "-o", str(tmp_path / "y.npz")]) == 0
    net = gn.load(MLP)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npz")["logits"], net.run({"x": x}, net.init_weights(0))["logits"])
    _stdin(monkeypatch, b"not an archive")
    capsys.readouterr()
    assert main(["run", str(MLP), "--inputs", "-"]) == 1
    assert capsys.readouterr().err.startswith("<stdin>:1:1: error: not a .npz file")
    assert main(["run", "-", "--inputs", "-"]) == 1
    assert capsys.readouterr().err == "<command line>:1:1: error: '-' (standard input) can be given once\n"
