"""A checkpoint given to `--resume` is a file like any other: each way one can be wrong (its
position, its history, its weights, its optimizer state, L-BFGS's state) ends `graphnet train` with
one located error at the checkpoint, exit status 1, no traceback and nothing written; and the log
may replace no input and no other output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from graphnet.cli import main

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "specs" / "mlp.yaml")
DIMS = ["--dim", "D_in=4", "--dim", "hidden=8", "--dim", "classes=3"]


def _good(n=10):
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((n, 4)).astype(np.float32), "target": rng.integers(0, 3, n)}


def _run(tmp_path, *extra):
    data = tmp_path / "data.npz"
    if not data.exists():
        np.savez(data, **_good())
    return main(["train", SPEC, *DIMS, "--data", str(data), "--epochs", "2", *extra])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A real one-epoch checkpoint of each optimizer, as its arrays and its meta."""
    folder = tmp_path_factory.mktemp("checkpoints")
    made = {}
    for optimizer in ("adam", "lbfgs"):
        path = folder / f"{optimizer}.ckpt.npz"
        assert _run(folder, "--epochs", "1", "--optimizer", optimizer, "--checkpoint", str(path),
                    "-o", str(folder / "w.npz")) == 0
        arrays = dict(np.load(path))
        made[optimizer] = arrays, json.loads(arrays["meta"].tobytes())
    return made


def _meta(**changes):
    return lambda arrays, meta: {**arrays, "meta": np.frombuffer(json.dumps({**meta, **changes}).encode(), np.uint8)}


def _array(key_part, value):
    def change(arrays, meta):
        key = next(k for k in arrays if key_part in k)
        return {**arrays, key: value(arrays[key])}
    return change


def _drop(key_part):
    return lambda arrays, meta: {k: v for k, v in arrays.items() if k != next(k for k in arrays if key_part in k)}


CASES = {
    "negative epoch": (_meta(epoch=-5), "lacks its position"),
    "fractional epoch": (_meta(epoch=1.5), "lacks its position"),
    "negative steps": (_meta(steps=-100), "lacks its position"),
    "a batch past the epoch": (_meta(batch=10**18), "stopped after batch 1000000000000000000 of an epoch"),
    "history not a list": (_meta(history={"a": 1}), "lacks its history"),
    "history of numbers": (_meta(history=[1, 2]), "lacks its history"),
    "meta nested past parsing": (lambda a, m: {**a, "meta": np.frombuffer(b"[" * 100_000, np.uint8)}, "not JSON"),
    "a weight of another shape": (_array("weights/fc1.weight", lambda w: np.zeros((3, 3), w.dtype)),
                                  "weight 'fc1.weight' has shape [3, 3]"),
    "a NaN weight": (_array("weights/fc1.weight", lambda w: np.full_like(w, np.nan)), "NaN or infinite"),
    "a weight missing": (_drop("weights/fc2.bias"), "weight 'fc2.bias' is missing"),
}
ADAM = {
    "a state of another shape": (_array("exp_avg_sq", lambda s: np.zeros(7, s.dtype)), "is float32[7], where"),
    "a state of another dtype": (_array("state:step", lambda s: s.astype(np.int64)), "is int64[], where"),
    "an infinite state": (_array("exp_avg", lambda s: np.full_like(s, np.inf)), "holds NaN or infinity"),
}
LBFGS = {
    "a direction of another size": (_array("state/d", lambda s: np.zeros(3, s.dtype)), "L-BFGS state 'd'"),
    "pairs past the history": (_array("state/history", lambda s: np.asarray(10**6)), "keeps at most 100 pairs"),
    "curvature pairs as a scalar": (_array("state/old_dirs", lambda s: np.asarray(1.0)), "'old_dirs'"),
}


@pytest.mark.parametrize("optimizer, case", [(o, c) for o in ("adam", "lbfgs") for c in CASES] +
                         [("adam", c) for c in ADAM] + [("lbfgs", c) for c in LBFGS])
def test_a_wrong_checkpoint_is_one_located_error(optimizer, case, checkpoints, tmp_path, capsys):
    arrays, meta = checkpoints[optimizer]
    change, message = {**CASES, **ADAM, **LBFGS}[case]
    bad = tmp_path / "bad.ckpt.npz"
    np.savez(bad, **change(arrays, meta))
    out = tmp_path / "out.npz"
    capsys.readouterr()
    assert _run(tmp_path, "--optimizer", optimizer, "--resume", str(bad), "-o", str(out)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:1:1: error: "), err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("log, other", [("spec", "this file is an input of the command"),
                                        ("data", "this file is an input of the command"),
                                        ("output", "is both the output and the log"),
                                        ("resumed", "is both the checkpoint resumed from and the log")])
def test_the_log_replaces_no_input_and_no_other_output(log, other, tmp_path, capsys):
    data, out, resumed = tmp_path / "data.npz", tmp_path / "out.npz", tmp_path / "real.ckpt.npz"
    np.savez(data, **_good())
    assert _run(tmp_path, "--epochs", "1", "--checkpoint", str(resumed), "-o", str(tmp_path / "w.npz")) == 0
    capsys.readouterr()
    path = {"spec": SPEC, "data": str(data), "output": str(out), "resumed": str(resumed)}[log]
    before = open(path, "rb").read() if log != "output" else None
    assert _run(tmp_path, "--resume", str(resumed), "--log", path, "-o", str(out)) == 1
    err = capsys.readouterr().err
    assert other in err and "Traceback" not in err, err
    if before is not None:
        assert open(path, "rb").read() == before
    assert not out.exists()


def test_resuming_into_the_checkpoint_resumed_from_is_allowed(tmp_path, capsys):
    ckpt = tmp_path / "run.ckpt.npz"
    assert _run(tmp_path, "--epochs", "1", "--checkpoint", str(ckpt), "-o", str(tmp_path / "w.npz")) == 0
    assert _run(tmp_path, "--resume", str(ckpt), "--checkpoint", str(ckpt), "-o", str(tmp_path / "w2.npz")) == 0
    assert json.loads(np.load(ckpt)["meta"].tobytes())["epoch"] == 2
