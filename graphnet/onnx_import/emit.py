"""Writing an import as spec text: one flow-style line per node, params with their qualified names,
attributes left out where they hold the op's default."""

from __future__ import annotations

import json
import re

import numpy as np

from ..dims import Dim
from .convert import Imported, INode

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null"}


def dim_text(d: Dim) -> str:
    text = str(d)
    # graphnet's expressions multiply; a dim prints powers as '^'
    return re.sub(r"([A-Za-z_][A-Za-z0-9_]*)\^(\d+)", lambda m: "*".join([m.group(1)] * int(m.group(2))), text)


def scalar(value) -> str:
    if value is None:
        return "~"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Dim):
        if value.is_const():
            return str(value.value)
        return scalar(dim_text(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return ".nan" if np.isnan(value) else (".inf" if value > 0 else "-.inf")
        text = repr(float(value))
        short = str(np.float32(value))
        if float(np.float32(short)) == float(value) or np.float32(value) == np.float32(short):
            text = short if ("." in short or "e" in short) else short + ".0"
        return text
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
            return value
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__}")


def flow(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


def shape_list(shape) -> list:
    return [d.value if d.is_const() else dim_text(d) for d in shape]


def op_attrs(op) -> dict:
    """The op's attributes that differ from its defaults."""
    out = {}
    for key, f in type(op).model_fields.items():
        value = getattr(op, key)
        if not f.is_required() and _same(value, f.default):
            continue
        out[key] = value
    return out


def _same(a, b) -> bool:
    try:
        return type(a) is type(b) and a == b
    except Exception:       # noqa: BLE001  (Dims compare symbolically; anything else is not equal)
        return False


def node_line(node: INode, previous: str | None) -> dict:
    item = {"name": node.name, "op": node.op.name}
    refs = node.inputs
    if not (len(refs) == 1 and refs[0] == previous and previous is not None):
        item["inputs"] = refs[0] if len(refs) == 1 else list(refs)
    attrs = op_attrs(node.op)
    if attrs:
        item["attrs"] = attrs
    return item


def params_section(imp: Imported) -> dict:
    out = {}
    for key, p in imp.params.items():
        entry = {"shape": list(p.array.shape), "init": "zeros"}
        if p.array.dtype.name != "float32":
            entry["dtype"] = p.array.dtype.name
        if not p.trainable:
            entry["trainable"] = False
        if p.path != key:
            entry["path"] = p.path
        out[key] = entry
    return out


def header(imp: Imported) -> list[str]:
    lines = ["graphnet: 1", f"name: {imp.name}", f"doc: {scalar(imp.doc)}"]
    return lines


def inputs_lines(imp: Imported) -> list[str]:
    lines = []
    if imp.dims:
        lines.append("dims: " + flow({d: None for d in imp.dims}))
    lines.append("inputs:" + ("" if imp.inputs else " {}"))
    for name, t in imp.inputs.items():
        shape = shape_list(t.shape)
        lines.append(f"  {name}: " + (flow(shape) if t.dtype == "float32" else flow({"shape": shape, "dtype": t.dtype})))
    return lines


def flat_spec(imp: Imported) -> str:
    lines = header(imp) + inputs_lines(imp)
    params = params_section(imp)
    if params:
        lines.append("params:")
        lines += [f"  {k}: {flow(v)}" for k, v in params.items()]
    lines.append("nodes:" + ("" if imp.nodes else " []"))
    previous = None
    for node in imp.nodes:
        lines.append("  - " + flow(node_line(node, previous)))
        previous = node.outputs[0] if len(node.outputs) == 1 else None
    lines.append("outputs: " + flow(imp.outputs))
    return "\n".join(lines) + "\n"


def weights_of(imp: Imported) -> dict[str, np.ndarray]:
    return {p.path: p.array for p in imp.params.values()}
