"""Each optimizer's update graph follows torch.optim's trajectory: the same small problem, the same
start, 50 steps, gradients from torch's autograd at each side's own params (so a wrong update
would lead the two apart), on the NumPy back end and, for one of each, onnxruntime from the
exported update graph."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from graphnet.backends.numpy_backend import compile_plan, run_plan
from graphnet.dims import as_dim
from graphnet.transforms.optim import GRAPH_OPTIMIZERS, STEP, Groups, grad_name, init_state, lr_name, new, update_graph
from graphnet.types import TensorType

STEPS = 50
SHAPES = {"fc.weight": (3, 4), "fc.bias": (4,), "norm.weight": (4,)}
TORCH = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "adadelta": torch.optim.Adadelta,
         "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
         "adamax": torch.optim.Adamax, "rprop": torch.optim.Rprop, "asgd": torch.optim.ASGD}

# (optimizer, options): the defaults, weight decay, and each main option
CASES = [
    ("sgd", {"lr": 0.05}), ("sgd", {"lr": 0.05, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "dampening": 0.2}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("adagrad", {}), ("adagrad", {"lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 0.5}),
    ("adadelta", {}), ("adadelta", {"rho": 0.8, "weight_decay": 0.1}),
    ("rmsprop", {}), ("rmsprop", {"centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    ("adam", {}), ("adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("adamw", {}), ("adamw", {"lr": 0.01, "betas": (0.8, 0.99), "amsgrad": True}),
    ("adamax", {}), ("adamax", {"weight_decay": 0.1}),
    ("rprop", {}), ("rprop", {"etas": (0.3, 1.5), "step_sizes": (1e-3, 0.05)}),
    ("asgd", {}), ("asgd", {"t0": 20, "lambd": 0.01, "weight_decay": 0.1}),
]


def _data():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((8, 3)).astype(np.float32))
    y = torch.tensor(rng.standard_normal((8, 4)).astype(np.float32))
    start = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    return x, y, start


def _loss(p, x, y):
    h = torch.tanh(x @ p["fc.weight"] + p["fc.bias"]) * p["norm.weight"]
    return ((h - y) ** 2).mean()


def _grads(weights, x, y, maximize=False):
    p = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    return {k: g.numpy() for k, g in zip(p, torch.autograd.grad(_loss(p, x, y), list(p.values())))}


def _types():
    return {k: TensorType("float32", tuple(as_dim(d) for d in s)) for k, s in SHAPES.items()}


def _ours(groups: Groups, start, x, y, lrs, clip=None, steps=STEPS):
    update = update_graph(groups, _types(), clip)
    plan = compile_plan(update.graph, {}, {})
    weights, state = dict(start), init_state(update, groups, start)
    for _ in range(steps):
        feed = {**weights, **{grad_name(k): g for k, g in _grads(weights, x, y).items()}, **state,
                **{lr_name(i): np.asarray(lr, np.float32) for i, lr in enumerate(lrs)}}
        out = run_plan(plan, feed)
        weights = {k: out[new(k)] for k in weights}
        state = {k: out[new(k)] for k in state}
    return weights, state


def _theirs(name, groups_kw, start, x, y, clip=None, steps=STEPS, **options):
    p = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in start.items()}
    # options as the constructor's: Adagrad reads initial_accumulator_value there, not from a group
    opt = TORCH[name](groups_kw(p), **options)
    for _ in range(steps):
        opt.zero_grad()
        _loss(p, x, y).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(list(p.values()), clip)
        opt.step()
    return {k: v.detach().numpy() for k, v in p.items()}, opt


def _close(ours, theirs, rtol=1e-5):
    for k in theirs:
        scale = np.linalg.norm(theirs[k])
        assert np.linalg.norm(ours[k] - theirs[k]) <= rtol * scale, (k, ours[k], theirs[k])


@pytest.mark.parametrize("name, options", CASES, ids=[f"{n}-{'-'.join(o) or 'defaults'}" for n, o in CASES])
def test_each_optimizer_follows_torch(name, options):
    x, y, start = _data()
    opt = GRAPH_OPTIMIZERS[name](**options)
    ours, state = _ours(Groups(opt), start, x, y, [opt.lr])
    theirs, torch_opt = _theirs(name, lambda p: list(p.values()), start, x, y, **options)
    assert not all(np.allclose(theirs[k], start[k], atol=1e-3) for k in start)    # it moved
    _close(ours, theirs)
    # the state torch keeps, under torch's names, follows too
    for k, tensor in zip(start, torch_opt.param_groups[0]["params"]):
        for key, value in torch_opt.state[tensor].items():
            if key != "step":
                mine = state[f"state:{k}:{key}"]
                assert np.linalg.norm(mine - value.numpy()) <= 1e-5 * max(np.linalg.norm(value.numpy()), 1e-6), (k, key)
    assert float(state[STEP]) == STEPS


def test_param_groups_select_by_name_pattern():
    """No weight decay on biases and norms, another lr for them: torch's two param groups."""
    x, y, start = _data()
    base = GRAPH_OPTIMIZERS["adamw"](lr=0.01, weight_decay=0.5)
    quiet = base.model_copy(update={"weight_decay": 0.0, "lr": 0.02})
    groups = Groups(base, ((("*.bias", "norm.*"), quiet),))
    ours, _ = _ours(groups, start, x, y, [0.01, 0.02])
    theirs, _ = _theirs("adamw", lambda p: [{"params": [p["fc.weight"]]},
                                            {"params": [p["fc.bias"], p["norm.weight"]], "weight_decay": 0.0, "lr": 0.02}],
                        start, x, y, lr=0.01, weight_decay=0.5)
    _close(ours, theirs)
    assert [groups.index_of(k) for k in SHAPES] == [0, 1, 1]


def test_clip_by_global_norm_equals_torch():
    x, y, start = _data()
    opt = GRAPH_OPTIMIZERS["sgd"](lr=0.1, momentum=0.9)
    ours, _ = _ours(Groups(opt), start, x, y, [0.1], clip=0.05, steps=20)
    theirs, _ = _theirs("sgd", lambda p: [{"params": list(p.values()), "lr": 0.1, "momentum": 0.9}], start, x, y,
                        clip=0.05, steps=20)
    _close(ours, theirs)


def test_torch_defaults_are_ours():
    import inspect
    for name, cls in GRAPH_OPTIMIZERS.items():
        defaults = {k: v.default for k, v in inspect.signature(TORCH[name].__init__).parameters.items()
                    if k in cls.model_fields}
        assert set(defaults) == set(cls.model_fields), name
        for key, value in defaults.items():
            ours = cls().__getattribute__(key)
            assert (list(ours) if isinstance(ours, tuple) else ours) == (list(value) if isinstance(value, tuple) else value), (name, key)


def test_the_update_graph_runs_on_onnxruntime():
    """The update graph exports to a standard ONNX model; 10 Adam steps on onnxruntime equal NumPy's."""
    import onnxruntime as ort
    from graphnet.backends.onnx_export import to_onnx
    x, y, start = _data()
    groups = Groups(GRAPH_OPTIMIZERS["adam"](lr=0.01, amsgrad=True))
    update = update_graph(groups, _types(), clip_norm=1.0)
    session = ort.InferenceSession(to_onnx(update.graph, {}).SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    weights, state = dict(start), init_state(update, groups, start)
    for _ in range(10):
        feed = {**weights, **{grad_name(k): g for k, g in _grads(weights, x, y).items()}, **state,
                "lr": np.asarray(0.01, np.float32)}
        out = dict(zip(names, session.run(None, feed)))
        weights = {k: out[new(k)] for k in weights}
        state = {k: out[new(k)] for k in state}
    ours, _ = _ours(groups, start, x, y, [0.01], clip=1.0, steps=10)
    _close(weights, ours, 1e-5)
