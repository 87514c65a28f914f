"""Shared by the weight-file tests: a tiny spec whose params are PyTorch's names for the module
Tiny below (fc1 -> bn -> relu -> fc2), and a way to run the command line in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphnet.cli import main

TINY = """\
graphnet: 1
name: tiny
use: [std]
dims: {B: ~}
inputs: {x: [B, 4]}
nodes:
  - {name: fc1, block: std.linear, args: {out: 8}}
  - {name: bn, block: std.batch_norm}
  - {name: relu, op: relu}
  - {name: fc2, block: std.linear, args: {out: 3}}
outputs: {y: fc2}
"""
SHAPES = {"fc1.weight": (8, 4), "fc1.bias": (8,), "bn.weight": (8,), "bn.bias": (8,), "bn.running_mean": (8,),
          "bn.running_var": (8,), "fc2.weight": (3, 8), "fc2.bias": (3,)}


@pytest.fixture
def tiny_spec(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture
def tiny_weights():
    """A maker of random values for every param (variances positive), so a misplaced weight shows."""
    def make(seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        out = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
        out["bn.running_var"] = (rng.random(8) + 0.5).astype(dtype)
        return out
    return make


@pytest.fixture
def cli(capsys):
    """graphnet's main in-process: (exit status, stdout, stderr)."""
    def run(*argv) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def tiny_module():
    """A maker of Tiny as torch.nn modules, batch norm's statistics and affine random, in eval mode."""
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.bn, self.fc2 = torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(torch.relu(self.bn(self.fc1(x))))

    def make(seed: int = 0):
        torch.manual_seed(seed)
        m = Tiny()
        with torch.no_grad():
            for t in (m.bn.weight, m.bn.bias, m.bn.running_mean):
                t.copy_(torch.randn(8))
            m.bn.running_var.copy_(torch.rand(8) + 0.5)
        m.bn.num_batches_tracked += 7
        return m.eval()
    return make
