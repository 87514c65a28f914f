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
    # specs/transformer.yaml, the base Transformer (Vaswani et al. 2017; no published count at this
    # vocabulary) with one 32,000 x 512 embedding shared by source, target and the output projection;
    # 6 encoder layers as above; 6 decoder layers of two attentions 2 * (4 * 512*512 + 4 * 512), the
    # feed-forward and three LayerNorms 3 * 2 * 512
    "transformer": 32000 * 512 + 6 * (4 * 512 * 512 + 4 * 512 + 512 * 2048 + 2048 + 2048 * 512 + 512 + 4 * 512)
    + 6 * (2 * (4 * 512 * 512 + 4 * 512) + 512 * 2048 + 2048 + 2048 * 512 + 512 + 6 * 512),
    # Hugging Face BertModel(BertConfig()) (bert-base-uncased) with its pooler, 109,482,240:
    # embeddings (30522 words + 512 positions + 2 token types) * 768 and a LayerNorm 2 * 768; 12
    # layers of q, k, v, output 4 * (768*768 + 768), intermediate 768*3072 + 3072, output
    # 3072*768 + 768 and two LayerNorms 4 * 768; pooler 768*768 + 768
    "bert_base": (30522 + 512 + 2) * 768 + 2 * 768
    + 12 * (4 * (768 * 768 + 768) + 768 * 3072 + 3072 + 3072 * 768 + 768 + 4 * 768) + 768 * 768 + 768,
    "vit_b16": 86_567_656,  # torchvision vit_b_16
    # the digits specs (8x8 images, 10 classes), counted as their torch.nn equivalents: Conv2d(1, 16, 3)
    # 16*9+16, Conv2d(16, 32, 3) 32*16*9+32, Linear(128, 64), Linear(64, 10); Linear(64, 128), Linear(128, 10)
    "digits_lenet": 16 * 9 + 16 + 32 * 16 * 9 + 32 + 128 * 64 + 64 + 64 * 10 + 10,
    "digits_mlp": 64 * 128 + 128 + 128 * 10 + 10,
    # TinyLlama-1.1B (its model card's 1.1B; Hugging Face's LlamaForCausalLM at its config, which
    # tests/test_upstream_zoo2.py builds on the meta device): two 32000 x 2048 embeddings (input
    # and untied head), 22 layers of q, o 2048*2048, k, v 2048*256, gate, up, down 2048*5632 and
    # two RMSNorms 2 * 2048, and the final RMSNorm 2048
    "llama_tiny": 2 * 32000 * 2048 + 22 * (2 * 2048 * 2048 + 2 * 2048 * 256 + 3 * 2048 * 5632 + 2 * 2048) + 2048,
    # local_attention (no published model): 2 post-norm layers, d 256, d_ff 1024, each
    # 4 * (256*256 + 256) + 256*1024 + 1024 + 1024*256 + 256 + 4 * 256
    "local_attention": 2 * (4 * (256 * 256 + 256) + 256 * 1024 + 1024 + 1024 * 256 + 256 + 4 * 256),
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
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
    "efficientnet_b0": 5_288_548,
    # torchvision's weights meta num_params (tests/test_upstream_zoo2.py loads each module by name)
    "squeezenet1_0": 1_248_424,
    "inception_v3": 27_161_264 - 3_326_696,  # torchvision's count less the auxiliary head (its spec says how)
    "efficientnet_v2_s": 21_458_488,
    "regnet_x_400mf": 5_495_976,
    "swin_t": 28_288_354,  # torchvision's num_params; its 12 relative_position_index buffers are non-trainable
    "mnasnet1_0": 4_383_312,
    "shufflenet_v2_x0_5": 1_366_792,
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
    # Recurrent specs (tests/test_sequence_models.py checks each against torch.nn). A layer of
    # torch.nn.RNN/GRU/LSTM(I, H) has gates * H * (I + H) weights and 2 * gates * H biases.
    # rnn: torch.nn.RNN(128, 256) and a head torch.nn.Linear(256, 10)
    "rnn": 256 * (128 + 256) + 2 * 256 + 256 * 10 + 10,
    # birnn: torch.nn.RNN(128, 256, num_layers=2, bidirectional=True); layer 1 reads 2 * 256
    "birnn": 2 * (256 * (128 + 256) + 2 * 256) + 2 * (256 * (512 + 256) + 2 * 256),
    # lstm: torch.nn.LSTM(128, 256, num_layers=2)
    "lstm": 4 * 256 * (128 + 256) + 8 * 256 + 4 * 256 * (256 + 256) + 8 * 256,
    # gru: torch.nn.GRU(128, 256, num_layers=2)
    "gru": 3 * 256 * (128 + 256) + 6 * 256 + 3 * 256 * (256 + 256) + 6 * 256,
    # seq2seq_attention (no published model at these sizes): embeddings 2 x 4000*128, encoder
    # torch.nn.GRU(128, 256, bidirectional=True), U 512 -> 256, s_0 layer 256 -> 256 with bias,
    # attention W 256 -> 256 and v 256, decoder torch.nn.GRUCell(128 + 512, 256), output
    # [s; c] 768 -> 4000 with bias
    "seq2seq_attention": 2 * 4000 * 128 + 2 * (3 * 256 * (128 + 256) + 6 * 256) + 512 * 256 + 256 * 256 + 256
    + 256 * 256 + 256 + 3 * 256 * (640 + 256) + 6 * 256 + 768 * 4000 + 4000,
    # gcn: Kipf & Welling's two-layer GCN on Cora as in their pygcn code: W0 1433 x 16 + b0,
    # W1 16 x 7 + b1 (their TensorFlow original has no biases: 23,040)
    "gcn": 1433 * 16 + 16 + 16 * 7 + 7,
    # gcnn_p4: Cohen & Welling's P4CNN (no published count): lifting conv 1 -> 10 (3x3) + bias,
    # five p4 convs 10 -> 10 (10 x 4 input planes, 3x3) + bias, six batch norms (weight, bias),
    # top p4 conv 10 -> 10 (4x4) + bias; batch-norm running statistics are buffers
    "gcnn_p4": (10 * 9 + 10) + 5 * (10 * 10 * 4 * 9 + 10) + 6 * 2 * 10 + (10 * 10 * 4 * 16 + 10),
}

# Published multiply-accumulate counts for one 224x224 image: torchvision's "GFLOPS" (model docs),
# which count one multiply-add as one operation, and MobileNet V1's 569 million Mult-Adds
# (Howard et al. 2017, Tables 4 and 8).
PUBLISHED_GMACS = {
    "alexnet": 0.71, "vgg11": 7.61, "vgg13": 11.31, "vgg16": 15.47, "vgg19": 19.63,
    "resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51,
    "resnext50_32x4d": 4.23, "mobilenet_v2": 0.30, "googlenet": 1.50, "mobilenet_v1": 0.569,
    "vit_b16": 17.56,  # torchvision's GFLOPS for vit_b_16 (the Transformers with free T: tests/test_attention.py)
    # torchvision's meta "_ops" (three decimals; its docs table rounds them to 0.22, 0.06 and 0.39,
    # and 0.06 is 6% off the 0.0565 that conv and linear MACs, SE's 1x1 convs included, add up to)
    "mobilenet_v3_large": 0.217, "mobilenet_v3_small": 0.057, "efficientnet_b0": 0.386,
    # the same meta "_ops" for the networks issue 12 added
    "squeezenet1_0": 0.819, "shufflenet_v2_x0_5": 0.0405,  # 0.04 in the meta, two digits
    "inception_v3": 5.713,
    "efficientnet_v2_s": 8.366,
    "regnet_x_400mf": 0.414,
    "mnasnet1_0": 0.314,
    "swin_t": 4.491,
}

# Free dims for the two runs of each spec (small, to keep the suite fast).
RUN_DIMS = {"transformer_encoder": [{"B": 1, "T": 7}, {"B": 3, "T": 4}]}

# Inputs that are non-negative by meaning (an adjacency matrix: its degrees are square-rooted).
NONNEGATIVE_INPUTS = {"gcn": ["adj"]}
RUN_DIMS.update({name: [{"B": 1, "T": 7}, {"B": 3, "T": 4}] for name in ("bert_base", "local_attention")})
RUN_DIMS["transformer"] = [{"B": 1, "S": 5, "T": 4}, {"B": 2, "S": 3, "T": 6}]
RUN_DIMS.update({name: [{"B": 1, "T": 7}, {"B": 3, "T": 4}] for name in ("rnn", "birnn", "lstm", "gru")})
RUN_DIMS["seq2seq_attention"] = [{"B": 1, "S": 5, "T": 4}, {"B": 2, "S": 3, "T": 6}]
RUN_DIMS["gcn"] = [{"B": 1, "N": 5}, {"B": 3, "N": 2}]
RUN_DIMS["llama_tiny"] = [{"B": 1, "T": 7}, {"B": 3, "T": 4}]

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
    **{name: {"H": 32, "W": 48, "classes": 10} for name in (
        "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0")},
    # the classifier is a conv, which the variants keep: all 1000 classes
    **{name: {"H": 39, "W": 45, "classes": 1000} for name in ("squeezenet1_0",)},
    "inception_v3": {"H": 75, "W": 91, "classes": 10},  # 75 pixels: the least its stride-2 stages take
    **{name: {"H": 32, "W": 48, "classes": 10} for name in ("shufflenet_v2_x0_5", "efficientnet_v2_s", "regnet_x_400mf", "mnasnet1_0")},
    **{name: {"H": 64, "W": 96, "classes": 10} for name in ("alexnet", "zfnet")},
    "swin_t": {"H": 64, "W": 48, "classes": 10},
    # The big Transformers also shrink in depth, width and vocabulary (2 layers, d_model 32, 4 heads):
    # fewer layers of the same graph, a few milliseconds to run instead of seconds to export.
    "transformer": {"vocab": 50, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2},
    "bert_base": {"vocab": 100, "max_positions": 16, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2},
    "vit_b16": {"H": 32, "W": 48, "classes": 10, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2},
    "llama_tiny": {"vocab": 100, "d": 32, "d_ff": 64, "heads": 4, "kv_heads": 2, "layers": 2},
}

# Too big for one ONNX file at full size (protobuf's 2 GB limit; 4.4 GB of float32 weights):
# exported and fully checked at its small configuration above, with B and T symbolic.
NO_FULL_SIZE_EXPORT = {"llama_tiny"}

# Variants whose ops follow the image size, as upstream's do: Swin pads a map to whole windows and
# shifts only along an axis longer than one window. They keep the same params.
SIZE_SHAPED_OPS = {"swin_t"}


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


@pytest.mark.parametrize("name", sorted(set(SMALL_DIMS) - NO_FULL_SIZE_EXPORT))
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
        if not set(dims) <= {"H", "W", "classes"}:
            # The Transformers' variants have fewer layers: their params are a subset, by name.
            assert set(small.graph.params) < set(full.graph.params)
            continue
        if name not in SIZE_SHAPED_OPS:
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
        for key in NONNEGATIVE_INPUTS.get(name, ()):
            inputs[key] = np.abs(inputs[key])
        ours = net.run(inputs, weights)
        theirs = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
        for key, value in ours.items():
            assert value.shape == theirs[key].shape
            assert np.all(np.isfinite(value)), f"{key} is not finite: the comparison would prove nothing"
            np.testing.assert_allclose(value, theirs[key], rtol=1e-4, atol=1e-5, equal_nan=False)


def test_transformer_keeps_sequence_dim_symbolic():
    net = _load("transformer_encoder")
    model = net.to_onnx()
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == ["B", "T"]
    assert net.outputs == {"y": ("B", "T", 512)}
