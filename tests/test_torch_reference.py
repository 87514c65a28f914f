"""PyTorch as the oracle: the reference modules have our parameter counts and, with our weights
mapped in by name, compute the same outputs. PyTorch is an optional test dependency
(`pip install torch==2.13.0`); without it these tests are skipped and say so."""

from pathlib import Path

import numpy as np
import pytest

import graphnet as gn

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
nn = torch.nn
SPECS = Path(__file__).resolve().parent.parent / "specs"


def _load(module, state: dict):
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True)
    return module.eval()


def _compare(net, module, x: np.ndarray, weights):
    ours = next(iter(net.run({next(iter(net.inputs)): x}, weights).values()))
    with torch.no_grad():
        theirs = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_mlp_matches_torch():
    net = gn.load(SPECS / "mlp.yaml")
    module = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    assert sum(p.numel() for p in module.parameters()) == net.graph.param_count()
    w = net.init_weights(seed=2)
    state = {f"{i}.{kind}": w[f"fc{j}.{kind}"] for j, i in ((1, 0), (2, 2), (3, 4)) for kind in ("weight", "bias")}
    _compare(net, _load(module, state), np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32), w)


def test_lenet5_matches_torch():
    net = gn.load(SPECS / "lenet5.yaml")
    module = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                           nn.AvgPool2d(2), nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(), nn.Linear(120, 84),
                           nn.Tanh(), nn.Linear(84, 10))
    assert sum(p.numel() for p in module.parameters()) == net.graph.param_count()
    w = net.init_weights(seed=3)
    names = {"c1": 0, "c3": 3, "c5": 6, "f6": 9, "output": 11}
    state = {f"{i}.{kind}": w[f"{ours}.{kind}"] for ours, i in names.items() for kind in ("weight", "bias")}
    _compare(net, _load(module, state), np.random.default_rng(1).standard_normal((2, 1, 32, 32)).astype(np.float32), w)


def test_transformer_encoder_matches_torch():
    net = gn.load(SPECS / "transformer_encoder.yaml")
    layer = nn.TransformerEncoderLayer(512, 8, 2048, dropout=0.1, batch_first=True)
    module = nn.TransformerEncoder(layer, 6, enable_nested_tensor=False)
    assert sum(p.numel() for p in module.parameters()) == net.graph.param_count()
    w = net.init_weights(seed=4)
    state = {}
    for i in range(6):
        ours, theirs = f"layers.{i}.", f"layers.{i}."
        attn = ours + "self_attn."
        state[theirs + "self_attn.in_proj_weight"] = np.concatenate([w[f"{attn}{p}_proj.weight"] for p in "qkv"])
        state[theirs + "self_attn.in_proj_bias"] = np.concatenate([w[f"{attn}{p}_proj.bias"] for p in "qkv"])
        for kind in ("weight", "bias"):
            state[f"{theirs}self_attn.out_proj.{kind}"] = w[f"{attn}out_proj.{kind}"]
            state[f"{theirs}linear1.{kind}"] = w[f"{ours}ffn.linear1.{kind}"]
            state[f"{theirs}linear2.{kind}"] = w[f"{ours}ffn.linear2.{kind}"]
            state[f"{theirs}norm1.{kind}"] = w[f"{ours}norm1.{kind}"]
            state[f"{theirs}norm2.{kind}"] = w[f"{ours}norm2.{kind}"]
    x = np.random.default_rng(2).standard_normal((2, 9, 512)).astype(np.float32)
    _compare(net, _load(module, state), x, w)


# ImageNet CNNs. torchvision is not a dependency, so the reference modules below rebuild its
# classes from torch.nn with its module names; each must have torchvision's published parameter
# count (tests/test_specs.py), which checks the rebuild as much as our spec.

def _with_random_batch_norm(weights: dict, seed: int) -> dict:
    # Our init gives batch norm the identity (ones, zeros); random statistics make the comparison
    # check that every BN param is mapped to its place.
    rng = np.random.default_rng(seed)
    out = dict(weights)
    for name in weights:
        if name.endswith(".running_mean"):
            p, shape = name[: -len("running_mean")], weights[name].shape
            out[p + "weight"] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
            out[p + "bias"] = rng.normal(0, 0.1, shape).astype(np.float32)
            out[p + "running_mean"] = rng.normal(0, 0.1, shape).astype(np.float32)
            out[p + "running_var"] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return out


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _image(seed: int, shape=(2, 3, 224, 224)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _conv_bn(cin, cout, kernel, stride=1, groups=1, eps=1e-5):
    return [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=eps)]


class _Bottleneck(nn.Module):
    """torchvision.models.resnet.Bottleneck (v1.5: the stride on the 3x3 conv)."""

    def __init__(self, inplanes, planes, stride, groups, base_width):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1, self.bn1 = _conv_bn(inplanes, width, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride, groups)
        self.conv3, self.bn3 = _conv_bn(width, planes * 4, 1)
        self.relu = nn.ReLU()
        self.downsample = (nn.Sequential(*_conv_bn(inplanes, planes * 4, 1, stride))
                           if stride != 1 or inplanes != planes * 4 else None)

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class _ResNet(nn.Module):
    """torchvision.models.resnet.ResNet with Bottleneck blocks."""

    def __init__(self, layers, groups=1, width_per_group=64, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                blocks.append(_Bottleneck(inplanes, planes, 2 if i > 0 and j == 0 else 1, groups, width_per_group))
                inplanes = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@pytest.mark.parametrize("name, layers, groups, width", [("resnet50", (3, 4, 6, 3), 1, 64),
                                                         ("resnext50_32x4d", (3, 4, 6, 3), 32, 4)])
def test_bottleneck_resnets_match_torch(name, layers, groups, width):
    # Names are torchvision's: the weights map one to one. A smaller image keeps it quick (the
    # adaptive average pool makes the torch model size-agnostic).
    net = gn.load(SPECS / f"{name}.yaml", {"H": 96, "W": 128})
    module = _ResNet(layers, groups, width)
    assert _params(module) == net.graph.param_count(trainable=True)
    w = _with_random_batch_norm(net.init_weights(seed=5), seed=6)
    _compare(net, _load(module, w), _image(7, (2, 3, 96, 128)), w)


# MobileNet V2's Table 2: (t, c, n, s) per row.
MOBILENET_V2_TABLE = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                      (6, 320, 1, 1)]


class _MobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2 (width 1.0): features.0 to features.18, classifier."""

    def __init__(self, classes=1000):
        super().__init__()
        features = [nn.Sequential(*_conv_bn(3, 32, 3, 2), nn.ReLU6())]
        cin = 32
        for t, c, n, s in MOBILENET_V2_TABLE:
            for i in range(n):
                stride, hidden = s if i == 0 else 1, cin * t
                layers = [nn.Sequential(*_conv_bn(cin, hidden, 1), nn.ReLU6())] if t != 1 else []
                layers += [nn.Sequential(*_conv_bn(hidden, hidden, 3, stride, hidden), nn.ReLU6()),
                           *_conv_bn(hidden, c, 1)]
                block = nn.Module()
                block.conv, block.use_res = nn.Sequential(*layers), stride == 1 and cin == c
                features.append(block)
                cin = c
        features.append(nn.Sequential(*_conv_bn(320, 1280, 1), nn.ReLU6()))
        self.features = nn.ModuleList(features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        for f in self.features:
            x = f(x) if isinstance(f, nn.Sequential) else (x + f.conv(x) if f.use_res else f.conv(x))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _mobilenet_v2_torch_name(ours: str) -> str:
    """Our param name -> torchvision's: stem/stageR.J/conv_last are features.0/1-17/18; stage1
    (t = 1) has no expansion layer, so torchvision numbers its layers from 0 where we skip "0"."""
    head, rest = ours.split(".", 1)
    if head == "stem":
        return "features.0." + rest
    if head == "conv_last":
        return "features.18." + rest
    if head == "classifier":
        return "classifier.1." + rest
    r = int(head[len("stage"):])
    j, rest = rest.split(".", 1)
    index = 1 + sum(n for _, _, n, _ in MOBILENET_V2_TABLE[: r - 1]) + int(j)
    if MOBILENET_V2_TABLE[r - 1][0] == 1:
        layer, tail = rest[len("conv."):].split(".", 1)
        rest = f"conv.{int(layer) - 1}.{tail}"
    return f"features.{index}.{rest}"


def test_mobilenet_v2_matches_torch():
    net = gn.load(SPECS / "mobilenet_v2.yaml")
    module = _MobileNetV2()
    assert _params(module) == net.graph.param_count(trainable=True)
    w = _with_random_batch_norm(net.init_weights(seed=8), seed=9)
    state = {_mobilenet_v2_torch_name(k): v for k, v in w.items()}
    _compare(net, _load(module, state), _image(10), w)


class _MobileNetV1(nn.Module):
    """MobileNet V1 as the common PyTorch implementations build it, with our module names."""

    def __init__(self, classes=1000):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(3, 32, 3, 2)
        blocks, cin = [], 32
        for c, s in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]:
            block = nn.Module()
            block.conv1, block.bn1 = _conv_bn(cin, cin, 3, s, groups=cin)
            block.conv2, block.bn2 = _conv_bn(cin, c, 1)
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
    assert _params(module) == net.graph.param_count(trainable=True)
    w = _with_random_batch_norm(net.init_weights(seed=11), seed=12)
    _compare(net, _load(module, w), _image(13), w)


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
    assert _params(module) == net.graph.param_count(trainable=True)
    w = _with_random_batch_norm(net.init_weights(seed=14), seed=15)
    _compare(net, _load(module, w), _image(16, (2, 3, 207, 175)), w)


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

    def state_from(self, w: dict) -> dict:
        """Our conv1..conv5, fc1..fc3 -> the Sequential indices (features.0, ..., classifier.6)."""
        names = {}
        for part, kind, prefix in (("features", nn.Conv2d, "conv"), ("classifier", nn.Linear, "fc")):
            layers = [i for i, m in enumerate(getattr(self, part)) if isinstance(m, kind)]
            names.update({f"{prefix}{n + 1}": f"{part}.{i}" for n, i in enumerate(layers)})
        return {f"{theirs}.{kind}": w[f"{ours}.{kind}"] for ours, theirs in names.items() for kind in ("weight", "bias")}


def test_alexnet_matches_torch():
    # With torchvision's AdaptiveAvgPool2d((6, 6)), which the spec leaves out as the identity at
    # 224x224.
    net = gn.load(SPECS / "alexnet.yaml")
    module = _AlexNetStyle([(3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1),
                            (256, 256, 3, 1, 1)], False, [(9216, 4096), (4096, 4096), (4096, 1000)],
                           dropout_first=True, avgpool=True)
    assert _params(module) == net.graph.param_count(trainable=True)
    w = net.init_weights(seed=17)
    _compare(net, _load(module, module.state_from(w)), _image(18), w)


def test_zfnet_matches_torch():
    # Checks the ceil_mode pools against torch's (110 -> 55, 26 -> 13, 13 -> 6).
    net = gn.load(SPECS / "zfnet.yaml")
    module = _AlexNetStyle([(3, 96, 7, 2, 1), (96, 256, 5, 2, 0), (256, 384, 3, 1, 1), (384, 384, 3, 1, 1),
                            (384, 256, 3, 1, 1)], True, [(9216, 4096), (4096, 4096), (4096, 1000)],
                           dropout_first=False, avgpool=False)
    assert _params(module) == net.graph.param_count(trainable=True)
    w = net.init_weights(seed=19)
    _compare(net, _load(module, module.state_from(w)), _image(20), w)
