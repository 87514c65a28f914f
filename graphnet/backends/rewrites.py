"""Plan-time rewrites of the Graph IR for the NumPy back end.

Each rewrite takes a graph with its dims bound and `known`, the values known before any input
arrives (the weights, then what earlier rewrites derived), and returns an equivalent graph. It
decides from types and from which tensors are known, never from their values: a derived array is
added to `known` as the function that computes it (transforms/derive.py) and declared as a
non-trainable param of the new graph. So the graph a plan runs, and its memory estimate, are known
before anything is allocated. The rewrites change how the NumPy back end computes, never what:
tests/backends/test_rewrites.py runs every spec with and without them. `Network.session(optimize=False)`
(`graphnet run --no-optimize`) skips them. Recurrent-cell fusion, which the ONNX export uses too, is
a shared pass (transforms/recurrent.py); onnxruntime makes the other optimizations itself.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..graph import Graph, Node, Param, node_error
from ..ops.base import axis_index, kernel_failure
from ..ops.conv import Conv
from ..ops.elementwise import Add, Elementwise, Mul
from ..ops.linalg import Matmul
from ..ops.norm import BatchNorm
from ..ops.scan import Scan
from ..transforms.derive import Known, derived_param, rebuilt
from ..transforms.recurrent import fuse_recurrent_cells
from ..types import TensorType


def optimize(graph: Graph, binding: dict[str, int], known: Known) -> Graph:
    graph = fuse_recurrent_cells(graph, known)
    graph = hoist_from_scans(graph)
    graph = fold_static(graph, binding, known)
    return fold_batch_norm(graph, known)


def _bound(graph: Graph, tensor: str, binding: dict[str, int]) -> TensorType:
    t = graph.types[tensor]
    return TensorType(t.dtype, tuple(d.subs(binding) for d in t.shape))


def fold_static(graph: Graph, binding: dict[str, int], known: Known) -> Graph:
    """Compute once the nodes that read only params and constants (a weight's transpose, a mask,
    a zero initial state): they give the same arrays for every input. A scan is left to run: its
    body needs the back end's engine, which a fold does not have."""
    static = set(graph.params)
    nodes, new_params, types = [], {}, dict(graph.types)
    for node in graph.nodes:
        if (not all(t is None or t in static for t in node.inputs) or set(node.outputs) & set(graph.outputs.values())
                or node.op.takes_body):
            nodes.append(node)
            continue
        op = node.op.bind(binding) if binding else node.op

        @functools.cache
        def results(node=node, op=op):
            args = [known[t] if t is not None else None for t in node.inputs]
            while args and args[-1] is None:
                args.pop()
            try:
                result = op.compute(*args)
            except Exception as e:   # a constant's value breaks the op (a range past its table)
                raise node_error(node.trace, op.name, kernel_failure(e, args)) from None
            return (result,) if len(node.outputs) == 1 else tuple(result)

        for k, name in enumerate(node.outputs):
            known.derive(name, lambda results=results, k=k: results()[k])
            new_params[name] = derived_param(node, name, _bound(graph, name, binding), allocated=op.fresh)
            types[name] = new_params[name].type
            static.add(name)
    return rebuilt(graph, nodes, new_params, types)


def fold_batch_norm(graph: Graph, known: Known) -> Graph:
    """conv then batch_norm with known statistics is the conv without its bias, then one per-channel
    scale and shift written into the conv's own output: y = conv(x, w) * s + ((b - mean) * s + beta),
    s = gamma / sqrt(var + eps). Scaling w instead would skip that pass but hold a second copy of
    every conv weight (the caller keeps the originals): twice the weights in memory."""
    readers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for t in node.inputs:
            if t is not None:
                readers.setdefault(t, []).append(node)
    producers = graph.producers
    outputs = set(graph.outputs.values())
    replaced: dict[str, list[Node]] = {}       # node name -> the nodes in its place (none: dropped)
    new_params: dict[str, Param] = {}
    types = dict(graph.types)
    for bn in graph.nodes:
        if not isinstance(bn.op, BatchNorm) or not all(t in known for t in bn.inputs[1:]):
            continue
        conv = producers.get(bn.inputs[0])
        if (conv is None or not isinstance(conv.op, Conv) or conv.outputs[0] in outputs
                or len(readers[conv.outputs[0]]) != 1 or any(t not in known for t in conv.inputs[2:] if t)):
            continue
        out = graph.types[bn.outputs[0]]
        per_channel = graph.types[bn.inputs[1]].shape + (1,) * (out.rank - 2)

        @functools.cache
        def scale_shift(bn=bn, conv=conv, per_channel=per_channel, dtype=out.dtype):
            gamma, beta, mean, var = (known[t].astype(np.float64) for t in bn.inputs[1:])
            b = known[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2 and conv.inputs[2] else 0.0
            scale = gamma / np.sqrt(var + bn.op.epsilon)
            return tuple(v.reshape([int(d) for d in per_channel]).astype(dtype)
                         for v in (scale, (b - mean) * scale + beta))

        names = (f"{bn.name}#scale", f"{bn.name}#shift")
        for k, name in enumerate(names):
            known.derive(name, lambda scale_shift=scale_shift, k=k: scale_shift()[k])
            new_params[name] = derived_param(bn, name, TensorType(out.dtype, per_channel), allocated=True)
            types[name] = new_params[name].type
        conv_out, scaled = f"{bn.name}#conv", f"{bn.name}#scaled"
        types[conv_out] = types[scaled] = graph.types[bn.outputs[0]]
        replaced[conv.name] = []
        replaced[bn.name] = [
            dataclasses.replace(conv, inputs=conv.inputs[:2], outputs=(conv_out,)),
            Node(f"{bn.name}#scale", Mul(), (conv_out, names[0]), (scaled,), bn.trace),
            Node(f"{bn.name}#shift", Add(), (scaled, names[1]), bn.outputs, bn.trace),
        ]
    if not replaced:
        return graph
    nodes = [m for n in graph.nodes for m in replaced.get(n.name, [n])]
    return rebuilt(graph, nodes, new_params, types)


def hoist_from_scans(graph: Graph) -> Graph:
    """Work in a scan's body that does not depend on the carried state (a recurrent cell's input
    projection x_t W^T + b) is done once over the whole sequence before the loop: one large GEMM
    instead of one small one per step. The hoisted tensors enter the scan as extra sequences. The
    body left behind is rewritten too when the back end compiles its plan."""
    if not any(isinstance(node.op, Scan) for node in graph.nodes):
        return graph
    nodes, types = [], dict(graph.types)
    for node in graph.nodes:
        if isinstance(node.op, Scan):
            hoisted, node = _hoist(graph, node, types)
            nodes += hoisted
        nodes.append(node)
    return dataclasses.replace(graph, nodes=nodes, types=types)


def _hoist(graph: Graph, scan: Node, types: dict[str, TensorType]) -> tuple[list[Node], Node]:
    """The nodes to run before the scan, and the scan left; the hoisted tensors' types go to `types`."""
    op: Scan = scan.op
    body = op.body
    names = op.body_inputs()
    nc, ns = len(op.carried), len(op.sequences)
    outer = dict(zip(names + list(op.params), scan.inputs))     # body tensor -> outer tensor
    sequences = set(names[nc:nc + ns])
    invariant = set(op.params)
    moved: list[Node] = []
    for node in body.nodes:
        if all(t is None or t in invariant for t in node.inputs):
            invariant.update(node.outputs)
        elif _batchable(body, node, sequences, invariant, op.axis):
            sequences.update(node.outputs)
            moved.append(node)
    if not moved:
        return [], scan
    moved_names = {n.name for n in moved}
    kept, wanted = [], set(body.outputs.values())
    for node in reversed(body.nodes):     # what the step still computes, less what nothing reads now
        if node.name not in moved_names and set(node.outputs) & wanted:
            kept.insert(0, node)
            wanted.update(t for t in node.inputs if t is not None)
    new_sequences = [t for n in moved for t in n.outputs if t in wanted]
    needed = {t for n in moved for t in n.inputs if t is not None}
    chosen = set(moved_names)
    for node in reversed(body.nodes):    # the invariant nodes the moved ones read, however indirectly
        if node.name not in chosen and set(node.outputs) & needed:
            chosen.add(node.name)
            needed.update(t for t in node.inputs if t is not None)

    def rename(t: str | None) -> str | None:
        return None if t is None else outer.get(t, f"{scan.name}#{t}")

    hoisted = []
    for node in body.nodes:
        if node.name in chosen:
            outs = tuple(rename(t) for t in node.outputs)
            hoisted.append(dataclasses.replace(node, name=f"{scan.name}#{node.name}",
                                               inputs=tuple(rename(t) for t in node.inputs), outputs=outs))
            for t, o in zip(node.outputs, outs):
                per_step = body.types[t]
                if node.name in moved_names:
                    at = axis_index(op.axis, per_step.rank + 1)
                    length = graph.types[scan.inputs[nc]].shape[axis_index(op.axis, graph.types[scan.inputs[nc]].rank)]
                    types[o] = TensorType(per_step.dtype, per_step.shape[:at] + (length,) + per_step.shape[at:])
                else:
                    types[o] = per_step
    # sequences the step no longer reads are no longer sliced (one stays: it gives the length)
    dropped = [t for t in names[nc:nc + ns] if t not in wanted][:ns - 1 + len(new_sequences)]
    kept_sequences = [i for i, t in enumerate(names[nc:nc + ns]) if t not in dropped]
    inputs = {k: v for k, v in body.inputs.items() if k not in dropped}
    inputs.update({t: body.types[t] for t in new_sequences})
    new_body = rebuilt(dataclasses.replace(body, inputs=inputs), kept, {}, body.types)
    # the body is no longer the cell it was: what a cell declares it fuses to no longer holds
    new_op = op.model_copy(update={"body": new_body, "sequences": tuple(op.sequences[i] for i in kept_sequences)
                                   + tuple(new_sequences), "fuses_to": None})
    new_inputs = (scan.inputs[:nc] + tuple(scan.inputs[nc + i] for i in kept_sequences)
                  + tuple(rename(t) for t in new_sequences) + scan.inputs[nc + ns:])
    return hoisted, dataclasses.replace(scan, op=new_op, inputs=new_inputs)


def _batchable(body: Graph, node: Node, sequences: set[str], invariant: set[str], axis: int) -> bool:
    """Whether applying the node to whole sequences (a time axis inserted where the scan slices)
    gives its per-step results stacked along that axis."""
    rank = body.types[node.outputs[0]].rank
    if not -(rank + 1) <= axis <= rank:     # a result too small to hold the time axis (a gradient's sum)
        return False
    at = axis_index(axis, rank + 1)
    ins = [t for t in node.inputs if t is not None]
    if not all(t in sequences or t in invariant for t in ins):
        return False
    if isinstance(node.op, Elementwise):
        # sequence operands line up with the output; an invariant one may only cover the axes after time
        return all(body.types[t].rank == rank if t in sequences else body.types[t].rank <= rank - at for t in ins)
    if isinstance(node.op, Matmul) and len(ins) == 2:
        a, b = ins
        return (a in sequences and b in invariant and body.types[b].rank == 2
                and axis_index(axis, body.types[a].rank + 1) <= body.types[a].rank - 1)
    return False
