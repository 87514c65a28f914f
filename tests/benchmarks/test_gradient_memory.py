"""benchmarks/gradient_memory.py measures the same computation on both sides: on its small case,
the gradients graphnet's child computes equal those torch's child computes, and a measurement (in a
child process, as the table's) holds at least the gradients."""

import numpy as np
import pytest

pytest.importorskip("torch", reason="the benchmark's other side is PyTorch")

from benchmarks import gradient_memory  # noqa: E402
from graphnet.transforms.autodiff import GRAD  # noqa: E402

SMALL = "resnet18 64x64 B=2"     # 2x2 at the last stage: batch norm over 8 values, not 2


def test_both_engines_compute_the_same_gradients():
    ours, _ = gradient_memory.graphnet_computation(SMALL)
    theirs, _ = gradient_memory.torch_computation(SMALL)
    got, want = ours(), theirs()
    assert set(want) == {k[len(GRAD):] for k in got if k.startswith(GRAD)}
    for name, grad in want.items():
        grad = grad.numpy()
        scale = max(float(np.abs(grad).max()), 1e-6)
        assert float(np.abs(got[GRAD + name] - grad).max()) <= 1e-3 * scale, name


def test_a_measurement_holds_at_least_the_gradients():
    # one engine: the method is the same for both (graphnet's child takes longer to prepare)
    result = gradient_memory.measure("torch", SMALL)
    # resnet18's 11.2M float32 gradients alone are 42.6 MiB
    assert result is not None and result["peak_growth_mib"] > 40
