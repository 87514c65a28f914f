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
