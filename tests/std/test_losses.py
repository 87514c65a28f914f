"""The std losses (graphnet/std/losses.yaml) equal torch.nn.functional's, for every reduction and
option, on the NumPy back end and in onnxruntime from the exported model, with logits of +-1e4 and
probabilities of exactly 0 and 1 among the inputs.

Every case is one node of one spec, so the whole table is loaded, run and exported once; each case
is then its own test, comparing its output with torch's from the same arrays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

import graphnet as gn

torch = pytest.importorskip("torch", reason="PyTorch is the oracle of the losses (pip install '.[torch]')")
F = torch.nn.functional
import onnxruntime as ort

B, C, S = 4, 5, 3
WEIGHT = [1.0, 2.0, 0.5, 1.5, 3.0]      # per class (C)
LAST = [0.5, 2.0, 1.25]                  # per entry of the last axis (S), for the binary losses


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(15)
    f32 = np.float32
    logits = rng.standard_normal((B, C, S)).astype(f32) * 3
    logits[0] *= 1e4 / np.abs(logits[0]).max()           # a sample of extreme logits, +-1e4
    logits[1, :, 0] = [1e4, -1e4, 0.0, 1e4, -1e4]
    labels = rng.integers(0, C, (B, S))
    labels[2, 1] = -100                                   # PyTorch's default ignore_index
    soft = rng.random((B, C, S)).astype(f32)
    soft /= soft.sum(axis=1, keepdims=True)
    p = rng.random((B, C, S)).astype(f32)
    p[0, 0] = [0.0, 1.0, 0.0]                             # certain predictions: the logs clamp at -100
    y = (rng.random((B, C, S)) < 0.5).astype(f32)
    y[1] = rng.random((C, S))                             # soft targets too
    kl_target = soft.copy()
    kl_target[0, :2] = 0.0                                # target zeros add nothing
    return {
        "logits": logits, "logits2": logits[:, :, 0].copy(),
        "labels": labels, "labels2": labels[:, 1].copy(), "classes": np.where(labels < 0, 2, labels),
        "soft": soft, "soft2": soft[:, :, 0].copy(),
        "x": rng.standard_normal((B, C, S)).astype(f32) * 2, "t": rng.standard_normal((B, C, S)).astype(f32),
        "p": p, "y": y,
        "log_q": np.log(soft).astype(f32) - rng.random((B, 1, S)).astype(f32),
        "kl_target": kl_target, "kl_log_target": np.log(soft + 0.1).astype(f32),
    }


INPUTS = {"logits": "[B, C, S]", "logits2": "[B, C]", "labels": "{shape: [B, S], dtype: int64}",
          "labels2": "{shape: [B], dtype: int64}",
          "classes": "{shape: [B, S], dtype: int64}", "soft": "[B, C, S]", "soft2": "[B, C]",
          "x": "[B, C, S]", "t": "[B, C, S]",
          "p": "[B, C, S]", "y": "[B, C, S]", "log_q": "[B, C, S]", "kl_target": "[B, C, S]",
          "kl_log_target": "[B, C, S]"}


@dataclass(frozen=True)
class Case:
    block: str
    input: str
    target: str
    args: dict = field(default_factory=dict)


def _cases() -> dict[str, tuple[Case, str]]:
    base = [
        Case("mse_loss", "x", "t"), Case("l1_loss", "x", "t"),
        Case("huber_loss", "x", "t"), Case("huber_loss", "x", "t", {"delta": 0.5}),
        Case("smooth_l1_loss", "x", "t"), Case("smooth_l1_loss", "x", "t", {"beta": 0.5}),
        Case("smooth_l1_loss", "x", "t", {"beta": 0.0}),
        Case("nll_loss", "log_q", "labels"), Case("nll_loss", "log_q", "labels", {"weight": WEIGHT}),
        Case("nll_loss", "log_q", "classes", {"ignore_index": 2}),
        Case("cross_entropy", "logits", "labels"), Case("cross_entropy", "logits2", "labels2"),
        Case("cross_entropy", "logits", "labels", {"weight": WEIGHT}),
        Case("cross_entropy", "logits", "classes", {"ignore_index": 3}),
        Case("cross_entropy", "logits", "labels", {"label_smoothing": 0.1}),
        Case("cross_entropy", "logits", "classes", {"weight": WEIGHT, "ignore_index": 1, "label_smoothing": 0.25}),
        Case("cross_entropy", "logits2", "labels2", {"weight": WEIGHT, "label_smoothing": 0.2}),
        Case("cross_entropy_probs", "logits", "soft"), Case("cross_entropy_probs", "logits2", "soft2"),
        Case("cross_entropy_probs", "logits", "soft", {"weight": WEIGHT}),
        Case("cross_entropy_probs", "logits", "soft", {"weight": WEIGHT, "label_smoothing": 0.3}),
        Case("binary_cross_entropy", "p", "y"), Case("binary_cross_entropy", "p", "y", {"weight": LAST}),
        Case("binary_cross_entropy_with_logits", "logits", "y"),
        Case("binary_cross_entropy_with_logits", "logits", "y", {"weight": LAST}),
        Case("binary_cross_entropy_with_logits", "logits", "y", {"pos_weight": LAST}),
        Case("binary_cross_entropy_with_logits", "logits", "y", {"weight": LAST, "pos_weight": [3.0, 0.5, 1.0]}),
        Case("kl_div", "log_q", "kl_target"), Case("kl_div", "log_q", "kl_log_target", {"log_target": True}),
    ]
    out = {}
    for case in base:
        reductions = ["none", "mean", "sum"] + (["batchmean"] if case.block == "kl_div" else [])
        for reduction in reductions:
            key = f"{case.block}-{case.input}-{case.target}-" + "-".join(f"{k}={v}" for k, v in case.args.items())
            out[f"{key}-{reduction}".replace("--", "-")] = (case, reduction)
    return out


CASES = _cases()


def _spec_text() -> str:
    lines = ["graphnet: 1", "name: losses", "use: [std]", f"dims: {{B: ~, C: {C}, S: {S}}}", "inputs:"]
    lines += [f"  {k}: {v}" for k, v in INPUTS.items()]
    lines.append("nodes:")
    for i, (case, reduction) in enumerate(CASES.values()):
        args = json.dumps({**case.args, "reduction": reduction})
        lines.append(f"  - {{name: case{i}, block: std.{case.block}, inputs: {{input: {case.input}, "
                     f"target: {case.target}}}, args: {args}}}")
    lines.append("outputs:")
    lines += [f"  case{i}: case{i}" for i in range(len(CASES))]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    path = tmp_path_factory.mktemp("losses") / "losses.yaml"
    path.write_text(_spec_text())
    net = gn.load(path)
    arrays = _arrays()
    numpy_out = net.run(arrays)
    session = ort.InferenceSession(net.to_onnx().SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ort_out = dict(zip(names, session.run(None, arrays)))
    return arrays, numpy_out, ort_out


def _torch_loss(case: Case, reduction: str, arrays) -> np.ndarray:
    return _torch_call(case, reduction, torch.from_numpy(arrays[case.input]),
                       torch.from_numpy(arrays[case.target])).numpy()


def _torch_call(case: Case, reduction: str, x, target):
    kwargs = {k: (torch.tensor(v) if isinstance(v, list) else v) for k, v in case.args.items()}
    fn = getattr(F, "cross_entropy" if case.block == "cross_entropy_probs" else case.block)
    if case.block in ("binary_cross_entropy", "binary_cross_entropy_with_logits") and "weight" in kwargs:
        kwargs["weight"] = kwargs["weight"].expand_as(x)
    return fn(x, target, reduction=reduction, **kwargs)


# torch warns that kl_div's mean will become batchmean; the cases test today's mean, and batchmean
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
@pytest.mark.parametrize("key", list(CASES))
def test_loss_equals_torch(results, key):
    arrays, numpy_out, ort_out = results
    case, reduction = CASES[key]
    output = f"case{list(CASES).index(key)}"
    want = _torch_loss(case, reduction, arrays)
    assert np.isfinite(want).all()
    scale = max(1.0, float(np.abs(want).max()))
    for got in (numpy_out[output], ort_out[output]):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * scale)


def _gradient_spec_text() -> str:
    """Every case again, each reading inputs of its own (`in<i>`, and `target<i>` for a float target),
    so one vjp gives each case's gradients apart."""
    lines = ["graphnet: 1", "name: loss_gradients", "use: [std]", f"dims: {{B: ~, C: {C}, S: {S}}}", "inputs:"]
    lines += [f"  {k}: {v}" for k, v in INPUTS.items() if "int64" in v]     # class labels, shared
    nodes = []
    for i, (case, reduction) in enumerate(CASES.values()):
        lines.append(f"  in{i}: {INPUTS[case.input]}")
        target = case.target
        if "int64" not in INPUTS[target]:
            lines.append(f"  target{i}: {INPUTS[target]}")
            target = f"target{i}"
        args = json.dumps({**case.args, "reduction": reduction})
        nodes.append(f"  - {{name: case{i}, block: std.{case.block}, inputs: {{input: in{i}, target: {target}}}, "
                     f"args: {args}}}")
    lines += ["nodes:", *nodes, "outputs:", *[f"  case{i}: case{i}" for i in range(len(CASES))]]
    return "\n".join(lines) + "\n"


def _gradient_feed(arrays) -> dict[str, np.ndarray]:
    feed = {}
    for i, (case, _) in enumerate(CASES.values()):
        feed[f"in{i}"] = arrays[case.input]
        feed[f"target{i}" if "int64" not in INPUTS[case.target] else case.target] = arrays[case.target]
    return feed


@pytest.fixture(scope="module")
def gradients(tmp_path_factory):
    """Each case's gradients for a random cotangent: (cotangents, NumPy's, onnxruntime's), the last
    two by input name, from Network.vjp and from the exported gradient graph."""
    from graphnet.backends.onnx_export import to_onnx
    from graphnet.transforms.autodiff import COTANGENT, GRAD
    path = tmp_path_factory.mktemp("loss_gradients") / "loss_gradients.yaml"
    path.write_text(_gradient_spec_text())
    net = gn.load(path)
    feed = _gradient_feed(_arrays())
    outputs = net.run(feed)
    rng = np.random.default_rng(16)
    cotangents = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in outputs.items()}
    _, _, numpy_grads = net.vjp(feed, None, cotangents)
    model = to_onnx(net.gradient_graph(), {})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    given = {**feed, **{COTANGENT + k: c for k, c in cotangents.items()}}
    got = session.run(None, {i.name: given[i.name] for i in session.get_inputs()})
    ort_grads = {k[len(GRAD):]: v for k, v in zip([o.name for o in session.get_outputs()], got) if k.startswith(GRAD)}
    return cotangents, numpy_grads, ort_grads


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
@pytest.mark.parametrize("key", list(CASES))
def test_loss_gradient_equals_torch(gradients, key):
    """The gradients of sum(cotangent * loss) with respect to the input (logits, probabilities, ...)
    and to a float target equal torch's autograd through torch.nn.functional, finite at logits of
    +-1e4; on NumPy and in onnxruntime."""
    cotangents, numpy_grads, ort_grads = gradients
    case, reduction = CASES[key]
    i = list(CASES).index(key)
    arrays = _arrays()
    x = torch.tensor(arrays[case.input], requires_grad=True)
    target = torch.tensor(arrays[case.target], requires_grad=arrays[case.target].dtype.kind == "f")
    loss = _torch_call(case, reduction, x, target)
    (loss * torch.from_numpy(cotangents[f"case{i}"])).sum().backward()
    wanted = {f"in{i}": x.grad.numpy()}
    if target.requires_grad:
        wanted[f"target{i}"] = target.grad.numpy()
    assert set(k for k in numpy_grads if k.endswith(f"{i}") and k[:-len(str(i))] in ("in", "target")) == set(wanted)
    for name, want in wanted.items():
        # Where a gradient has no one value these entries are only required finite: torch's
        # binary_cross_entropy backward is hand-written, (p - y) / max(p (1 - p), 1e-12) and, for
        # the target, the unclamped logs, so where p is exactly 0 or 1 it is not the derivative of
        # its clamped forward (see docs/training.md); t log(t)'s slope at a target of 0 is infinite
        compared = np.ones(want.shape, bool)
        if case.block == "binary_cross_entropy":
            compared = (arrays[case.input] > 0) & (arrays[case.input] < 1)
        elif case.block == "kl_div" and name.startswith("target") and not case.args.get("log_target"):
            compared = arrays[case.target] != 0
        assert compared.sum() > want.size // 2
        assert np.isfinite(want[compared]).all()
        scale = max(1.0, float(np.abs(want[compared]).max()))
        for got in (numpy_grads[name], ort_grads[name]):
            assert got.shape == want.shape and got.dtype == np.float32 and np.isfinite(got).all()
            np.testing.assert_allclose(got[compared], want[compared], rtol=2e-5, atol=2e-5 * scale)


def test_the_table_has_extreme_logits_and_certain_probabilities():
    """The cases above are only as strong as their inputs: they must hold what breaks naive forms."""
    arrays = _arrays()
    assert np.abs(arrays["logits"]).max() == pytest.approx(1e4)
    assert (arrays["logits"] == -1e4).any() and (arrays["logits"] == 1e4).any()
    assert (arrays["p"] == 0).any() and (arrays["p"] == 1).any()
    assert (arrays["labels"] == -100).any() and (arrays["kl_target"] == 0).any()
    # the naive forms overflow on them, so a finite, torch-equal result is a real test of stability
    with np.errstate(all="ignore"):
        naive_log_sigmoid = np.log(1 / (1 + np.exp(-arrays["logits"])))
        naive_softmax = np.exp(arrays["logits"]) / np.exp(arrays["logits"]).sum(axis=1, keepdims=True)
    assert not np.isfinite(naive_log_sigmoid).all() and not np.isfinite(naive_softmax).all()


def _one_loss(tmp_path, node: str) -> gn.Network:
    path = tmp_path / "loss.yaml"
    path.write_text("graphnet: 1\nname: one_loss\nuse: [std]\ndims: {B: ~}\ninputs:\n  x: [B, 3]\n"
                    "  t: {shape: [B], dtype: int64}\nnodes:\n" + node + "\noutputs: {y: loss}\n")
    return gn.load(path)


def test_a_label_that_is_no_class_is_refused_at_its_node(tmp_path):
    net = _one_loss(tmp_path, "  - {name: loss, block: std.cross_entropy, inputs: [x, t]}")
    x = np.zeros((2, 3), np.float32)
    assert net.run({"x": x, "t": np.array([2, -100])})["y"] == pytest.approx(np.log(3))
    with pytest.raises(gn.SpecError, match=r"loss.yaml:9:5: error: node 'loss.nll.weight_of_target' \(gather\): "
                                           r"indices\[1\] is 3, out of range"):
        net.run({"x": x, "t": np.array([0, 3])})
    # -C to -1 count from the end, in the one-hot rows as in the weights' lookup
    logits = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -2.0]], np.float32)
    assert net.run({"x": logits, "t": np.array([-1, -3])})["y"] == net.run({"x": logits, "t": np.array([2, 0])})["y"]


def test_an_unknown_reduction_is_refused_at_the_call(tmp_path):
    with pytest.raises(gn.SpecError, match=r"loss.yaml:9:5: error: block 'std.cross_entropy' called at 'loss': "
                                           r"requirement 'reduction == 'none' .* does not hold \(reduction = 'avg'\)"):
        _one_loss(tmp_path, "  - {name: loss, block: std.cross_entropy, inputs: [x, t], args: {reduction: avg}}")
