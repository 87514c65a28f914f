"""The torchvision CNNs and torch.nn's recurrent stacks load their upstream modules' own state_dict()
by name, with no renaming and no flag, through the command line: each module is built by its
library's own code (torchvision.models, torch.nn.LSTM/GRU), every buffer and constant-initialized
param redrawn (batch norm statistics and affines, zero biases) so that a weight in the wrong place
changes the output, saved with torch.save, as .safetensors and as .npz, and `graphnet run` (NumPy,
onnxruntime) and `graphnet export` give the module's eval-mode outputs within 1e-4 of their scale.
The CNNs run on 64x64 images (--dim H=64 --dim W=64); their names and shapes are those of the full
module. The helpers are the Transformer tests' (tests/test_upstream_transformers.py)."""

from __future__ import annotations

import numpy as np
import pytest

import graphnet as gn
from tests.test_upstream_transformers import SPECS, _check_cli, _library, _numpy

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch)")


def _same_names(spec: str, module) -> int:
    """The module's state_dict names and shapes are exactly the spec's params, less the batch norms'
    num_batches_tracked counters (skipped when weights load, by docs/weights.md's rule)."""
    theirs = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    ours = {k: tuple(d.value for d in p.type.shape) for k, p in gn.load(SPECS / f"{spec}.yaml").graph.params.items()}
    assert theirs == ours, sorted(set(theirs) ^ set(ours))[:10]
    return len(ours)


def _redraw_all(module, seed: int):
    """Random values in every float tensor of the state_dict that the library set to one value
    (running_mean zeros, running_var ones, norm affines, zero biases); variances stay positive."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point() and t.numel() > 1 and torch.all(t == t.flatten()[0]):
                noise = 0.1 * torch.randn(t.shape, generator=gen)
                t.copy_(t.abs() + noise.abs() + 0.5 if name.endswith("running_var") else t + noise)
    return module.eval()


@pytest.mark.parametrize("spec, make", [("resnet18", "resnet18"), ("mobilenet_v2", "mobilenet_v2")])
def test_a_torchvision_cnn_loads_its_state_dict(tmp_path, spec, make):
    models = _library("torchvision.models")
    torch.manual_seed(0)
    module = _redraw_all(getattr(models, make)(weights=None), seed=1)
    assert _same_names(spec, module) > 100
    image = np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        (logits,) = _numpy(module(torch.from_numpy(image)))
    _check_cli(tmp_path, spec, {"H": 64, "W": 64}, module, {"image": image}, {"logits": logits})


@pytest.mark.parametrize("spec", ["lstm", "gru"])
def test_a_torch_recurrent_stack_loads_its_state_dict(tmp_path, spec):
    torch.manual_seed(0)
    module = _redraw_all(getattr(torch.nn, spec.upper())(128, 256, num_layers=2, batch_first=True), seed=1)
    assert _same_names(spec, module) == 8
    x = np.random.default_rng(2).standard_normal((2, 7, 128)).astype(np.float32)
    with torch.no_grad():
        y, state = module(torch.from_numpy(x))
    expected = {"y": y.numpy()}
    if spec == "lstm":
        expected["h_n"], expected["c_n"] = _numpy(*state)
    else:
        expected["h_n"] = state.numpy()
    _check_cli(tmp_path, spec, {}, module, {"x": x}, expected)
