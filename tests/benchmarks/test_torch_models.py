"""The benchmark compares equal computations: for every model of the default suite, the torch.nn
module of benchmarks/torch_models.py, loaded with graphnet's weights the way the benchmark loads
them, gives graphnet's outputs. Small dims keep it quick. PyTorch is optional; without it these
tests are skipped and say so."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")

from benchmarks.engines import load_workload  # noqa: E402
from benchmarks.suite import SUITES, Case  # noqa: E402
from benchmarks.torch_models import (BUILDERS, param_count, randomize_batch_norms, randomize_layer_norms,  # noqa: E402
                                     torch_module)

SMALL = {
    "mlp": {"B": 3},
    "resnet18": {"B": 2, "H": 40, "W": 32},
    "mobilenet_v2": {"B": 2, "H": 32, "W": 40},
    "transformer_encoder": {"B": 2, "T": 5, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2},
    "lstm": {"B": 2, "T": 6, "d_in": 16, "hidden": 24},
}


def test_every_suite_model_has_a_torch_module():
    assert {c.model for c in SUITES["default"]} == set(BUILDERS) == set(SMALL)


@pytest.mark.parametrize("model", sorted(SMALL))
def test_torch_module_gives_graphnets_outputs(model):
    w = load_workload(Case(model, tuple(SMALL[model].items())), seed=1)
    # Random norms, so that a norm param mapped to the wrong place shows.
    weights = randomize_layer_norms(randomize_batch_norms(w.weights, seed=2), seed=3)
    module = torch_module(model, weights, w.dims)
    assert param_count(module) == w.net.graph.param_count(trainable=True)
    ours = w.net.session(weights).run(w.inputs)
    with torch.inference_mode():
        theirs = module(*(torch.from_numpy(w.inputs[k]) for k in w.net.graph.inputs))
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    assert len(theirs) == len(ours)
    for name, t in zip(w.output_names, theirs):
        np.testing.assert_allclose(ours[name], t.numpy(), rtol=1e-4, atol=1e-4, err_msg=f"{model}: {name}")
