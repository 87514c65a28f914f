"""The ONNX backend node suite, generated from the onnx wheel's own case generators
(onnx.backend.test.case.node), for the ops graphnet imports: each case's model through
graphnet.import_onnx and the NumPy back end, against the outputs onnx stores with the case."""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import numpy as np

import graphnet as gn
from graphnet.errors import SpecError
from graphnet.onnx_import.args import CONVERTERS


def supported_cases() -> list:
    """Cases whose every node is an op graphnet converts. Only the generator modules of those ops
    are imported (importing one runs its generators), which keeps this to seconds."""
    import onnx.backend.test.case.node as node
    wanted = {op.lower() for op in CONVERTERS}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for info in pkgutil.iter_modules(node.__path__):
            if info.name in wanted and not info.ispkg:
                importlib.import_module(f"{node.__name__}.{info.name}")
    cases = {c.name: c for c in node._NodeTestCases}
    return sorted((c for c in cases.values()
                   if all(n.op_type in CONVERTERS and n.domain in ("", "ai.onnx") for n in c.model.graph.node)),
                  key=lambda c: c.name)


STATIC = ("must be known", "computed from data", "computed from the data")


def with_known_inputs(model, inputs, all_but_first: bool = False):
    """The model with its integer inputs (or, with all_but_first, every input after the first: a
    Resize's float scales) made initializers holding the case's values: ONNX lets a Reshape's shape
    or a Slice's bounds be data, a spec needs them known, so the suite gives them."""
    from onnx import numpy_helper
    m = type(model)()
    m.CopyFrom(model)
    given = dict(zip([vi.name for vi in model.graph.input], inputs))
    keep = []
    for vi in m.graph.input:
        a = np.asarray(given.get(vi.name))
        first = vi.name == model.graph.input[0].name
        if vi.name in given and (a.dtype.kind in "iu" or a.ndim == 0 or (all_but_first and not first)):
            m.graph.initializer.append(numpy_helper.from_array(a, vi.name))
        else:
            keep.append(vi)
    del m.graph.input[:]
    m.graph.input.extend(keep)
    return m


def _array(x) -> np.ndarray:
    from onnx import TensorProto, numpy_helper
    return numpy_helper.to_array(x) if isinstance(x, TensorProto) else np.asarray(x)


def run_case(case) -> str | None:
    """None when graphnet gives the stored outputs, else what went wrong (one line)."""
    for inputs, outputs in case.data_sets:
        inputs, outputs = [_array(x) for x in inputs], [_array(x) for x in outputs]
        model = case.model
        try:
            net, weights, key = _imported(model)
        except SpecError as e:
            if not any(s in e.diagnostics[0].message for s in STATIC):
                return "import: " + e.diagnostics[0].message
            for all_but_first in (False, True):
                known = with_known_inputs(model, inputs, all_but_first)
                try:
                    net, weights, key = _imported(known)
                    break
                except SpecError as e2:
                    if all_but_first or not any(s in e2.diagnostics[0].message for s in STATIC):
                        return "import: " + e2.diagnostics[0].message
            model = known
        initialized = {t.name for t in model.graph.initializer}
        given = dict(zip([vi.name for vi in case.model.graph.input], inputs))
        feeds = {}
        for vi in model.graph.input:
            if vi.name not in initialized:
                name = key.get(vi.name, vi.name)
                feeds[name] = np.asarray(given[vi.name], dtype=net.graph.inputs[name].dtype)
        try:
            with np.errstate(all="ignore"):
                got = list(net.run(feeds, weights=weights).values())
        except SpecError as e:
            return "run: " + e.diagnostics[0].message
        for g, w in zip(got, outputs):
            w = np.asarray(w)
            if g.shape != w.shape:
                return f"shape {g.shape} != {w.shape}"
            if g.dtype != w.dtype:
                return f"dtype {g.dtype} != {w.dtype}"
            if not np.allclose(g, w, rtol=case.rtol, atol=case.atol, equal_nan=True):
                return f"values differ by {float(np.nanmax(np.abs(g.astype(np.float64) - w))):.3g}"
    return None


def _imported(model):
    from graphnet.onnx_import import import_model
    result = import_model(model)
    net, weights = gn.import_onnx(model)
    return net, weights, {onnx_name: name for name, onnx_name in result.names.items()}
