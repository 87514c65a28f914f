"""The small real models the onnx wheel ships with stored inputs and outputs
(onnx/backend/test/data/pytorch-converted and pytorch-operator: torch modules exported by torch),
for the test of those whose ops graphnet imports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import graphnet as gn
from graphnet.errors import SpecError
from graphnet.onnx_import.args import CONVERTERS

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
FOLDERS = ("pytorch-converted", "pytorch-operator")


def model_cases() -> list[Path]:
    """Case folders whose model uses only ops graphnet imports."""
    out = []
    for folder in FOLDERS:
        for case in sorted((DATA / folder).glob("test_*")):
            model = onnx.load(case / "model.onnx")
            if all(n.op_type in CONVERTERS and n.domain in ("", "ai.onnx") for n in model.graph.node):
                out.append(case)
    return out


def _read(path: Path) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def run_model_case(case: Path) -> str | None:
    try:
        net, weights = gn.import_onnx(case / "model.onnx")
    except SpecError as e:
        return "import: " + e.diagnostics[0].message
    model = onnx.load(case / "model.onnx")
    initialized = {t.name for t in model.graph.initializer}
    names = [vi.name for vi in model.graph.input if vi.name not in initialized]
    for data in sorted(case.glob("test_data_set_*")):
        inputs = [_read(p) for p in sorted(data.glob("input_*.pb"))]
        outputs = [_read(p) for p in sorted(data.glob("output_*.pb"))]
        feeds = dict(zip(list(net.graph.inputs), inputs))
        if len(feeds) != len(names):
            return "inputs do not match"
        try:
            with np.errstate(all="ignore"):
                got = list(net.run(feeds, weights=weights).values())
        except SpecError as e:
            return "run: " + e.diagnostics[0].message
        for g, w in zip(got, outputs):
            if g.shape != w.shape or not np.allclose(g, w, rtol=1e-3, atol=1e-5, equal_nan=True):
                return f"outputs differ ({g.shape} vs {w.shape})"
    return None


LIGHT = DATA / "light"


def light_models() -> list[Path]:
    """The `light/` models: real networks (ResNet-50, VGG-19, DenseNet-121, ...) whose weights the
    wheel replaced by ConstantOfShape nodes filling each with one value, stored with the outputs
    onnx's runner computed on its dummy input (no input files are shipped)."""
    return sorted(LIGHT.glob("light_*.onnx"))


def light_unsupported(path: Path) -> list[str]:
    model = onnx.load(path)
    return sorted({n.op_type for n in model.graph.node if n.op_type not in CONVERTERS or n.domain not in ("", "ai.onnx")})


def dummy_input(vi) -> np.ndarray:
    """The input onnx's backend runner gives a light model (runner.generate_dummy_data with
    random=False): 0, 1/n, 2/n, ... over the input's shape, free dims taken as 1."""
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def run_light_model(path: Path) -> str | None:
    try:
        net, weights = gn.import_onnx(path)
    except SpecError as e:
        return "import: " + e.diagnostics[0].message
    model = onnx.load(path)
    initialized = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in initialized]
    feeds = dict(zip(list(net.graph.inputs), [dummy_input(vi) for vi in inputs]))
    with np.errstate(all="ignore"):
        got = list(net.run(feeds, weights=weights).values())
    for i, g in enumerate(got):
        w = _read(LIGHT / f"{path.stem}_output_{i}.pb")
        # the runner's tolerances for these models (onnx.backend.test.loader: rtol 1e-3, atol 1e-7)
        if g.shape != w.shape or not np.allclose(g, w, rtol=1e-3, atol=1e-7):
            return f"outputs differ ({g.shape} vs {w.shape}, by {float(np.abs(g - w).max()):.3g})"
    return None
