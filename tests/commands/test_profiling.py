"""`run --profile` on both back ends: the NumPy plan's own step timings, and onnxruntime's profiler,
whose op names must be those of the ONNX model that ran (read back with onnx, not from our code)."""

import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import graphnet as gn
from graphnet.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC = ROOT / "specs" / "lenet5.yaml"


def _table(out: str) -> tuple[str, list[tuple[str, int]]]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("profile: "))
    ops = []
    for line in lines[start + 2:]:
        if line.strip() == "slowest nodes":
            break
        name, _ms, _pct, steps = line.split()
        ops.append((name, int(steps)))
    return lines[start], ops


def test_onnxruntime_profile_is_its_profilers(capsys, tmp_path):
    before = set(Path(tempfile.gettempdir()).glob("graphnet-profile-*"))
    assert main(["run", str(SPEC), "--backend", "onnxruntime", "--profile"]) == 0
    head, ops = _table(capsys.readouterr().out)
    assert head.endswith("(onnxruntime, CPUExecutionProvider)")
    # the kernels onnxruntime's own profiler reports for that model, run here without graphnet
    model = gn.load(SPEC).to_onnx()
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "ort")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = {"image": np.zeros([1, 1, 32, 32], np.float32)}
    session.run(None, x)
    session.run(None, x)
    events = json.loads(Path(session.end_profiling()).read_text())
    kernels = Counter(e["args"]["op_name"] for e in events if e.get("cat") == "Node")
    assert dict(ops) == {op: n // 2 for op, n in kernels.items()}      # its second run's
    assert set(Path(tempfile.gettempdir()).glob("graphnet-profile-*")) == before     # the trace is removed
    assert list(Path.cwd().glob("ort*.json")) == []


def test_numpy_profile_counts_every_step_of_the_plan(capsys):
    assert main(["run", str(SPEC), "--profile"]) == 0
    head, ops = _table(capsys.readouterr().out)
    assert head.endswith("(numpy)")
    steps = int(head.split(" in ")[1].split()[0])
    assert steps == sum(n for _, n in ops) > 0


@pytest.mark.parametrize("backend", ["numpy", "onnxruntime"])
def test_without_profile_nothing_is_timed(capsys, backend):
    assert main(["run", str(SPEC), "--backend", backend]) == 0
    assert "profile:" not in capsys.readouterr().out
