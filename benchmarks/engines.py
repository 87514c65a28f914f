"""The engines a case runs on. Each one is prepared once (sessions built, models exported, weights
loaded) into a runner: a function of no arguments that runs the network once on the case's inputs
and returns its outputs in the spec's order. Timing and memory measure calls of the runner only.

PyTorch is optional: without it the torch engines are skipped with the reason."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

import graphnet as gn

from .suite import Case

Runner = Callable[[], list]


@dataclass
class Workload:
    """A case made concrete: the network (free dims left symbolic, so every engine gets dynamic
    shapes), its weights, random inputs, and the spec's dims for building the torch module."""

    case: Case
    net: gn.Network
    weights: dict
    inputs: dict
    binding: dict           # free dims -> value
    dims: dict              # every dim with a value: the spec's, the overrides, the binding

    @property
    def macs(self) -> int:
        return self.net.graph.total_macs().subs(self.binding).value

    @property
    def output_names(self) -> list[str]:
        return list(self.net.graph.outputs)

    @cached_property
    def onnx_model(self):
        """graphnet's export, shared by onnxruntime and onnx.reference."""
        return self.net.to_onnx(self.weights, opset=17)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Input and output name -> {axis: free dim name}, for torch's export."""
        g = self.net.graph
        types = {**g.inputs, **{k: g.types[t] for k, t in g.outputs.items()}}
        return {name: {i: str(d) for i, d in enumerate(t.shape) if not d.is_const()}
                for name, t in types.items() if any(not d.is_const() for d in t.shape)}


def load_workload(case: Case, seed: int = 0) -> Workload:
    from graphnet.load import load_program
    spec_dims = load_program(case.spec).spec.dims
    free = {k for k, v in spec_dims.items() if v is None}
    unknown = [k for k, _ in case.dims if k not in spec_dims]
    if unknown:
        raise SystemExit(f"{case.model}: the spec has no dim '{unknown[0]}'")
    binding = {k: v for k, v in case.dims if k in free}
    binding.update({k: 1 for k in free if k not in binding})
    net = gn.load(case.spec, {k: v for k, v in case.dims if k not in free})
    dims = {**{k: v for k, v in spec_dims.items() if isinstance(v, int)}, **case.dims_dict, **binding}
    return Workload(case, net, net.init_weights(seed), net.random_inputs(binding, seed), binding, dims)


# -- the engines ---------------------------------------------------------------------------------

def _graphnet(optimize: bool):
    def prepare(w: Workload) -> Runner:
        session = w.net.session(w.weights, optimize=optimize)
        names = w.output_names

        def run():
            out = session.run(w.inputs)
            return [out[k] for k in names]
        return run
    return prepare


def _ort_session(model_bytes: bytes):
    import onnxruntime as ort
    options = ort.SessionOptions()
    # onnxruntime's worker threads otherwise spin for a while after each run, holding a core the
    # next engine in the interleaved order needs: OpenBLAS's 2-thread GEMMs then run several
    # times slower. Each engine is timed alone, as a user would run it.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _ort(w: Workload) -> Runner:
    session = _ort_session(w.onnx_model.SerializeToString())
    names = w.output_names
    return lambda: session.run(names, w.inputs)


def _reference(w: Workload) -> Runner:
    from onnx.reference import ReferenceEvaluator
    evaluator = ReferenceEvaluator(w.onnx_model)
    names = w.output_names
    return lambda: evaluator.run(names, w.inputs)


def _torch_module(w: Workload):
    from .torch_models import torch_module
    return torch_module(w.case.model, w.weights, w.dims)


def _torch(w: Workload) -> Runner:
    import torch
    module = _torch_module(w)
    args = [torch.from_numpy(w.inputs[k]) for k in w.net.graph.inputs]

    def run():
        with torch.inference_mode():
            out = module(*args)
        return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
    return run


def torch_onnx_export(w: Workload) -> bytes:
    """PyTorch's own ONNX export of the equal module, opset 17, free dims as dynamic axes. The
    TorchScript exporter (`dynamo=False`): the torch.export-based one needs onnxscript."""
    import warnings

    import torch
    module = _torch_module(w)
    inputs = list(w.net.graph.inputs)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(module, tuple(torch.from_numpy(w.inputs[k]) for k in inputs), f, dynamo=False,
                          opset_version=17, input_names=inputs, output_names=w.output_names,
                          dynamic_axes=w.dynamic_axes())
    return f.getvalue()


def _ort_torch(w: Workload) -> Runner:
    session = _ort_session(torch_onnx_export(w))
    names = w.output_names
    return lambda: session.run(names, w.inputs)


@dataclass(frozen=True)
class Engine:
    key: str
    label: str
    prepare: Callable[[Workload], Runner]
    torch: bool = False            # needs PyTorch and a torch equivalent of the spec
    slow: bool = False             # onnx.reference: few repeats
    doc: str = field(default="", compare=False)


ENGINES = [
    Engine("graphnet", "graphnet", _graphnet(True), doc="NumPy back end, Network.session(optimize=True)"),
    Engine("graphnet-noopt", "graphnet --no-optimize", _graphnet(False),
           doc="NumPy back end without plan-time rewrites, session(optimize=False)"),
    Engine("ort", "onnxruntime (graphnet's ONNX)", _ort, doc="onnxruntime CPU on net.to_onnx(opset=17)"),
    Engine("onnx-reference", "onnx.reference (graphnet's ONNX)", _reference, slow=True,
           doc="onnx.reference.ReferenceEvaluator on the same export"),
    Engine("torch", "torch eager", _torch, torch=True, doc="the equal torch.nn module, eval, inference_mode"),
    Engine("ort-torch", "onnxruntime (torch's ONNX)", _ort_torch, torch=True,
           doc="onnxruntime CPU on torch.onnx.export(dynamo=False) of that module"),
]
BY_KEY = {e.key: e for e in ENGINES}


def unavailable(engine: Engine, model: str) -> str | None:
    """Why the engine cannot run this model, or None."""
    if not engine.torch:
        return None
    try:
        import torch  # noqa: F401
    except ImportError:
        return "PyTorch is not installed (optional: pip install -e '.[torch]')"
    from .torch_models import BUILDERS
    if model not in BUILDERS:
        return f"no torch equivalent of {model} in benchmarks/torch_models.py"
    return None


def thread_info() -> dict:
    """How many threads each engine may use, as far as each library says."""
    from .canary import blas_info
    info = {"cpu_count": os.cpu_count(), "openblas": blas_info(),
            "onnxruntime": "intra-op threads: onnxruntime's default (one per physical core)"}
    try:
        import torch
        info["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                         "interop_threads": torch.get_num_interop_threads()}
    except ImportError:
        info["torch"] = None
    return info


def max_abs_diff(ours: list, theirs: list) -> float:
    """The largest absolute difference over all outputs; NaN where both are NaN counts as equal,
    NaN on one side only as infinite."""
    worst = 0.0
    for a, b in zip(ours, theirs):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            return float("inf")
        d = np.abs(a - b)
        d[np.isnan(a) & np.isnan(b)] = 0.0
        d[np.isnan(d)] = np.inf
        worst = max(worst, float(d.max()) if d.size else 0.0)
    return worst
