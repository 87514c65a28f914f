"""The zoo's CNN and recurrent specs load their upstream modules' own state_dict() by name, with no
renaming and no flag, through the command line. Each module is built by its library's own code, so
the names are the library's, not a rebuild's:

    alexnet, vgg11/13/16/19         torchvision.models.alexnet(), vgg11() ... (weights=None)
    googlenet                       torchvision.models.googlenet(aux_logits=False, transform_input=False)
    resnet18/34/50/101/152          torchvision.models.resnet18() ...
    resnext50_32x4d                 torchvision.models.resnext50_32x4d()
    mobilenet_v2, _v3_large/_small  torchvision.models.mobilenet_v2() ...
    efficientnet_b0                 torchvision.models.efficientnet_b0()
    lstm, gru                       torch.nn.LSTM / GRU(128, 256, num_layers=2, batch_first=True)
    birnn                           torch.nn.RNN(128, 256, num_layers=2, bidirectional=True, batch_first=True)
    rnn                             torch.nn.ModuleDict(rnn=torch.nn.RNN(128, 256, batch_first=True),
                                                        head=torch.nn.Linear(256, 10))

At full size, every module's state_dict names and shapes are exactly the spec's params (less
num_batches_tracked, which the weights loader skips by rule; the full-size modules are made on the
meta device: no memory, no init). For the outputs, every tensor the library initializes to one
value (batch-norm weights, biases and running statistics, zero biases) is redrawn so that a weight
in the wrong place changes them; the state_dict() is saved with torch.save and as .safetensors;
`graphnet run SPEC --weights FILE --inputs ...` gives the module's outputs (eval mode) within 1e-4
of their scale on NumPy for both files and on onnxruntime, and `graphnet export --weights` run in
onnxruntime gives them too. (The file formats do not meet the back ends: a weight file is read into
arrays before a back end sees it, so onnxruntime runs one of the two files.) The networks whose
global pooling makes them size-agnostic run on small images (--dim H, W). AlexNet and VGG, whose
classifier is sized for 224x224 (torchvision's adaptive pool is the identity there, and the specs
leave it out), run at full size, on one image, with 0.25 to 0.55 GB of weights; to keep the file
quick, onnxruntime sees them through `export` alone (`run --backend onnxruntime` lowers the same
way).

torchvision does not import beside every torch build (PyPI's CPU torch wheel lacks its C++ ops); its
tests are skipped, saying so, where it cannot be imported.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import graphnet as gn
from graphnet.cli import main

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch)")
nn = torch.nn
SPECS = Path(__file__).resolve().parent.parent / "specs"


def _library(name: str):
    try:
        return importlib.import_module(name)
    except Exception as e:   # torchvision's wheel fails to import beside another torch build
        pytest.skip(f"{name} cannot be imported here ({type(e).__name__}: {e}); its test needs it")


def _redraw_constants(module: nn.Module, seed: int) -> nn.Module:
    """Every float tensor of the state_dict the library set to one value gets random values: around
    it, and for a batch norm's running variance positive ones. The module then goes to eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=True).items():
            if t.is_floating_point() and t.numel() > 1 and torch.all(t == t.flatten()[0]):
                noise = torch.rand(t.shape, generator=gen) if name.endswith("running_var") else \
                    0.1 * torch.randn(t.shape, generator=gen)
                t.copy_(0.5 + noise if name.endswith("running_var") else t + noise)
    assert not any(torch.all(v == v.flatten()[0]) for v in module.state_dict().values()
                   if v.is_floating_point() and v.numel() > 1)
    return module.eval()


def _same_names(spec: str, module: nn.Module) -> int:
    """The module's state_dict names and shapes are exactly the spec's params; how many."""
    net = gn.load(SPECS / f"{spec}.yaml")
    theirs = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    ours = {k: tuple(d.value for d in p.type.shape) for k, p in net.graph.params.items()}
    assert theirs == ours, (sorted(set(theirs) ^ set(ours))[:10], [k for k in ours if theirs.get(k, ours[k]) != ours[k]])
    return len(ours)


def _assert_close(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    assert ours.shape == theirs.shape, what
    scale = float(np.abs(theirs).max())
    assert scale > 0 and np.isfinite(ours).all(), what
    err = float(np.abs(ours - theirs).max())
    assert err <= 1e-4 * scale, f"{what}: max difference {err:.3g} against a scale of {scale:.3g}"


def _check_cli(tmp_path: Path, spec: str, dims: dict, module: nn.Module, feed: dict, expected: dict,
               onnx: tuple[str, ...] = ("run", "export")) -> None:
    """The module's state_dict saved by torch.save and as .safetensors: run with each on NumPy, and
    as `onnx` says the .safetensors on onnxruntime and export with the torch.save file, each give
    `expected`."""
    from safetensors.torch import save_file
    state = module.state_dict()
    pt, st = tmp_path / "weights.pt", tmp_path / "weights.safetensors"
    torch.save(state, pt)
    save_file(state, st)
    del state
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, **feed)
    spec_path = str(SPECS / f"{spec}.yaml")
    dim_args = [a for k, v in dims.items() for a in ("--dim", f"{k}={v}")]
    for weights, backend in [(pt, "numpy"), (st, "numpy")] + [(st, "onnxruntime")] * ("run" in onnx):
        out = tmp_path / f"out_{backend}.npz"
        assert main(["run", spec_path, "--weights", str(weights), "--inputs", str(inputs), "-o", str(out),
                     "--backend", backend, *dim_args]) == 0
        got = np.load(out)
        assert sorted(got.files) == sorted(expected)
        for name, value in expected.items():
            _assert_close(got[name], value, f"{spec} {name} ({weights.name}, {backend})")
    if "export" not in onnx:
        return
    model = tmp_path / f"{spec}.onnx"
    assert main(["export", spec_path, "--weights", str(pt), "-o", str(model), *dim_args]) == 0
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    for name, value in expected.items():
        _assert_close(got[name], value, f"{spec} {name} (exported)")


# -- torchvision ------------------------------------------------------------------------------------

# spec -> (the constructor's name and keyword arguments, the batch and image size of the output check)
TORCHVISION = {
    "alexnet": ("alexnet", {}, (1, 224, 224)),
    "vgg11": ("vgg11", {}, (1, 224, 224)),
    "vgg13": ("vgg13", {}, (1, 224, 224)),
    "vgg16": ("vgg16", {}, (1, 224, 224)),
    "vgg19": ("vgg19", {}, (1, 224, 224)),
    # an odd size on which every ceil_mode pool rounds up somewhere
    "googlenet": ("googlenet", {"aux_logits": False, "transform_input": False, "init_weights": False}, (2, 71, 57)),
    "resnet18": ("resnet18", {}, (2, 64, 48)),
    "resnet34": ("resnet34", {}, (2, 64, 48)),
    "resnet50": ("resnet50", {}, (2, 64, 48)),
    "resnet101": ("resnet101", {}, (1, 64, 48)),
    "resnet152": ("resnet152", {}, (1, 64, 48)),
    "resnext50_32x4d": ("resnext50_32x4d", {}, (2, 64, 48)),
    "mobilenet_v2": ("mobilenet_v2", {}, (2, 64, 48)),
    "mobilenet_v3_large": ("mobilenet_v3_large", {}, (2, 64, 48)),
    "mobilenet_v3_small": ("mobilenet_v3_small", {}, (2, 64, 48)),
    "efficientnet_b0": ("efficientnet_b0", {}, (2, 64, 48)),
}
# onnxruntime's part for the networks of 0.25 GB of weights and more (the module's docstring says why)
ONNX = {"alexnet": ("export",), "vgg11": ("export",), "vgg13": ("export",), "vgg16": ("export",), "vgg19": ("export",)}


@pytest.mark.parametrize("spec", list(TORCHVISION))
def test_torchvision_state_dict_loads_by_name(tmp_path, spec):
    models = _library("torchvision").models
    name, kwargs, (batch, h, w) = TORCHVISION[spec]
    make = getattr(models, name)
    with torch.device("meta"):
        assert _same_names(spec, make(weights=None, **kwargs)) > 0
    torch.manual_seed(0)
    module = _redraw_constants(make(weights=None, **kwargs), seed=1)
    image = np.random.default_rng(2).standard_normal((batch, 3, h, w)).astype(np.float32)
    with torch.no_grad():
        logits = module(torch.from_numpy(image)).numpy()
    dims = {} if (h, w) == (224, 224) else {"H": h, "W": w}
    _check_cli(tmp_path, spec, dims, module, {"image": image}, {"logits": logits}, ONNX.get(spec, ("run", "export")))


# -- torch.nn ---------------------------------------------------------------------------------------

def _recurrent(spec: str) -> nn.Module:
    if spec == "lstm":
        return nn.LSTM(128, 256, num_layers=2, batch_first=True)
    if spec == "gru":
        return nn.GRU(128, 256, num_layers=2, batch_first=True)
    if spec == "birnn":
        return nn.RNN(128, 256, num_layers=2, bidirectional=True, batch_first=True)
    return nn.ModuleDict({"rnn": nn.RNN(128, 256, batch_first=True), "head": nn.Linear(256, 10)})


def _recurrent_outputs(spec: str, module: nn.Module, x: torch.Tensor) -> dict:
    if spec == "rnn":
        y, h_n = module["rnn"](x)
        return {"y": module["head"](y), "h": h_n[0]}
    y, final = module(x)
    if spec == "lstm":
        return {"y": y, "h_n": final[0], "c_n": final[1]}
    return {"y": y, "h_n": final}


@pytest.mark.parametrize("spec, count", [("lstm", 8), ("gru", 8), ("birnn", 16), ("rnn", 6)])
def test_torch_recurrent_state_dict_loads_by_name(tmp_path, spec, count):
    torch.manual_seed(3)
    module = _redraw_constants(_recurrent(spec), seed=4)
    assert _same_names(spec, module) == count
    x = np.random.default_rng(5).standard_normal((2, 7, 128)).astype(np.float32)
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in _recurrent_outputs(spec, module, torch.from_numpy(x)).items()}
    _check_cli(tmp_path, spec, {}, module, {"x": x}, expected)
