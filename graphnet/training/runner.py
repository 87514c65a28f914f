"""A graph run batch after batch: NumPy plans, one per binding of the free dims (the batch size),
or one onnxruntime session of the exported graph; and, when a run went non-finite, the first node
that did."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..backends.numpy_backend import compile_plan, run_plan
from ..errors import Location, SpecError
from ..graph import Graph, node_error
from ..types import FLOAT_DTYPES


class Runner:
    """A graph run per batch: NumPy plans (one per binding of the free dims) or one onnxruntime
    session, over the graph's fixed params (`values`)."""

    def __init__(self, graph: Graph, values: dict, backend: str = "numpy", device: str = "cpu",
                 max_memory: int | None = None, refuse: Callable | None = None):
        self.graph, self.values, self.backend = graph, values, backend
        self.max_memory, self.refuse = max_memory, refuse
        self.plans: dict = {}
        if backend == "onnxruntime":
            from ..backends.onnx_export import to_onnx
            import onnxruntime as ort
            providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
            if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
                raise SpecError.at(Location("<command line>"), "--device cuda: onnxruntime has no CUDA provider here")
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self.session = ort.InferenceSession(to_onnx(graph, values).SerializeToString(), options, providers=providers)
            self.names = [o.name for o in self.session.get_outputs()]

    def __call__(self, feed: dict[str, np.ndarray], binding: dict[str, int]) -> dict[str, np.ndarray]:
        if self.backend == "onnxruntime":
            return dict(zip(self.names, self.session.run(None, feed)))
        key = tuple(sorted(binding.items()))
        if key not in self.plans:
            check = None if self.refuse is None else (lambda need: self.refuse(need, binding))
            self.plans[key] = compile_plan(self.graph, binding, self.values, True, check)
        with np.errstate(all="ignore"):
            return run_plan(self.plans[key], feed)


def first_nonfinite(graph: Graph, values: dict, feed: dict, binding: dict) -> SpecError | None:
    """The located error of the first node (in graph order: forward, then backward, then update)
    whose output holds a NaN or an infinity on this feed; every tensor is kept to look."""
    every = {t: t for node in graph.nodes for t in node.outputs if graph.types[t].dtype in FLOAT_DTYPES}
    plan = compile_plan(dataclasses.replace(graph, outputs=every), binding, {**values, **feed}, False)
    with np.errstate(all="ignore"):
        out = run_plan(plan, feed)
    for node in graph.nodes:
        for t in node.outputs:
            if t in out and not np.isfinite(out[t]).all():
                kind = "backward" if "#grad" in node.name else ("update" if node.name.startswith("update:") else "forward")
                return node_error(node.trace, node.op.name, f"the first non-finite value ({kind} pass): its output "
                                  f"'{t}' holds {out[t][~np.isfinite(out[t])].flat[0]}")
    return None
