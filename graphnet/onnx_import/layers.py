"""The first step of folding a flat import (blocks.py): each op node becomes an item, and the known
layers among them std calls. A layer is recognized only where its params carry the std block's
names below one prefix (`P.weight`, `P.bias`, `P.running_mean`, ...), so that the call at path P
names them exactly as the file did, and only where its attributes fit the std block's args."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ..dims import Dim
from .convert import Imported, INode

STD_DEFAULTS = {
    "std.conv2d": {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True},
    "std.batch_norm": {"eps": 1e-5},
    "std.layer_norm": {"eps": 1e-5},
    "std.linear": {"bias": True},
}


@dataclass
class Item:
    kind: str                   # 'op' or 'call'
    what: str                   # the op, or the std block ('std.conv2d')
    args: dict                  # every attr or arg, defaults included (so instances compare)
    inputs: list                # flat refs
    outputs: list               # flat refs
    types: list                 # of the outputs
    path: str                   # qualified path
    first: int                  # index of the flat node giving its output: graph order
    params: list = field(default_factory=list)
    onnx: object = None           # the flat node (op items)


def symbolic(value) -> bool:
    if isinstance(value, Dim):
        return not value.is_const()
    if isinstance(value, (list, tuple)):
        return any(symbolic(v) for v in value)
    return False


def _full_attrs(op) -> dict:
    return {k: getattr(op, k) for k in type(op).model_fields}


def _single(value):
    """A per-axis attribute as one int when every axis has the same, else None."""
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) and v == value[0] for v in value):
        return value[0]
    return None


def leaf_items(imp: Imported) -> list[Item]:
    uses = Counter(r for n in imp.nodes for r in n.inputs if r is not None)
    uses.update(imp.outputs.values())
    producer = {r: i for i, n in enumerate(imp.nodes) for r in n.outputs}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(imp.nodes):
        for r in n.inputs:
            consumers.setdefault(r, []).append(i)
    path_of = {k: p.path for k, p in imp.params.items()}
    taken: set[int] = set()
    items: list[Item] = []

    def prefix(key, suffix):
        p = path_of.get(key, "")
        return p[: -len(suffix)] if p.endswith(suffix) and uses[key] == 1 else None

    for i, node in enumerate(imp.nodes):
        if i in taken:
            continue
        call = _conv(i, node, prefix, imp) or _norm(i, node, prefix) or _linear(i, node, prefix, imp, uses, consumers)
        if call is not None:
            what, args, ins, last, params, absorbed = call
            taken.update(absorbed)
            out = imp.nodes[last]
            items.append(Item("call", what, args, ins, out.outputs, out.types, "", last, params))
            items[-1].path = params and path_of[params[0]].rpartition(".")[0]
            continue
        j = _silu(node, uses, consumers, imp)
        if j is not None:
            # x * sigmoid(x), torch's export of SiLU: one silu, at the mul's place and scope
            taken.add(j)
            mul = imp.nodes[j]
            items.append(Item("op", "silu", {}, [node.inputs[0]], mul.outputs, mul.types, "", j))
            items[-1].onnx = mul
            continue
        items.append(Item("op", node.op.name, _full_attrs(node.op), list(node.inputs), node.outputs, node.types,
                          "", i))
        items[-1].onnx = node
    _op_paths(items)
    return sorted(items, key=lambda it: it.first)    # by the node that gives each output: an order of the graph


def _conv(i: int, node: INode, prefix, imp):
    if node.op.name != "conv" or len(node.inputs) < 2:
        return None
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    p = prefix(w, ".weight")
    if not p or (b is not None and prefix(b, ".bias") != p):
        return None
    shape = imp.params[w].array.shape
    if len(shape) != 4 or shape[2] != shape[3]:
        return None
    stride, dilation = _single(node.op.strides), _single(node.op.dilations)
    pads = node.op.pads
    pad = pads if isinstance(pads, (int, str)) else _single(pads)
    if stride is None or dilation is None or pad is None:
        return None
    args = {"out": shape[0], "kernel": shape[2], "stride": stride, "padding": pad, "dilation": dilation,
            "groups": node.op.groups, "bias": b is not None}
    return "std.conv2d", args, [x], i, [w] + ([b] if b else []), ()


def _norm(i: int, node: INode, prefix):
    if node.op.name == "batch_norm" and len(node.inputs) == 5:
        x, s, b, m, v = node.inputs
        p = prefix(s, ".weight")
        if p and prefix(b, ".bias") == p and prefix(m, ".running_mean") == p and prefix(v, ".running_var") == p:
            return "std.batch_norm", {"eps": node.op.epsilon}, [x], i, [s, b, m, v], ()
    if node.op.name == "layer_norm" and len(node.inputs) == 3 and node.op.axis == -1:
        x, s, b = node.inputs
        p = prefix(s, ".weight")
        if p and prefix(b, ".bias") == p:
            return "std.layer_norm", {"eps": node.op.epsilon}, [x], i, [s, b], ()
    return None


def _linear(i: int, node: INode, prefix, imp, uses, consumers):
    if node.op.name != "transpose" or node.inputs[0] not in imp.params:
        return None
    w = node.inputs[0]
    p = prefix(w, ".weight")
    if not p or imp.params[w].array.ndim != 2 or node.op.perm not in (None, [1, 0]):
        return None
    t = node.outputs[0]
    if uses[t] != 1:
        return None
    j = consumers[t][0]
    mm = imp.nodes[j]
    if mm.op.name != "matmul" or mm.inputs[1] != t or uses[mm.outputs[0]] != 1:
        return None
    out = imp.params[w].array.shape[0]
    k = consumers[mm.outputs[0]][0]
    add = imp.nodes[k]
    bias = None
    if add.op.name == "add":
        other = add.inputs[1] if add.inputs[0] == mm.outputs[0] else add.inputs[0]
        if other in imp.params and prefix(other, ".bias") == p and imp.params[other].array.shape == (out,):
            bias = other
    if bias is None:
        return "std.linear", {"out": out, "bias": False}, [mm.inputs[0]], j, [w], (j,)
    return "std.linear", {"out": out, "bias": True}, [mm.inputs[0]], k, [w, bias], (j, k)


def _silu(node: INode, uses, consumers, imp) -> int | None:
    """The index of the mul making sigmoid(x) * x of this sigmoid, where nothing else reads it."""
    if node.op.name != "sigmoid" or uses[node.outputs[0]] != 1 or node.outputs[0] not in consumers:
        return None        # read by more than the mul, or a graph output
    j = consumers[node.outputs[0]][0]
    mul = imp.nodes[j]
    if mul.op.name == "mul" and sorted(mul.inputs, key=str) == sorted([node.inputs[0], node.outputs[0]], key=str):
        return j
    return None


def _op_paths(items: list[Item]) -> None:
    """Paths of the op items, from the exporter's names: graphnet's own ('layer1.0.add#Add'), or a
    PyTorch scope ('/layer1/layer1.0/relu/Relu' is the module layer1.0.relu; an op beside modules
    in its scope is named by its op there: 'layer1.0.add')."""
    from .convert import module_of
    scopes: dict[str, list[Item]] = {}
    for it in items:
        if it.kind != "op":
            continue
        name = it.onnx.onnx_name
        if "#" in name and not name.startswith("/"):
            it.path = _clean(name.partition("#")[0])
        elif name.startswith("/"):
            scopes.setdefault(module_of(name), []).append(it)
        else:
            it.path = _clean(it.onnx.name)
    modules = {p for it in items if it.path for p in _prefixes(it.path)}
    modules.update(p for scope in scopes for p in _prefixes(scope))
    for scope, members in scopes.items():
        real = [m for m in members if m.what != "constant"]
        alone = len(real) == 1 and scope and scope not in modules
        for m in members:
            if alone and m is real[0]:
                m.path = scope
            else:
                m.path = f"{scope}.{m.what}" if scope else m.what
    seen: set[str] = set()
    for it in items:
        base, k = it.path or it.what, 2
        path = base
        while path in seen:
            path, k = f"{base}_{k}", k + 1
        it.path = path
        seen.add(path)


def _clean(text: str) -> str:
    segs = [re.sub(r"[^A-Za-z0-9_-]", "_", s) for s in text.split(".") if s]
    return ".".join(segs) or "op"


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@dataclass
class Instance:
    path: str
    members: list                      # Item | Instance | Run, in graph order
    inputs: list[str]                  # flat refs consumed from outside, in order of first use
    output: str                        # the flat ref it gives
    block: "Block | None" = None
    values: dict = field(default_factory=dict)    # block arg -> value at this instance
    params: dict = field(default_factory=dict)    # param key its ops read -> (path below it, shape, dtype, trainable)

    @property
    def first(self) -> int:
        return min(m.first for m in self.members)

    @property
    def outputs(self) -> list[str]:
        return [self.output]


@dataclass
class Block:
    name: str
    signature: tuple
    instances: list
    args: dict = field(default_factory=dict)       # name -> default
    slots: dict = field(default_factory=dict)      # (member index, key) -> arg name
    optional: dict = field(default_factory=dict)   # member index -> flag arg


@dataclass
class Run:
    """Calls of one block at paths M.0, M.1, ... chained: one node with repeat or for_each."""
    path: str
    instances: list

    @property
    def first(self) -> int:
        return self.instances[0].first

    @property
    def inputs(self) -> list[str]:
        return self.instances[0].inputs

    @property
    def outputs(self) -> list[str]:
        return [self.instances[-1].output]


