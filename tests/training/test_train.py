"""graphnet train end to end: the digits reach their accuracies from the documented commands and keep
them in onnxruntime; a resumed run ends bit-identical to one never stopped; an interrupted checkpoint
write leaves the last one intact; a training step on onnxruntime equals the NumPy one; a NaN loss
stops at the first non-finite node; the memory guard covers a step; plot draws the log."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import sklearn  # noqa: F401  (the digits data; the test extra installs it)

import graphnet as gn
from graphnet.cli import main
from graphnet.errors import SpecError
from graphnet.training.config import load_config
from graphnet.training.data import load_data
from graphnet.training.loop import Trainer
from graphnet.weights import load_weights, save_npz

ROOT = Path(__file__).resolve().parent.parent.parent
SPECS = ROOT / "specs"
_tool = importlib.util.spec_from_file_location("digits_data", ROOT / "tools" / "digits_data.py")
digits_data = importlib.util.module_from_spec(_tool)
_tool.loader.exec_module(digits_data)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    assert digits_data.main([str(folder)]) == 0
    return folder


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _onnx_accuracy(spec, weights, data, tmp_path):
    net = gn.load(spec)
    model = tmp_path / "model.onnx"
    net.export_onnx(model, dict(load_weights(str(weights)).read()))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    test = np.load(data)
    logits = session.run(None, {"image": test["image"]})[0]
    return float(np.mean(np.argmax(logits, axis=1) == test["target"]))


@pytest.mark.parametrize("name, least", [("digits_lenet", 0.97), ("digits_mlp", 0.95)])
def test_digits_reach_their_accuracy_in_numpy_and_onnxruntime(name, least, digits, tmp_path, capsys):
    spec, config = SPECS / f"{name}.yaml", SPECS.parent / "configs" / f"{name}.yaml"
    out = tmp_path / f"{name}.safetensors"
    printed = _run(capsys, "train", spec, "--data", digits / "digits_train.npz", "--val", digits / "digits_val.npz",
                   "--config", config, "-o", out)
    assert printed.count("val_accuracy") == 15          # one plain line per epoch off a terminal
    metrics = json.loads(_run(capsys, "evaluate", spec, "--weights", out, "--data", digits / "digits_test.npz",
                              "--config", config, "--json"))
    assert metrics["accuracy"] >= least, metrics
    assert _onnx_accuracy(spec, out, digits / "digits_test.npz", tmp_path) == pytest.approx(metrics["accuracy"], abs=1e-9)


def _mlp(tmp_path, digits, checkpoint=None, **config):
    text = "\n".join(f"{k}: {json.dumps(v)}" for k, v in {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
                                                            "batch_size": 64, "epochs": 3, **config}.items())
    path = tmp_path / "train.yaml"
    path.write_text(text + (f"\ncheckpoint: {json.dumps(checkpoint)}\n" if checkpoint else "\n"))
    net = gn.load(SPECS / "digits_mlp.yaml")
    resolved = load_config(str(path))
    data = load_data(str(digits / "digits_train.npz"), net, resolved.losses_for(["logits"]))
    return net, resolved, data


def test_resume_is_bit_identical_to_an_uninterrupted_run(digits, tmp_path):
    net, resolved, data = _mlp(tmp_path, digits, {"path": str(tmp_path / "run.ckpt.npz"), "every_steps": 7},
                               schedule={"name": "step", "step_size": 1, "gamma": 0.5})
    whole = Trainer(net, resolved, net.init_weights(0))
    whole.fit(data, None)

    stopped = Trainer(net, resolved, net.init_weights(0))

    def interrupt(record):
        if record["step"] == 30:      # mid-epoch 2; the last checkpoint is step 28's
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        stopped.fit(data, None, on_step=interrupt, checkpoint=lambda: stopped.save(str(tmp_path / "run.ckpt.npz"), {}))
    from graphnet.training.checkpoint import load_checkpoint
    saved = load_checkpoint(str(tmp_path / "run.ckpt.npz"), {})
    assert (saved.position.steps, saved.position.epoch, saved.position.batch) == (28, 1, 8)
    resumed = Trainer(net, resolved, net.init_weights(5))        # other initial weights: the checkpoint's win
    resumed.restore(saved)
    resumed.fit(data, None)
    for k, v in whole.all_weights().items():
        assert np.array_equal(v, resumed.all_weights()[k]), k
    assert resumed.position.steps == whole.position.steps == 3 * 20


def test_resume_through_the_cli(digits, tmp_path, capsys):
    common = ["train", SPECS / "digits_mlp.yaml", "--data", digits / "digits_train.npz", "--lr", "0.01",
              "--batch-size", "128", "--optimizer", "sgd", "--momentum", "0.9"]
    _run(capsys, *common, "--epochs", "3", "-o", tmp_path / "whole.npz")
    _run(capsys, *common, "--epochs", "1", "--checkpoint", tmp_path / "c.npz", "-o", tmp_path / "part.npz")
    _run(capsys, *common, "--epochs", "3", "--resume", tmp_path / "c.npz", "--checkpoint", tmp_path / "c.npz",
         "-o", tmp_path / "resumed.npz")
    whole, resumed = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "resumed.npz")
    assert all(np.array_equal(whole[k], resumed[k]) for k in whole.files)
    assert not np.array_equal(whole["fc1.weight"], np.load(tmp_path / "part.npz")["fc1.weight"])


def test_an_interrupted_checkpoint_write_leaves_the_last_one(digits, tmp_path, monkeypatch):
    net, resolved, data = _mlp(tmp_path, digits, epochs=1)
    trainer = Trainer(net, resolved, net.init_weights(0))
    path = tmp_path / "c.npz"
    trainer.save(str(path), {})
    before = path.read_bytes()
    trainer.fit(data, None)
    written = []

    def write_array(*args, **kwargs):
        written.append(1)
        if len(written) == 3:
            raise KeyboardInterrupt      # Ctrl-C in the middle of writing the archive
        return real(*args, **kwargs)
    real = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    with pytest.raises(KeyboardInterrupt):
        trainer.save(str(path), {})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz", "train.yaml"]


def test_onnxruntime_steps_equal_numpy(digits, tmp_path):
    """20 Adam steps of the digits MLP, the exported step graph on onnxruntime and the plan on NumPy."""
    net, resolved, data = _mlp(tmp_path, digits)
    batches = list(data.batches(64))[:20]
    results = []
    for backend in ("numpy", "onnxruntime"):
        trainer = Trainer(net, resolved, net.init_weights(0), backend=backend)
        for batch in batches:
            trainer.step(batch)
            trainer.position.steps += 1
        results.append(trainer.all_weights())
    for k, ours in results[0].items():
        assert np.linalg.norm(ours - results[1][k]) <= 1e-5 * np.linalg.norm(ours), k
    assert not np.allclose(results[0]["fc1.weight"], net.init_weights(0)["fc1.weight"])


def test_a_recurrent_network_trains_the_same_on_both_back_ends(tmp_path):
    """The LSTM's scans (whose bodies read the trained params) through 3 Adam steps, NumPy and onnxruntime."""
    net = gn.load(SPECS / "lstm.yaml", {"d_in": 3, "hidden": 4})
    resolved = load_config(None, [("loss", {"y": "mse_loss"}), ("optimizer.lr", 0.05)])
    rng = np.random.default_rng(0)
    batch = {"x": rng.standard_normal((2, 5, 3)).astype(np.float32), "target": rng.standard_normal((2, 5, 4)).astype(np.float32)}
    results, losses = [], []
    for backend in ("numpy", "onnxruntime"):
        trainer = Trainer(net, resolved, net.init_weights(0), backend=backend)
        for _ in range(3):
            losses.append(float(trainer.step(batch)["loss"]))
            trainer.position.steps += 1
        results.append(trainer.all_weights())
    for k, ours in results[0].items():
        assert np.linalg.norm(ours - results[1][k]) <= 1e-5 * np.linalg.norm(ours), k
    assert losses[2] < losses[0] and losses[:3] == pytest.approx(losses[3:], rel=1e-5)


def test_export_train_writes_a_standard_onnx_step(digits, tmp_path, capsys):
    out = _run(capsys, "export", SPECS / "digits_mlp.yaml", "--train", SPECS.parent / "configs" / "digits_mlp.yaml",
               "-o", tmp_path / "step.onnx")
    assert "one adamw step" in out
    session = ort.InferenceSession(str(tmp_path / "step.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    assert {"image", "target", "fc1.weight", "state:step", "lr", "lr:1", "state:fc1.weight:exp_avg"} <= names


def test_a_nan_loss_stops_at_the_first_nonfinite_node(tmp_path, capsys):
    """A learning rate that makes training diverge: the first step's update takes the weights near float32's limit,
    so the second step's forward pass overflows in the second layer."""
    rng = np.random.default_rng(0)
    save_npz(tmp_path / "d.npz", {"x": rng.standard_normal((8, 4)).astype(np.float32), "target": rng.integers(0, 3, 8)})
    code = main(["train", str(SPECS / "mlp.yaml"), "--dim", "D_in=4", "--dim", "hidden=8", "--dim", "classes=3",
                 "--data", str(tmp_path / "d.npz"), "--optimizer", "sgd", "--lr", "1e38", "--no-shuffle",
                 "--batch-size", "4", "-o", str(tmp_path / "o.npz")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    line = next(i for i, text in enumerate((SPECS / "mlp.yaml").read_text().splitlines(), 1) if "name: fc2" in text)
    assert err.startswith(f"{SPECS / 'mlp.yaml'}:{line}:"), err
    assert "the loss is nan at step 2 (epoch 1, batch 2); node 'fc2.matmul' (matmul)" in err, err
    assert "first non-finite value (forward pass)" in err, err
    assert not (tmp_path / "o.npz").exists()


def test_the_memory_guard_covers_a_training_step(digits, tmp_path, capsys):
    code = main(["train", str(SPECS / "digits_lenet.yaml"), "--data", str(digits / "digits_val.npz"),
                 "--max-memory", "64K", "-o", str(tmp_path / "o.npz")])
    err = capsys.readouterr().err
    assert code == 1 and "over the memory limit of 64.0 KiB (--max-memory)" in err, err


def test_lbfgs_is_driven_from_the_host(digits, tmp_path):
    net, resolved, data = _mlp(tmp_path, digits, optimizer={"name": "lbfgs", "max_iter": 5}, epochs=1, batch_size=256)
    trainer = Trainer(net, resolved, net.init_weights(0))
    losses = []
    trainer.fit(data, None, on_step=lambda r: losses.append(r["loss"]))
    assert len(losses) == 5 and losses[-1] < losses[0] / 2


def test_plot_draws_the_log(digits, tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    _run(capsys, "train", SPECS / "digits_mlp.yaml", "--data", digits / "digits_val.npz", "--val-split", "0.3",
         "--epochs", "2", "--metrics", "loss,accuracy,top3", "--log", log, "-o", tmp_path / "w.npz")
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["kind"] for x in lines].count("epoch") == 2 and {"val_top3", "train_accuracy"} <= set(lines[-1])
    for name in ("curves.png", "curves.svg"):
        _run(capsys, "plot", log, "-o", tmp_path / name)
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "curves.svg").read_bytes()[:400]


def test_plot_without_matplotlib_says_so(tmp_path, capsys, monkeypatch):
    log = tmp_path / "log.jsonl"
    log.write_text('{"kind": "epoch", "epoch": 1, "train_loss": 1.0}\n')
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["plot", str(log), "-o", str(tmp_path / "c.png")]) == 1
    assert "graphnet plot draws with matplotlib, which is not installed" in capsys.readouterr().err
    log.write_text('{"kind": "epoch", "epoch": 1}\n{"kind": "step", "step": 1}\n')
    assert main(["plot", str(log), "-o", str(tmp_path / "c.png")]) == 1
    assert capsys.readouterr().err.startswith(f"{log}:2:1: error: a step line needs a number \"loss\"")
