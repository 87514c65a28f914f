"""Bad training configs (tests/training/corpus/*.yaml, each saying its error in its first line,
`# expect: LINE:COL: MESSAGE`) and bad data files (made here) each end `graphnet train` with one
located error, exit status 1, no traceback, no file written, before any step is taken."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from graphnet.cli import main

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
SPEC = str(HERE.parent.parent / "specs" / "mlp.yaml")
DIMS = ["--dim", "D_in=4", "--dim", "hidden=8", "--dim", "classes=3"]
EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.*)$")


def _good(n=10):
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((n, 4)).astype(np.float32), "target": rng.integers(0, 3, n)}


def _train(tmp_path, capsys, data, *extra):
    path = tmp_path / "data.npz"
    np.savez(path, **data)
    out = tmp_path / "out.npz"
    code = main(["train", SPEC, *DIMS, "--data", str(path), "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert not out.exists()
    return err.splitlines()[0], str(path)


@pytest.mark.parametrize("case", sorted(CORPUS.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_config(case, tmp_path, capsys):
    line, col, message = EXPECT.match(case.read_text().splitlines()[0]).groups()
    first, _ = _train(tmp_path, capsys, _good(), "--config", str(case))
    assert first.startswith(f"{case}:{line}:{col}: error: "), first
    assert message in first, first


FLAG_CASES = [
    (["--optimizer", "adamx"], "<command line>:1:1: error: unknown optimizer 'adamx'; did you mean 'adamax'?"),
    (["--lr", "-0.5"], "<command line>:1:1: error: optimizer.lr: Input should be greater than or equal to 0"),
    (["--set", "optimizer.betaz=[0.9,0.9]"], "unknown key 'betaz' in optimizer; did you mean 'betas'?"),
    (["--metrics", "loss,top0"], "unknown metric 'top0'"),
    (["--set", "epochs"], "--set takes KEY=VALUE"),
]


@pytest.mark.parametrize("flags, message", FLAG_CASES, ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_bad_flag(flags, message, tmp_path, capsys):
    first, _ = _train(tmp_path, capsys, _good(), *flags)
    assert message in first, first


def _with(**changes):
    data = _good()
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


DATA_CASES = [
    ("missing_input", _with(x=None, input=_good()["x"]), "the data has no array 'x' (the input)"),
    ("target_misnamed", _with(target=None, targets=_good()["target"]),
     "the data has no array 'target' (the target); did you mean 'targets'?"),
    ("extra_array", _with(weights=np.ones(10)), "array 'weights' is neither an input of 'mlp' nor a target"),
    ("input_dtype", _with(x=_good()["x"].astype(np.float64)), "input 'x' must be float32, got float64"),
    ("input_shape", _with(x=np.zeros((10, 5), np.float32)), "input 'x' dim 1"),
    ("label_out_of_range", _with(target=np.array([0, 1, 2, 3, 0, 0, 0, 0, 0, 0])),
     "target 'target' holds label 3 at example 3; output 'logits' has 3 classes (labels 0 to 2)"),
    ("negative_label", _with(target=np.array([0, -1, 2, 0, 0, 0, 0, 0, 0, 0])), "holds label -1 at example 1"),
    ("float_labels", _with(target=np.zeros(10, np.float32)), "target 'target' is float32; cross_entropy takes integer class labels (for class probabilities: cross_entropy_probs)"),
    ("label_shape", _with(target=np.zeros((10, 3), np.int64)), "target 'target' has shape [N, 3]; class labels"),
    ("empty", {"x": np.zeros((0, 4), np.float32), "target": np.zeros(0, np.int64)}, "the data set is empty"),
    ("nan", _with(x=np.where(np.arange(40).reshape(10, 4) == 21, np.nan, _good()["x"]).astype(np.float32)),
     "array 'x' holds nan at example 5 (index [5, 1]); data must be finite"),
    ("lengths", _with(target=np.zeros(9, np.int64)), "array 'target' has 9 examples, 'x' has 10"),
    ("scalar", _with(target=np.asarray(1)), "array 'target' is a scalar"),
]


@pytest.mark.parametrize("name, data, message", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data(name, data, message, tmp_path, capsys):
    first, path = _train(tmp_path, capsys, data)
    assert first.startswith(f"{path}:1:1: error: "), first
    assert message in first, first


def test_not_npz(tmp_path, capsys):
    (tmp_path / "data.txt").write_text("hello")
    code = main(["train", SPEC, *DIMS, "--data", str(tmp_path / "data.txt"), "-o", str(tmp_path / "o.npz")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"{tmp_path / 'data.txt'}:1:1: error: not a .npz file"), err
