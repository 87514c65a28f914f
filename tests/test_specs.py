"""Every spec in specs/: it validates, its parameter count is the published one, and the NumPy back
end agrees with onnxruntime running the exported model, at two batch sizes of one ONNX file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import graphnet as gn

SPECS = Path(__file__).resolve().parent.parent / "specs"
ALL = sorted(p.stem for p in SPECS.glob("*.yaml"))

# Trainable parameter counts of the reference models, and where each number comes from.
PUBLISHED_PARAMS = {
    # torch.nn.Sequential(Linear(784, 1024), ReLU, Linear(1024, 1024), ReLU, Linear(1024, 10)):
    # (784 + 1) * 1024 + (1024 + 1) * 1024 + (1024 + 1) * 10
    "mlp": (784 + 1) * 1024 + (1024 + 1) * 1024 + (1024 + 1) * 10,
    # LeNet-5 (LeCun et al. 1998) with a full C3: conv 1->6 5x5, conv 6->16 5x5, conv 16->120 5x5,
    # FC 120->84, FC 84->10, each with biases.
    "lenet5": (25 + 1) * 6 + (6 * 25 + 1) * 16 + (16 * 25 + 1) * 120 + (120 + 1) * 84 + (84 + 1) * 10,
    # torchvision model docs (VGG16_Weights.IMAGENET1K_V1 num_params)
    "vgg16": 138_357_544,
    # torchvision model docs (ResNet18_Weights.IMAGENET1K_V1 num_params); BN running stats are buffers
    "resnet18": 11_689_512,
    # torch.nn.TransformerEncoder(TransformerEncoderLayer(512, 8, 2048), 6): per layer
    # in_proj 3*512*512 + 3*512, out_proj 512*512 + 512, linear1 512*2048 + 2048,
    # linear2 2048*512 + 512, two LayerNorms 2 * 2 * 512
    "transformer_encoder": 6 * (3 * 512 * 512 + 3 * 512 + 512 * 512 + 512 + 512 * 2048 + 2048
                                + 2048 * 512 + 512 + 4 * 512),
}

# Published multiply-accumulate counts (torchvision's "GFLOPS", which counts one multiply-add as
# one operation) for one 224x224 image.
PUBLISHED_GMACS = {"resnet18": 1.81, "vgg16": 15.47}

# Free dims for the two runs of each spec (small, to keep the suite fast).
RUN_DIMS = {"transformer_encoder": [{"B": 1, "T": 7}, {"B": 3, "T": 4}]}


def test_every_spec_has_a_published_count():
    assert sorted(PUBLISHED_PARAMS) == ALL


@pytest.mark.parametrize("name", ALL)
def test_spec_validates_with_published_param_count(name):
    net = gn.load(SPECS / f"{name}.yaml")
    assert net.graph.param_count(trainable=True) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_macs_match_published_figures(name):
    macs = gn.load(SPECS / f"{name}.yaml").graph.total_macs().subs({"B": 1}).value
    assert macs / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.01)


@pytest.mark.parametrize("name", ALL)
def test_numpy_and_onnxruntime_agree_at_two_batch_sizes(name, tmp_path):
    net = gn.load(SPECS / f"{name}.yaml")
    weights = net.init_weights(seed=1)
    path = tmp_path / f"{name}.onnx"
    model = net.export_onnx(path, weights)
    onnx.checker.check_model(str(path), full_check=True)
    for axis_info in list(model.graph.input) + list(model.graph.output):
        params = [d.dim_param for d in axis_info.type.tensor_type.shape.dim if d.dim_param]
        assert "B" in params, f"{axis_info.name} lost the symbolic batch dim"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for dims in RUN_DIMS.get(name, [{"B": 1}, {"B": 2}]):
        inputs = net.random_inputs(dims, seed=sum(dims.values()))
        ours = net.run(inputs, weights)
        theirs = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
        for key, value in ours.items():
            assert value.shape == theirs[key].shape
            np.testing.assert_allclose(value, theirs[key], rtol=1e-4, atol=1e-5)


def test_transformer_keeps_sequence_dim_symbolic():
    net = gn.load(SPECS / "transformer_encoder.yaml")
    model = net.to_onnx()
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == ["B", "T"]
    assert net.outputs == {"y": ("B", "T", 512)}
