"""Train mode (graphnet/transforms/train_mode.py) against PyTorch's: torchvision's resnet18 in
train() mode gives the same logits on NumPy and in onnxruntime from the train-mode export, and the
same running_mean, running_var and num_batches_tracked of every batch norm after one and after
three forwards; momentum=None is torch's cumulative average. Dropout drops at its rate, scales
what it keeps, and is the same on NumPy and onnxruntime for the masks the seed draws. The user's
graph is never changed and eval mode is what it was."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import graphnet as gn
from graphnet.transforms.train_mode import apply_mode

torch = pytest.importorskip("torch", reason="PyTorch is the oracle of train mode (pip install '.[torch]')")

SPECS = gn.__file__.rsplit("/", 2)[0] + "/specs"


def _close(got, want, what: str):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


def _ort(model, feed: dict) -> dict:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))


def _buffers(module) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in module.state_dict().items()
            if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


@pytest.fixture(scope="module")
def resnet():
    models = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    module = models.resnet18(weights=None)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():   # running statistics far from the batch's, so that using them would show
        for name, t in module.state_dict().items():
            if name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=gen))
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith(("bn1.weight", "bn2.weight", "bn1.bias", "bn2.bias")):
                t.copy_(t + 0.1 * torch.randn(t.shape, generator=gen))
    weights = {k: v.numpy().copy() for k, v in module.state_dict().items()}
    net = gn.load(f"{SPECS}/resnet18.yaml", dims={"H": 32, "W": 32})
    rng = np.random.default_rng(3)
    batches = [rng.standard_normal((4, 3, 32, 32)).astype(np.float32) * (1 + i) + i for i in range(3)]
    return module.train(), net, weights, batches


def test_resnet18_train_forward_and_running_statistics_equal_torch(resnet):
    module, net, weights, batches = resnet
    state = dict(weights)
    _, extras = net.in_mode("train")
    assert len(extras.state) == 3 * 20          # 20 batch norms, 17 in the blocks and 3 downsamples
    for step, image in enumerate(batches):
        with torch.no_grad():
            want = module(torch.from_numpy(image)).numpy()
        out = net.run({"image": image}, state, mode="train")
        _close(out["logits"], want, f"logits at step {step}")
        state.update({p: out[o] for p, o in extras.state.items()})
        theirs = _buffers(module)
        assert set(theirs) == set(extras.state)
        if step in (0, 2):   # after one and after three forwards
            for name, value in theirs.items():
                assert state[name].dtype == value.dtype, name
                _close(state[name], value, f"{name} after {step + 1} forwards")
    assert int(state["layer3.1.bn2.num_batches_tracked"]) == 3
    assert not np.allclose(state["bn1.running_mean"], weights["bn1.running_mean"])


def test_resnet18_train_mode_export_equals_numpy_and_records_the_mode(resnet):
    module, net, weights, batches = resnet
    model = net.to_onnx(weights, mode="train")
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["graphnet.mode"] == "train" and "bn1.running_var" in meta["graphnet.state"]
    got = _ort(model, {"image": batches[0]})
    want = net.run({"image": batches[0]}, weights, mode="train")
    assert set(got) == set(want) and len(got) == 1 + 60
    for name in want:
        _close(got[name], want[name], name)
    assert {p.key: p.value for p in net.to_onnx(weights).metadata_props}["graphnet.mode"] == "eval"


def test_the_users_graph_is_not_changed_and_eval_mode_is_inference(resnet):
    module, net, weights, batches = resnet
    nodes, params, outputs = list(net.graph.nodes), dict(net.graph.params), dict(net.graph.outputs)
    net.in_mode("train")
    assert net.graph.nodes == nodes and net.graph.params == params and net.graph.outputs == outputs
    assert "batch_norm" in {n.op.name for n in nodes}
    module.eval()
    try:
        with torch.no_grad():
            want = module(torch.from_numpy(batches[0])).numpy()
    finally:
        module.train()
    now = {k: v.numpy() for k, v in module.state_dict().items()}   # as the forwards above left them
    _close(net.run({"image": batches[0]}, now, mode="eval")["logits"], want, "eval logits")


BN_SPEC = """graphnet: 1
name: bn_drop
use: [std]
dims: {B: ~}
inputs:
  x: [B, 3, 5]
nodes:
  - {name: bn, block: std.batch_norm}
  - {name: flat, op: flatten}
  - {name: drop, op: dropout, attrs: {ratio: 0.25}}
outputs: {y: drop}
"""


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "bn_drop.yaml"
    path.write_text(BN_SPEC)
    net = gn.load(path)
    rng = np.random.default_rng(4)
    weights = {"bn.weight": rng.random(3, dtype=np.float32) + 0.5, "bn.bias": rng.standard_normal(3).astype(np.float32),
               "bn.running_mean": rng.standard_normal(3).astype(np.float32),
               "bn.running_var": rng.random(3, dtype=np.float32) + 0.5}
    return net, weights


def test_momentum_none_is_torchs_cumulative_average(small):
    net, weights = small
    graph, extras = apply_mode(net.graph, "train", seed=0, momentum=None)
    bn = torch.nn.BatchNorm1d(3, momentum=None).train()
    with torch.no_grad():
        for k in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, k).copy_(torch.from_numpy(weights[f"bn.{k}"]))
    state = extras.complete(weights)
    assert state["bn.num_batches_tracked"].dtype == np.int64 and state["bn.num_batches_tracked"] == 0
    session_net = gn.Network(graph)
    for step in range(3):
        x = np.random.default_rng(step).standard_normal((6, 3, 5)).astype(np.float32) * (step + 1)
        masks = extras.dropout_masks({"B": 6}, step)
        out = session_net.run({"x": x, **masks}, state)
        state.update({p: out[o] for p, o in extras.state.items()})
        with torch.no_grad():
            want = bn(torch.from_numpy(x)).flatten(1).numpy() * masks["drop#mask"] / 0.75
        _close(out["y"], want, f"step {step}")
    for k in ("running_mean", "running_var", "num_batches_tracked"):
        _close(state[f"bn.{k}"], getattr(bn, k).numpy(), k)


def test_dropout_drops_at_its_rate_and_scales_what_it_keeps(tmp_path):
    path = tmp_path / "drop.yaml"
    path.write_text("graphnet: 1\nname: drop\ndims: {B: ~}\ninputs:\n  x: [B, 1000]\nnodes:\n"
                    "  - {name: drop, op: dropout, attrs: {ratio: 0.3}}\noutputs: {y: drop}\n")
    net = gn.load(path)
    x = np.random.default_rng(5).random((20, 1000), dtype=np.float32) + 1.0     # no zeros of its own
    session = net.session(mode="train", seed=7)
    first, second = session.run({"x": x})["y"], session.run({"x": x})["y"]
    dropped = first == 0
    # 20000 draws at p = 0.3: the rate is within 5 standard deviations (0.016) of it
    assert abs(dropped.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / dropped.size)
    np.testing.assert_array_equal(first[~dropped], (x * np.float32(1 / 0.7))[~dropped])   # x / (1 - p)
    assert not np.array_equal(dropped, second == 0)                     # each run draws its own mask
    np.testing.assert_array_equal(net.run({"x": x}, mode="train", seed=7)["y"], first)   # the seed repeats it
    assert not np.array_equal(net.run({"x": x}, mode="train", seed=8)["y"] == 0, dropped)
    np.testing.assert_array_equal(net.run({"x": x})["y"], x)            # eval: the identity
    # onnxruntime, fed the masks the seed draws, computes the same numbers
    _, extras = net.in_mode("train", seed=7)
    model = net.to_onnx(mode="train", seed=7)
    masks = extras.dropout_masks({"B": 20}, step=0)
    assert [i.name for i in model.graph.input] == ["x", "drop#mask"]
    np.testing.assert_array_equal(_ort(model, {"x": x, **masks})["y"], first)
    # a mask given among the inputs is used as given
    keep_all = {"drop#mask": np.ones((20, 1000), bool)}
    np.testing.assert_array_equal(session.run({"x": x, **keep_all})["y"], x * np.float32(1 / 0.7))


def test_a_bad_mode_and_a_batch_of_one_value_are_refused(tmp_path, small):
    net, weights = small
    with pytest.raises(ValueError, match="mode must be 'eval' .* or 'train' .*, got 'training'"):
        net.run({"x": np.zeros((2, 3, 5), np.float32)}, weights, mode="training")
    path = tmp_path / "one.yaml"
    path.write_text("graphnet: 1\nname: one\nuse: [std]\ninputs:\n  x: [1, 3]\nnodes:\n"
                    "  - {name: bn, block: std.batch_norm}\noutputs: {y: bn}\n")
    with pytest.raises(gn.SpecError, match=r"one.yaml:7:5: error: node 'bn.bn' \(batch_norm\): train mode "
                                           r"needs more than one value per channel"):
        gn.load(path).run({"x": np.zeros((1, 3), np.float32)}, mode="train")


def test_each_batch_norm_keeps_its_own_momentum_as_torchs_layers_do(tmp_path):
    # nn.BatchNorm1d(momentum=0.3) beside one with the default 0.1: std.batch_norm's momentum is
    # torch's, carried by the op as ONNX's 1 - momentum, and train mode updates each by its own
    path = tmp_path / "bn2.yaml"
    path.write_text("graphnet: 1\nname: bn2\nuse: [std]\ndims: {B: ~}\ninputs:\n  x: [B, 3, 5]\nnodes:\n"
                    "  - {name: a, block: std.batch_norm, args: {momentum: 0.3}}\n"
                    "  - {name: b, block: std.batch_norm}\noutputs: {y: b}\n")
    net = gn.load(path)
    assert [n.op.momentum for n in net.graph.nodes] == pytest.approx([0.7, 0.9])
    graph, extras = apply_mode(net.graph, "train", seed=0)
    bns = torch.nn.Sequential(torch.nn.BatchNorm1d(3, momentum=0.3), torch.nn.BatchNorm1d(3)).train()
    state = extras.complete({f"{'ab'[i]}.{k}": v.detach().numpy().copy()
                             for i, m in enumerate(bns) for k, v in m.state_dict().items()
                             if k != "num_batches_tracked"})
    for step in range(2):
        x = np.random.default_rng(step).standard_normal((6, 3, 5)).astype(np.float32) * 2 + 1
        out = gn.Network(graph).run({"x": x}, state)
        state.update({p: out[o] for p, o in extras.state.items()})
        with torch.no_grad():
            _close(out["y"], bns(torch.from_numpy(x)).numpy(), f"step {step}")
    for i, m in enumerate(bns):
        for k in ("running_mean", "running_var"):
            _close(state[f"{'ab'[i]}.{k}"], getattr(m, k).numpy(), f"{'ab'[i]}.{k}")
