"""torch.nn modules equal to graphnet's specs, with the specs' param names, so weights load by name.

Used two ways: the benchmark runs PyTorch eager (and onnxruntime on PyTorch's own ONNX export) on
these modules with graphnet's weights, and the tests use them as the numerical oracle
(tests/test_torch_reference.py, tests/benchmarks/test_torch_models.py). torchvision is not a
dependency, so its classes are rebuilt here from torch.nn with its module names.

`torch_module(model, weights, dims)` gives the module for a benchmark-suite spec with graphnet's
weights loaded; `dims` are the spec's dims (those the weights' shapes do not determine, such as
the transformer's head count).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def load_state(module: nn.Module, state: dict) -> nn.Module:
    """Load NumPy arrays by name (every one of the module's, no other) and switch to eval mode."""
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True)
    return module.eval()


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomize_batch_norms(weights: dict, seed: int) -> dict:
    """graphnet's init gives batch norm the identity (ones, zeros); random statistics make a
    comparison check that every batch-norm param is mapped to its place."""
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


def randomize_layer_norms(weights: dict, seed: int) -> dict:
    """Layer norms start as the identity too; random ones check that each is mapped to its place."""
    rng = np.random.default_rng(seed)
    out = dict(weights)
    for k, v in weights.items():
        if k.split(".")[-2:-1] in (["norm1"], ["norm2"], ["norm3"], ["ln_1"], ["ln_2"], ["ln"], ["LayerNorm"]):
            out[k] = (rng.uniform(0.5, 1.5, v.shape) if k.endswith("weight") else rng.normal(0, 0.1, v.shape)).astype(np.float32)
    return out


# -- MLP ------------------------------------------------------------------------------------------

class MLP(nn.Module):
    """specs/mlp.yaml: fc1, ReLU, fc2, ReLU, fc3 (graphnet's names, so the weights map one to one)."""

    def __init__(self, d_in=784, hidden=1024, classes=10):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(d_in, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


# -- ResNets (torchvision.models.resnet) ---------------------------------------------------------

def conv_bn(cin, cout, kernel, stride=1, groups=1, eps=1e-5):
    """A bias-free conv with "same" padding for odd kernels, then batch norm, as a list."""
    return [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=eps)]


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock: two 3x3 convs, the stride on the first."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, groups=1, base_width=64):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(inplanes, planes, 3, stride)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3)
        self.relu = nn.ReLU()
        self.downsample = (nn.Sequential(*conv_bn(inplanes, planes, 1, stride))
                           if stride != 1 or inplanes != planes else None)

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """torchvision.models.resnet.Bottleneck (v1.5: the stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, groups=1, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1, self.bn1 = conv_bn(inplanes, width, 1)
        self.conv2, self.bn2 = conv_bn(width, width, 3, stride, groups)
        self.conv3, self.bn3 = conv_bn(width, planes * 4, 1)
        self.relu = nn.ReLU()
        self.downsample = (nn.Sequential(*conv_bn(inplanes, planes * 4, 1, stride))
                           if stride != 1 or inplanes != planes * 4 else None)

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """torchvision.models.resnet.ResNet: 7x7 stem, four stages of `block`, average pool, fc."""

    def __init__(self, block, layers, groups=1, width_per_group=64, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                blocks.append(block(inplanes, planes, 2 if i > 0 and j == 0 else 1, groups, width_per_group))
                inplanes = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# -- MobileNet V2 (torchvision.models.mobilenet_v2) -----------------------------------------------

# MobileNet V2's Table 2: (t, c, n, s) per row.
MOBILENET_V2_TABLE = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                      (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2 (width 1.0): features.0 to features.18, classifier."""

    def __init__(self, classes=1000):
        super().__init__()
        features = [nn.Sequential(*conv_bn(3, 32, 3, 2), nn.ReLU6())]
        cin = 32
        for t, c, n, s in MOBILENET_V2_TABLE:
            for i in range(n):
                stride, hidden = s if i == 0 else 1, cin * t
                layers = [nn.Sequential(*conv_bn(cin, hidden, 1), nn.ReLU6())] if t != 1 else []
                layers += [nn.Sequential(*conv_bn(hidden, hidden, 3, stride, hidden), nn.ReLU6()),
                           *conv_bn(hidden, c, 1)]
                block = nn.Module()
                block.conv, block.use_res = nn.Sequential(*layers), stride == 1 and cin == c
                features.append(block)
                cin = c
        features.append(nn.Sequential(*conv_bn(320, 1280, 1), nn.ReLU6()))
        self.features = nn.ModuleList(features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        for f in self.features:
            x = f(x) if isinstance(f, nn.Sequential) else (x + f.conv(x) if f.use_res else f.conv(x))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


# -- Transformer encoder (torch.nn.TransformerEncoder) -------------------------------------------
# specs/transformer_encoder.yaml has torch's param names (in_proj_weight packing q, k and v), so
# graphnet's weights load into it as they are.

def transformer_encoder(d_model=512, heads=8, d_ff=2048, layers=6) -> nn.TransformerEncoder:
    """specs/transformer_encoder.yaml: post-norm layers, ReLU, dropout 0.1 (the identity in eval)."""
    layer = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout=0.1, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


# -- LSTM ------------------------------------------------------------------------------------------

class LSTM(nn.LSTM):
    """specs/lstm.yaml: torch.nn.LSTM(batch_first=True) returning (y, h_n, c_n) as the spec does."""

    def __init__(self, d_in=128, hidden=256, layers=2):
        super().__init__(d_in, hidden, num_layers=layers, batch_first=True)

    def forward(self, x):
        y, (h_n, c_n) = super().forward(x)
        return y, h_n, c_n


# -- the benchmark suite's models -----------------------------------------------------------------

def _mlp(w, dims):
    hidden, d_in = w["fc1.weight"].shape
    return MLP(d_in, hidden, w["fc3.weight"].shape[0]), w


def _resnet18(w, dims):
    return ResNet(BasicBlock, (2, 2, 2, 2), classes=w["fc.weight"].shape[0]), w


def _mobilenet_v2(w, dims):
    return MobileNetV2(w["classifier.1.weight"].shape[0]), w


def _transformer_encoder(w, dims):
    return transformer_encoder(dims["d_model"], dims["heads"], dims["d_ff"], dims["layers"]), w


def _lstm(w, dims):
    layers = sum(1 for k in w if k.startswith("weight_ih_l"))
    four_hidden, d_in = w["weight_ih_l0"].shape
    return LSTM(d_in, four_hidden // 4, layers), w


BUILDERS = {"mlp": _mlp, "resnet18": _resnet18, "mobilenet_v2": _mobilenet_v2,
            "transformer_encoder": _transformer_encoder, "lstm": _lstm}


def torch_module(model: str, weights: dict, dims: dict) -> nn.Module:
    """The torch.nn module equal to specs/MODEL.yaml, with graphnet's `weights` loaded, in eval mode.
    Its forward takes the spec's inputs in order and returns its outputs in order (a tuple when
    there are several). Raises KeyError for a spec without a torch equivalent here."""
    module, state = BUILDERS[model](weights, dims)
    return load_state(module, state)
