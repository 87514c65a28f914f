"""What an exported model says about itself beyond its nodes: the names people read (a node is
named for the block call or node it lowers), the type of every tensor with graphnet's symbolic
dims (so Netron labels every edge, and ONNX's own shape inference has B and T where it would lose
them), the spec's doc, graphnet's name and version as the producer, and metadata: the spec, the
digest of its text, the parameter count, the free dims with where each is read and the spec's
requirements, and the rewrites applied."""

from __future__ import annotations

from collections import Counter
from importlib import metadata

import numpy as np
import onnx
from onnx import helper

from ..graph import Graph, Node
from ..types import ONNX_DTYPES, TensorType
from .onnx_write import contiguous


def version() -> str:
    try:
        return metadata.version("graphnet")
    except metadata.PackageNotFoundError:      # run from a checkout that was never installed
        return "unknown"


def value_info(name: str, t: TensorType, doc: str = "") -> onnx.ValueInfoProto:
    """The tensor's type; a dim that is an expression of free dims is a dim_param of its text."""
    shape = [d.value if d.is_const() else str(d) for d in t.shape]
    return helper.make_tensor_value_info(name, ONNX_DTYPES[t.dtype], shape, doc_string=doc)


def name_nodes(nodes: list[onnx.NodeProto], origin: dict[str, Node]) -> None:
    """Each node named for what it lowers: the block call's path where the call lowered to this one
    node ('fc', 'layer1.0.conv1'), else the IR node's path where that lowered to one node
    ('layer1.0.add'), else the path and the ONNX op ('l0#lstm#Transpose'); '/2'... where taken.
    backends/onnx_export.source_node reads the names back."""
    def call(ir: Node) -> str:
        return ir.trace[1].path if len(ir.trace) > 1 and ir.trace[1].path else ir.name

    irs = [origin.get(n.name) for n in nodes]
    per_call = Counter(call(ir) for ir in irs if ir is not None)
    per_node = Counter(ir.name for ir in irs if ir is not None)
    taken: set[str] = set()
    for n, ir in zip(nodes, irs):
        if ir is None:
            base = n.name
        elif per_call[call(ir)] == 1:
            base = call(ir)
        elif per_node[ir.name] == 1:
            base = ir.name
        else:
            base = f"{ir.name}#{n.op_type}"
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}/{k}"
        taken.add(name)
        n.name = name


def annotate(model: onnx.ModelProto, graph: Graph, arrays: dict[str, np.ndarray], types: dict[str, TensorType],
             options) -> None:
    """Docs, producer, metadata and the intermediate tensors' types, in place."""
    info = graph.info
    model.producer_name, model.producer_version = "graphnet", version()
    model.doc_string = model.graph.doc_string = info.doc
    free = graph.free_dims()
    read_at: dict[str, list[str]] = {}
    for name, t in graph.inputs.items():
        for axis, d in enumerate(t.shape):
            for s in sorted(d.symbols()):
                read_at.setdefault(s, []).append(f"{name}[{axis}]" if d.is_symbol() else f"{name}[{axis}] = {d}")
    props = {"graphnet.spec": graph.name, "graphnet.source": graph.source,
             "graphnet.source_sha256": info.digest, "graphnet.params": str(graph.param_count()),
             "graphnet.free_dims": ", ".join(free), "graphnet.dtype": options.dtype,
             "graphnet.rewrites": ", ".join(k for k in ("fold_batch_norm", "drop_zero_states", "fold_constants")
                                            if getattr(options, k))}
    for s in free:
        mentioned = [r for r in info.requires if s in _names(r)]
        props[f"graphnet.dim.{s}"] = "; ".join([f"read from {', '.join(read_at.get(s, []))}"] + mentioned)
    if info.requires:
        props["graphnet.requires"] = "; ".join(info.requires)
    if graph.dim_facts:     # ONNX has no place for what is known of a symbolic dim but the metadata
        props["graphnet.dim_facts"] = "; ".join(f"{name}: {facts.text()}" for name, facts in sorted(graph.dim_facts.items()))
    props.update(graph.metadata)     # what made the graph (train mode's mode, mask inputs and state outputs)
    helper.set_model_props(model, {k: v for k, v in props.items() if v})
    _intermediate_types(model, arrays, types)


def _names(text: str) -> set[str]:
    import re
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))


def _intermediate_types(model: onnx.ModelProto, arrays: dict[str, np.ndarray], types: dict[str, TensorType]) -> None:
    """value_info for every node output that is no graph output: graphnet's type where it has one
    (every tensor of the Graph IR), else what ONNX's shape inference finds (a builder's shape
    arithmetic), which it is given graphnet's types to start from."""
    g = model.graph
    outputs = {o.name for o in g.output}
    wanted = [o for n in g.node for o in n.output if o and o not in outputs and o not in arrays]
    known = [value_info(o, types[o]) for o in wanted if o in types]
    del g.value_info[:]
    g.value_info.extend(known)
    missing = [o for o in wanted if o not in types]
    if not missing:
        return
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name, a in arrays.items():   # types and small values; big ones by their dims alone
        t = (onnx.numpy_helper.from_array(contiguous(a), name) if a.size <= 64 else
             onnx.TensorProto(name=name, dims=a.shape, data_type=helper.np_dtype_to_tensor_dtype(a.dtype),
                              data_location=onnx.TensorProto.EXTERNAL))
        probe.graph.initializer.append(t)
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=False)
    except Exception:     # a model onnx cannot infer keeps the types graphnet gave it
        return
    found = {v.name: v for v in inferred.graph.value_info}
    g.value_info.extend(found[o] for o in missing if o in found)
