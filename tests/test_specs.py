"""Every spec in specs/: it validates, its parameter count is the published one, it exports to ONNX
at full size, and the NumPy back end agrees with onnxruntime running the exported model, at two
batch sizes of one ONNX file."""

from __future__ import annotations

import functools
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
    # torch.nn.TransformerEncoder(TransformerEncoderLayer(512, 8, 2048), 6): per layer
    # in_proj 3*512*512 + 3*512, out_proj 512*512 + 512, linear1 512*2048 + 2048,
    # linear2 2048*512 + 512, two LayerNorms 2 * 2 * 512
    "transformer_encoder": 6 * (3 * 512 * 512 + 3 * 512 + 512 * 512 + 512 + 512 * 2048 + 2048
                                + 2048 * 512 + 512 + 4 * 512),
    # torchvision model docs (the num_params of each model's IMAGENET1K_V1 weights); batch-norm
    # running statistics are buffers, not counted
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "mobilenet_v2": 3_504_872,
    "googlenet": 6_624_904,  # without the auxiliary classifiers, as the pretrained model is built
    # MobileNet V1 (Howard et al. 2017): 4.2 million in the paper (Tables 4 and 8), 4,231,976 in
    # PyTorch implementations with bias-free convs and affine batch norm:
    # stem conv 3*9*32 + BN 2*32; per block (C -> C') a depthwise 9*C + BN 2*C and a pointwise
    # C*C' + BN 2*C'; fc 1024*1000 + 1000
    "mobilenet_v1": 3 * 9 * 32 + 2 * 32
    + sum(11 * c + c * c2 + 2 * c2 for c, c2 in [(32, 64), (64, 128), (128, 128), (128, 256), (256, 256),
                                                  (256, 512)] + [(512, 512)] * 5 + [(512, 1024), (1024, 1024)])
    + 1024 * 1000 + 1000,
    # The notes' AlexNet (one GPU column of Krizhevsky et al. 2012, 227x227): no published count.
    # Convs with biases, 3->48 11x11, 48->128 5x5, 128->192, 192->192, 192->128 3x3 (945,856);
    # FC 128*6*6 -> 2048 -> 2048 -> 1000 (15,684,584); 16,630,440 in all.
    "alexnet_notes": (3 * 121 + 1) * 48 + (48 * 25 + 1) * 128 + (128 * 9 + 1) * 192 + (192 * 9 + 1) * 192
    + (192 * 9 + 1) * 128 + (128 * 6 * 6 + 1) * 2048 + (2048 + 1) * 2048 + (2048 + 1) * 1000,
    # ZFNet (Zeiler & Fergus 2013, Fig. 3): no published count. Convs with biases, 3->96 7x7,
    # 96->256 5x5, 256->384, 384->384, 384->256 3x3 (3,726,464); FC 256*6*6 -> 4096 -> 4096 -> 1000
    # (58,631,144); 62,357,608 in all.
    "zfnet": (3 * 49 + 1) * 96 + (96 * 25 + 1) * 256 + (256 * 9 + 1) * 384 + (384 * 9 + 1) * 384
    + (384 * 9 + 1) * 256 + (256 * 6 * 6 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000,
}

# Published multiply-accumulate counts for one 224x224 image: torchvision's "GFLOPS" (model docs),
# which count one multiply-add as one operation, and MobileNet V1's 569 million Mult-Adds
# (Howard et al. 2017, Tables 4 and 8).
PUBLISHED_GMACS = {
    "alexnet": 0.71, "vgg11": 7.61, "vgg13": 11.31, "vgg16": 15.47, "vgg19": 19.63,
    "resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51,
    "resnext50_32x4d": 4.23, "mobilenet_v2": 0.30, "googlenet": 1.50, "mobilenet_v1": 0.569,
}

# Free dims for the two runs of each spec (small, to keep the suite fast).
RUN_DIMS = {"transformer_encoder": [{"B": 1, "T": 7}, {"B": 3, "T": 4}]}

# Specs whose NumPy/onnxruntime comparison runs on a smaller variant, by overriding dims when
# loading: a smaller, non-square image (which also catches H/W mix-ups) and 10 classes. At full
# size the VGG and AlexNet classifiers make ONNX files of 250-580 MB, which take seconds to sample,
# export and load, and the deep ResNets take seconds of NumPy convolution; the variants have the
# same graph and conv weights. test_full_size_export still exports them at full size. AlexNet and
# ZFNet need at least about 64 pixels for their three 3x3 stride-2 pools after a stride-4 or -2 conv.
SMALL_DIMS = {
    **{name: {"H": 32, "W": 48, "classes": 10} for name in (
        "vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "resnext50_32x4d", "mobilenet_v1", "mobilenet_v2", "googlenet")},
    **{name: {"H": 64, "W": 96, "classes": 10} for name in ("alexnet", "zfnet")},
}


@functools.cache
def _load(name: str, small: bool = False) -> gn.Network:
    # Loading parses the std library each time; share one load per spec and variant.
    return gn.load(SPECS / f"{name}.yaml", SMALL_DIMS[name] if small else None)


def test_every_spec_has_a_published_count():
    assert sorted(PUBLISHED_PARAMS) == ALL


@pytest.mark.parametrize("name", ALL)
def test_spec_validates_with_published_param_count(name):
    net = _load(name)
    assert net.graph.param_count(trainable=True) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_macs_match_published_figures(name):
    macs = _load(name).graph.total_macs().subs({"B": 1}).value
    assert macs / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.01)


def _assert_batch_dim_symbolic(model):
    for axis_info in list(model.graph.input) + list(model.graph.output):
        params = [d.dim_param for d in axis_info.type.tensor_type.shape.dim if d.dim_param]
        assert "B" in params, f"{axis_info.name} lost the symbolic batch dim"


@pytest.mark.parametrize("name", sorted(SMALL_DIMS))
def test_full_size_export(name):
    # The full-size model passes onnx's full check (with shape inference). Weight values do not
    # matter here, so zeros stand in for the (slow to sample) initialization.
    net = _load(name)
    weights = {k: np.zeros(tuple(d.value for d in p.type.shape), p.type.dtype) for k, p in net.graph.params.items()}
    model = net.to_onnx(weights)
    onnx.checker.check_model(model, full_check=True)
    _assert_batch_dim_symbolic(model)


def test_small_variants_only_change_sizes():
    # The overrides shrink the image and the classifier, nothing else: the same ops in the same
    # order, the same params, and the same conv weights (only linear layers change shape).
    def convs(net):
        return {k: p.type.shape for k, p in net.graph.params.items() if len(p.type.shape) == 4}

    for name, dims in SMALL_DIMS.items():
        full, small = _load(name), _load(name, small=True)
        assert [(n.name, n.op.name) for n in small.graph.nodes] == [(n.name, n.op.name) for n in full.graph.nodes]
        assert list(small.graph.params) == list(full.graph.params)
        assert convs(small) == convs(full) != {}
        assert small.inputs["image"][2:] == (dims["H"], dims["W"])
        assert small.outputs["logits"] == ("B", dims["classes"])


@pytest.mark.parametrize("name", ALL)
def test_numpy_and_onnxruntime_agree_at_two_batch_sizes(name, tmp_path):
    net = _load(name, small=name in SMALL_DIMS)
    weights = net.init_weights(seed=1)
    path = tmp_path / f"{name}.onnx"
    model = net.export_onnx(path, weights)  # writes the file once onnx's full check accepts the model
    _assert_batch_dim_symbolic(model)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for dims in RUN_DIMS.get(name, [{"B": 1}, {"B": 2}]):
        inputs = net.random_inputs(dims, seed=sum(dims.values()))
        ours = net.run(inputs, weights)
        theirs = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
        for key, value in ours.items():
            assert value.shape == theirs[key].shape
            np.testing.assert_allclose(value, theirs[key], rtol=1e-4, atol=1e-5)


def test_transformer_keeps_sequence_dim_symbolic():
    net = _load("transformer_encoder")
    model = net.to_onnx()
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == ["B", "T"]
    assert net.outputs == {"y": ("B", "T", 512)}
