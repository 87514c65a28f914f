"""The command line's --grad: validate, render and export the gradient graph (the outputs and the
gradients 'grad.NAME' from 'cotangent.OUTPUT' inputs), and a located error where a network needs
the gradient of an op that has none."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import graphnet as gn
from graphnet.cli import main

SPECS = Path(__file__).resolve().parent.parent / "specs"
MLP = str(SPECS / "mlp.yaml")
SMALL = ["--dim", "D_in=6", "--dim", "hidden=5", "--dim", "classes=3"]


def test_validate_grad_shows_the_gradient_graph(capsys):
    assert main(["validate", MLP, "--grad"]) == 0
    out = capsys.readouterr().out
    assert "cotangent.logits: float32[B, 10]" in out and "grad.x: float32[B, 784]" in out
    assert "grad.fc1.weight: float32[1024, 784]" in out and "fc1.matmul#grad" in out


def test_render_grad_draws_each_call_and_its_backward(capsys):
    assert main(["render", MLP, "--grad"]) == 0
    out = capsys.readouterr().out
    assert '[["fc1<br>std.linear 1024"]]' in out and '[["∂fc1<br>std.linear 784"]]' in out
    assert 'in_cotangent_logits -->|"B×10"| n__fc3' in out


def test_export_grad_runs_in_onnxruntime_as_network_vjp(tmp_path, capsys):
    weights = tmp_path / "w.npz"
    assert main(["init-weights", MLP, *SMALL, "-o", str(weights), "--seed", "3"]) == 0
    model = tmp_path / "grad.onnx"
    assert main(["export", MLP, *SMALL, "--grad", "--weights", str(weights), "-o", str(model)]) == 0
    onnx.checker.check_model(str(model), full_check=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    cot = rng.standard_normal((4, 3)).astype(np.float32)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x, "cotangent.logits": cot})))
    net = gn.load(MLP, {"D_in": 6, "hidden": 5, "classes": 3})
    outputs, weight_grads, input_grads = net.vjp({"x": x}, dict(np.load(weights)), {"logits": cot})
    np.testing.assert_allclose(got["logits"], outputs["logits"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["grad.x"], input_grads["x"], rtol=1e-5, atol=1e-6)
    for name, g in weight_grads.items():
        np.testing.assert_allclose(got["grad." + name], g, rtol=1e-5, atol=1e-6)


def test_an_op_without_a_vjp_is_a_located_error(tmp_path, capsys):
    spec = tmp_path / "pool.yaml"
    spec.write_text("graphnet: 1\nname: pool\ninputs:\n  x: [2, 3, 8, 8]\nnodes:\n"
                    "  - {name: pool, op: einsum, inputs: [x], attrs: {equation: 'bcii->bci'}}\noutputs: {y: pool}\n")
    assert main(["validate", str(spec)]) == 0
    capsys.readouterr()
    assert main(["validate", str(spec), "--grad"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:6:5: error: node 'pool' (einsum): has no gradient: einsum 'bcii->bci': "
                          "term 'bcii' repeats a letter (a diagonal)")
    assert "Traceback" not in err


def test_a_conv_over_free_spatial_dims_says_which_dims_to_give(tmp_path, capsys):
    spec = tmp_path / "conv.yaml"
    spec.write_text("graphnet: 1\nname: conv\nuse: [std]\ndims: {B: ~, H: ~, W: ~}\ninputs:\n  x: [B, 3, H, W]\nnodes:\n"
                    "  - {name: c, block: std.conv2d, args: {out: 4, kernel: 3, padding: 1}}\noutputs: {y: c}\n")
    assert main(["validate", str(spec), "--grad"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:8:5: error: node 'c.conv' (conv): has no gradient:"), err
    assert "free spatial dims (H, W)" in err and "--dim H=N --dim W=N" in err, err
    # what the message says to do is enough: B may stay free
    assert main(["validate", str(spec), "--grad", "--dim", "H=8", "--dim", "W=6"]) == 0
    assert "grad.c.weight: float32[4, 3, 3, 3]" in capsys.readouterr().out
