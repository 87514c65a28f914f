"""PyTorch as the oracle: the reference modules have our parameter counts and, with our weights
mapped in by name, compute the same outputs. PyTorch is an optional test dependency
(`pip install torch==2.13.0`); without it these tests are skipped and say so."""

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
nn = torch.nn
SPECS = Path(__file__).resolve().parent.parent / "specs"

# The modules the benchmark suite also runs (benchmarks/torch_models.py), and their name maps.
from benchmarks.torch_models import (MLP, Bottleneck, MobileNetV2, ResNet, conv_bn, load_state,  # noqa: E402
                                     param_count, randomize_batch_norms)


def _compare(net, module, x: np.ndarray, weights):
    ours = next(iter(net.run({next(iter(net.inputs)): x}, weights).values()))
    with torch.no_grad():
        theirs = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_mlp_matches_torch():
    net = gn.load(SPECS / "mlp.yaml")
    module = MLP()
    assert param_count(module) == net.graph.param_count()
    w = net.init_weights(seed=2)
    _compare(net, load_state(module, w), np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32), w)


def test_lenet5_matches_torch():
    net = gn.load(SPECS / "lenet5.yaml")
    module = nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                               nn.AvgPool2d(2), nn.Conv2d(16, 120, 5), nn.Tanh()),
        flatten=nn.Flatten(), classifier=nn.Sequential(nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))))
    assert sum(p.numel() for p in module.parameters()) == net.graph.param_count()
    w = net.init_weights(seed=3)
    _compare(net, load_state(module, w), np.random.default_rng(1).standard_normal((2, 1, 32, 32)).astype(np.float32), w)


# ImageNet CNNs. torchvision is not a dependency, so the reference modules below rebuild its
# classes from torch.nn with its module names; each must have torchvision's published parameter
# count (tests/test_specs.py), which checks the rebuild as much as our spec.

def _image(seed: int, shape=(2, 3, 224, 224)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name, layers, groups, width", [("resnet50", (3, 4, 6, 3), 1, 64),
                                                         ("resnext50_32x4d", (3, 4, 6, 3), 32, 4)])
def test_bottleneck_resnets_match_torch(name, layers, groups, width):
    # Names are torchvision's: the weights map one to one. A smaller image keeps it quick (the
    # adaptive average pool makes the torch model size-agnostic).
    net = gn.load(SPECS / f"{name}.yaml", {"H": 96, "W": 128})
    module = ResNet(Bottleneck, layers, groups, width)
    assert param_count(module) == net.graph.param_count(trainable=True)
    w = randomize_batch_norms(net.init_weights(seed=5), seed=6)
    _compare(net, load_state(module, w), _image(7, (2, 3, 96, 128)), w)


def test_mobilenet_v2_matches_torch():
    net = gn.load(SPECS / "mobilenet_v2.yaml")
    module = MobileNetV2()
    assert param_count(module) == net.graph.param_count(trainable=True)
    w = randomize_batch_norms(net.init_weights(seed=8), seed=9)
    _compare(net, load_state(module, w), _image(10), w)


class _MobileNetV1(nn.Module):
    """MobileNet V1 as the common PyTorch implementations build it, with our module names."""

    def __init__(self, classes=1000):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(3, 32, 3, 2)
        blocks, cin = [], 32
        for c, s in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]:
            block = nn.Module()
            block.conv1, block.bn1 = conv_bn(cin, cin, 3, s, groups=cin)
            block.conv2, block.bn2 = conv_bn(cin, c, 1)
            blocks.append(block)
            cin = c
        self.layers = nn.ModuleList(blocks)
        self.fc = nn.Linear(1024, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        for b in self.layers:
            x = torch.relu(b.bn2(b.conv2(torch.relu(b.bn1(b.conv1(x))))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_mobilenet_v1_matches_torch():
    net = gn.load(SPECS / "mobilenet_v1.yaml")
    module = _MobileNetV1()
    assert param_count(module) == net.graph.param_count(trainable=True)
    w = randomize_batch_norms(net.init_weights(seed=11), seed=12)
    _compare(net, load_state(module, w), _image(13), w)


class _BasicConv2d(nn.Module):
    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class _Inception(nn.Module):
    """torchvision.models.googlenet.Inception (its "5x5" branch has a 3x3 kernel)."""

    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = _BasicConv2d(cin, ch1x1, 1)
        self.branch2 = nn.Sequential(_BasicConv2d(cin, ch3x3red, 1), _BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(_BasicConv2d(cin, ch5x5red, 1), _BasicConv2d(ch5x5red, ch5x5, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), _BasicConv2d(cin, pool_proj, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class _GoogLeNet(nn.Module):
    """torchvision.models.GoogLeNet without the auxiliary classifiers and transform_input."""

    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = _BasicConv2d(3, 64, 7, 2, 3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = _BasicConv2d(64, 64, 1)
        self.conv3 = _BasicConv2d(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = _Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = _Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = _Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = _Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = _Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = _Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = _Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a = _Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = _Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(1024, classes)

    def forward(self, x):
        for name, _ in self.named_children():
            if name == "fc":
                x = torch.flatten(x, 1)
            x = getattr(self, name)(x)
        return x


def test_googlenet_matches_torch():
    # An image size at which every ceil_mode pool rounds up: H 104 -> 52 -> 26 -> 13 -> 7 after the
    # stem, W 88 -> 44 -> 22 -> 11 -> 6 (rounding down would give 51, 25, 12, 6 and 43, 21, 10, 5).
    net = gn.load(SPECS / "googlenet.yaml", {"H": 207, "W": 175})
    module = _GoogLeNet()
    assert param_count(module) == net.graph.param_count(trainable=True)
    w = randomize_batch_norms(net.init_weights(seed=14), seed=15)
    _compare(net, load_state(module, w), _image(16, (2, 3, 207, 175)), w)


class _AlexNetStyle(nn.Module):
    """torchvision's AlexNet layout: `features` (convs with ReLU, 3x3/2 max pools after convs 1, 2
    and 5), an optional AdaptiveAvgPool2d((6, 6)), `classifier` (linears with ReLU and dropout)."""

    def __init__(self, convs, ceil_mode, fcs, dropout_first, avgpool):
        super().__init__()
        features = []
        for i, (cin, cout, k, s, p) in enumerate(convs):
            features += [nn.Conv2d(cin, cout, k, s, p), nn.ReLU()]
            if i in (0, 1, 4):
                features.append(nn.MaxPool2d(3, 2, ceil_mode=ceil_mode))
        classifier = []
        for i, (fin, fout) in enumerate(fcs):
            if i == len(fcs) - 1:
                classifier.append(nn.Linear(fin, fout))
            elif dropout_first:   # torchvision's AlexNet: Dropout, Linear, ReLU
                classifier += [nn.Dropout(0.5), nn.Linear(fin, fout), nn.ReLU()]
            else:                 # VGG style: Linear, ReLU, Dropout
                classifier += [nn.Linear(fin, fout), nn.ReLU(), nn.Dropout(0.5)]
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6)) if avgpool else nn.Identity()
        self.classifier = nn.Sequential(*classifier)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def test_alexnet_matches_torch():
    # With torchvision's AdaptiveAvgPool2d((6, 6)), which the spec leaves out as the identity at
    # 224x224.
    net = gn.load(SPECS / "alexnet.yaml")
    module = _AlexNetStyle([(3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1),
                            (256, 256, 3, 1, 1)], False, [(9216, 4096), (4096, 4096), (4096, 1000)],
                           dropout_first=True, avgpool=True)
    assert param_count(module) == net.graph.param_count(trainable=True)
    w = net.init_weights(seed=17)
    _compare(net, load_state(module, w), _image(18), w)


def test_zfnet_matches_torch():
    # Checks the ceil_mode pools against torch's (110 -> 55, 26 -> 13, 13 -> 6).
    net = gn.load(SPECS / "zfnet.yaml")
    module = _AlexNetStyle([(3, 96, 7, 2, 1), (96, 256, 5, 2, 0), (256, 384, 3, 1, 1), (384, 384, 3, 1, 1),
                            (384, 256, 3, 1, 1)], True, [(9216, 4096), (4096, 4096), (4096, 1000)],
                           dropout_first=False, avgpool=False)
    assert param_count(module) == net.graph.param_count(trainable=True)
    w = net.init_weights(seed=19)
    _compare(net, load_state(module, w), _image(20), w)


# MobileNet V3 and EfficientNet-B0: torchvision's Conv2dNormActivation, SqueezeExcitation,
# InvertedResidual (V3) and MBConv, with its module names.

def _make_divisible(v, divisor=8):
    """torchvision's _make_divisible: the nearest multiple of divisor (at least divisor), one step up
    if rounding down lost more than 10%."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_norm_act(cin, cout, kernel, stride=1, groups=1, act=None, eps=1e-5):
    """torchvision.ops.Conv2dNormActivation: Sequential(conv, batch norm[, activation])."""
    return nn.Sequential(*conv_bn(cin, cout, kernel, stride, groups, eps), *([act()] if act else []))


class _SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation."""

    def __init__(self, channels, squeeze, act, scale_act):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation, self.scale_activation = act(), scale_act()

    def forward(self, x):
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


class _SEInvertedResidual(nn.Module):
    """torchvision's MobileNet V3 InvertedResidual and EfficientNet MBConv (stochastic depth is the
    identity in eval mode): `block` holds the layers that exist, numbered from 0."""

    def __init__(self, cin, kernel, expanded, cout, stride, act, squeeze, se_act, se_scale_act, eps):
        super().__init__()
        layers = [_conv_norm_act(cin, expanded, 1, act=act, eps=eps)] if expanded != cin else []
        layers.append(_conv_norm_act(expanded, expanded, kernel, stride, expanded, act, eps))
        if squeeze:
            layers.append(_SqueezeExcitation(expanded, squeeze, se_act, se_scale_act))
        layers.append(_conv_norm_act(expanded, cout, 1, eps=eps))
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return y + x if self.use_res else y


# torchvision's _mobilenet_v3_conf: (input channels, kernel, expanded, out, SE, activation, stride).
MOBILENET_V3_LARGE = [(16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2), (24, 3, 72, 24, False, "RE", 1),
                      (24, 5, 72, 40, True, "RE", 2), (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
                      (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1),
                      (80, 3, 184, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
                      (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1),
                      (112, 5, 672, 160, True, "HS", 2), (160, 5, 960, 160, True, "HS", 1),
                      (160, 5, 960, 160, True, "HS", 1)]
MOBILENET_V3_SMALL = [(16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2), (24, 3, 88, 24, False, "RE", 1),
                      (24, 5, 96, 40, True, "HS", 2), (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
                      (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1),
                      (48, 5, 288, 96, True, "HS", 2), (96, 5, 576, 96, True, "HS", 1), (96, 5, 576, 96, True, "HS", 1)]


class _MobileNetV3(nn.Module):
    """torchvision.models.MobileNetV3 (width 1.0): features.0 to features.N+1, classifier.0 and .3;
    batch norm eps 0.001."""

    def __init__(self, table, last_channel, classes=1000):
        super().__init__()
        features = [_conv_norm_act(3, table[0][0], 3, 2, act=nn.Hardswish, eps=0.001)]
        for cin, kernel, expanded, cout, se, nl, stride in table:
            act = nn.Hardswish if nl == "HS" else nn.ReLU
            squeeze = _make_divisible(expanded // 4) if se else 0
            features.append(_SEInvertedResidual(cin, kernel, expanded, cout, stride, act, squeeze, nn.ReLU,
                                                nn.Hardsigmoid, 0.001))
        features.append(_conv_norm_act(cout, 6 * cout, 1, act=nn.Hardswish, eps=0.001))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(6 * cout, last_channel), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(last_channel, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# torchvision's _efficientnet_conf for B0: (expand ratio, kernel, stride, input channels, out, layers).
EFFICIENTNET_B0 = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                   (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]


class _EfficientNet(nn.Module):
    """torchvision.models.EfficientNet with MBConv stages: features.0 (stem), features.1 to .7 (the
    stages), features.8, classifier.1; batch norm eps 1e-5 (torchvision's B0)."""

    def __init__(self, table, classes=1000):
        super().__init__()
        features = [_conv_norm_act(3, table[0][3], 3, 2, act=nn.SiLU)]
        for t, kernel, stride, cin, cout, n in table:
            stage = []
            for i in range(n):
                c = cin if i == 0 else cout
                stage.append(_SEInvertedResidual(c, kernel, _make_divisible(c * t), cout, stride if i == 0 else 1,
                                                 nn.SiLU, max(1, c // 4), nn.SiLU, nn.Sigmoid, 1e-5))
            features.append(nn.Sequential(*stage))
        features.append(_conv_norm_act(cout, 4 * cout, 1, act=nn.SiLU))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * cout, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@pytest.mark.parametrize("name, module", [
    ("mobilenet_v3_large", lambda: _MobileNetV3(MOBILENET_V3_LARGE, 1280)),
    ("mobilenet_v3_small", lambda: _MobileNetV3(MOBILENET_V3_SMALL, 1024)),
    ("efficientnet_b0", lambda: _EfficientNet(EFFICIENTNET_B0)),
])
def test_se_mobile_nets_match_torch(name, module):
    net = gn.load(SPECS / f"{name}.yaml")
    module = module()
    assert param_count(module) == net.graph.param_count(trainable=True)
    w = randomize_batch_norms(net.init_weights(seed=21), seed=22)
    _compare(net, load_state(module, w), _image(23), w)


# BERT and ViT. Their param names are Hugging Face's and torchvision's, so each module's own
# state_dict() loads as it is. Those libraries are not dependencies: the modules are rebuilt here from
# torch.nn with their module names, and tests/test_upstream_transformers.py checks the names against
# the libraries themselves (and the torch.nn Transformers through the command line). Outputs are
# compared on the reduced variants (2 layers, d_model 32); the full-size rebuilds, made on the meta
# device (no memory, no init), have the published counts.

_SMALL_ATTENTION = {"d_model": 32, "heads": 4, "d_ff": 64, "layers": 2}


def _torch_state(module, seed: int) -> dict:
    """The module's own state_dict() as NumPy arrays, for graphnet's params by the same names. The
    tensors torch initializes to a constant (zero biases, layer norms, ViT's class token) are
    redrawn first, so that one loaded into the wrong place changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if torch.all(p == p.flatten()[0]):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    module.eval()
    return {k: v.numpy().copy() for k, v in module.state_dict().items()}


def _same_params(net, state: dict) -> None:
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: p.type.shape for k, p in net.graph.params.items()}


class _BertSelfAttention(nn.Module):
    """Hugging Face's BertSelfAttention: separate query, key and value projections."""

    def __init__(self, d, heads):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.heads = heads

    def forward(self, x, bias):
        B, T, d = x.shape
        split = lambda t: t.view(B, T, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        y = nn.functional.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)),
                                                       split(self.value(x)), attn_mask=bias)
        return y.transpose(1, 2).reshape(B, T, d)


class _BertResidual(nn.Module):
    """Hugging Face's BertSelfOutput and BertOutput: dense, then LayerNorm of the sum with the input."""

    def __init__(self, d_in, d):
        super().__init__()
        self.dense = nn.Linear(d_in, d)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class _BertLayer(nn.Module):
    def __init__(self, d, heads, d_ff):
        super().__init__()
        self.attention = nn.Module()
        self.attention.self = _BertSelfAttention(d, heads)
        self.attention.output = _BertResidual(d, d)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(d, d_ff)
        self.output = _BertResidual(d_ff, d)

    def forward(self, x, bias):
        a = self.attention.output(self.attention.self(x, bias), x)
        return self.output(nn.functional.gelu(self.intermediate.dense(a)), a)


class _Bert(nn.Module):
    """Hugging Face's BertModel, with its module names, from torch.nn."""

    def __init__(self, vocab=30522, positions=512, types=2, d=768, heads=12, d_ff=3072, layers=12):
        super().__init__()
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(vocab, d)
        self.embeddings.position_embeddings = nn.Embedding(positions, d)
        self.embeddings.token_type_embeddings = nn.Embedding(types, d)
        self.embeddings.LayerNorm = nn.LayerNorm(d, eps=1e-12)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(_BertLayer(d, heads, d_ff) for _ in range(layers))
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(d, d)

    def forward(self, input_ids, token_type_ids, attention_mask):
        e = self.embeddings
        T = input_ids.shape[1]
        x = e.word_embeddings(input_ids) + e.token_type_embeddings(token_type_ids) + e.position_embeddings(torch.arange(T))
        x = e.LayerNorm(x)
        bias = ((1.0 - attention_mask.float()) * torch.finfo(torch.float32).min)[:, None, None, :]  # HF's extended mask
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x, torch.tanh(self.pooler.dense(x[:, 0]))


def test_bert_base_matches_torch():
    with torch.device("meta"):
        full = _Bert()
    assert param_count(full) == 109_482_240
    _same_params(gn.load(SPECS / "bert_base.yaml"), {k: v for k, v in full.state_dict().items()})
    net = gn.load(SPECS / "bert_base.yaml", {"vocab": 100, "max_positions": 16, **_SMALL_ATTENTION})
    module = _Bert(100, 16, 2, 32, 4, 64, 2)
    state = _torch_state(module, seed=33)
    _same_params(net, state)
    rng = np.random.default_rng(35)
    feed = {"input_ids": rng.integers(0, 100, (3, 9)), "token_type_ids": rng.integers(0, 2, (3, 9)),
            "attention_mask": np.ones((3, 9), np.int64)}
    feed["attention_mask"][1, 6:] = 0
    feed["attention_mask"][2, 2:] = 0
    ours = net.run(feed, state)
    with torch.no_grad():
        hidden, pooled = module(*(torch.from_numpy(feed[k]) for k in ("input_ids", "token_type_ids", "attention_mask")))
    np.testing.assert_allclose(ours["last_hidden_state"], hidden.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours["pooler_output"], pooled.numpy(), rtol=1e-4, atol=1e-5)


class _EncoderBlock(nn.Module):
    """torchvision's vision_transformer.EncoderBlock: pre-norm nn.MultiheadAttention and MLP."""

    def __init__(self, d, heads, d_ff):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, d_ff), nn.GELU(), nn.Dropout(0.0), nn.Linear(d_ff, d), nn.Dropout(0.0))

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class _VisionTransformer(nn.Module):
    """torchvision.models.VisionTransformer, with its module names, from torch.nn."""

    def __init__(self, image=(224, 224), patch=16, d=768, heads=12, d_ff=3072, layers=12, classes=1000):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, d, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.encoder = nn.Module()
        self.encoder.pos_embedding = nn.Parameter(
            torch.randn(1, (image[0] // patch) * (image[1] // patch) + 1, d) * 0.02)
        self.encoder.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", _EncoderBlock(d, heads, d_ff)) for i in range(layers)))
        self.encoder.ln = nn.LayerNorm(d, eps=1e-6)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(d, classes)))

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], 1) + self.encoder.pos_embedding
        return self.heads(self.encoder.ln(self.encoder.layers(x))[:, 0])


def test_vit_b16_matches_torch():
    with torch.device("meta"):
        full = _VisionTransformer()
    assert param_count(full) == 86_567_656
    _same_params(gn.load(SPECS / "vit_b16.yaml"), {k: v for k, v in full.state_dict().items()})
    net = gn.load(SPECS / "vit_b16.yaml", {"H": 32, "W": 48, "classes": 10, **_SMALL_ATTENTION})
    module = _VisionTransformer((32, 48), 16, 32, 4, 64, 2, 10)
    state = _torch_state(module, seed=36)
    _same_params(net, state)
    _compare(net, module, _image(39, (2, 3, 32, 48)), state)
