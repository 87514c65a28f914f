"""What every ONNX op converter uses: the registry (`converter`), the check that names every op a
graph uses that none converts, and the readers of arguments that moved from attributes to inputs
across opsets (Squeeze's axes, Clip's bounds, Pad's pads, Slice's bounds, Split's sizes)."""

from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np
import onnx

from ..errors import Diagnostic, Location, SpecError
from .convert import Const, Converter, Dims, ImportFailure, Value

CONVERTERS: dict[str, Callable] = {}
DOMAINS = ("", "ai.onnx")


def converter(*op_types: str):
    def register(fn):
        for t in op_types:
            CONVERTERS[t] = fn
        return fn
    return register


def check_supported(cv: Converter, graph: onnx.GraphProto) -> None:
    """Every op type and domain the graph uses that graphnet cannot import, in one error: each
    with its count and first node."""
    unsupported: Counter = Counter()
    first: dict[tuple, str] = {}
    for i, node in enumerate(graph.node):
        key = (node.domain if node.domain not in DOMAINS else "", node.op_type)
        if key[0] or node.op_type not in CONVERTERS:
            unsupported[key] += 1
            first.setdefault(key, node.name or f"#{i}")
    if not unsupported:
        return
    diags = []
    for (domain, op), n in sorted(unsupported.items()):
        what = f"op '{op}' of domain '{domain}' (unknown domain)" if domain else f"unsupported op '{op}'"
        diags.append(Diagnostic(Location(cv.display),
                                f"{what}: {n} node{'s' if n > 1 else ''}, the first '{first[(domain, op)]}'"))
    raise SpecError(diags)


# -- reading arguments --------------------------------------------------------------------------

def inputs(cv: Converter, node) -> list[Value | None]:
    return [cv.value(n) for n in node.input]


def input_at(cv: Converter, node, i: int) -> Value | None:
    return cv.value(node.input[i]) if i < len(node.input) else None


def known(v: Value | None, what: str):
    """The value of a const or dims input as a list (or scalar) of ints/floats/Dims; None if absent."""
    if v is None:
        return None
    if isinstance(v, Dims):
        items = [d.value if d.is_const() else d for d in v.dims]
        return items[0] if v.scalar else items
    if isinstance(v, Const):
        return v.array.tolist()
    raise ImportFailure(f"{what} must be known when the model is imported (a constant or a shape), "
                        "but it is computed from the data")


def arg(cv: Converter, node, attrs: dict, name: str, index: int, default=None):
    """An argument that is an attribute in early opsets and an input later."""
    if name in attrs:
        return attrs[name]
    value = known(input_at(cv, node, index), name)
    return default if value is None else value


def float_of(x) -> float:
    return float(np.float32(x))


def unused_outputs(cv: Converter, node, *indices: int, why: str) -> None:
    """Refuses outputs graphnet's op has not where anything reads them (a named output no node
    reads, like Caffe2's dropout masks, is left out)."""
    for i in indices:
        if i < len(node.output) and node.output[i] in cv.read:
            raise ImportFailure(f"output {i} ('{node.output[i]}') is used; {why}")


def refuse_attrs(attrs: dict, **allowed_defaults) -> None:
    for key, default in allowed_defaults.items():
        if key in attrs and attrs[key] not in (default if isinstance(default, tuple) else (default,)):
            raise ImportFailure(f"attribute {key}={attrs[key]!r} is not supported")
