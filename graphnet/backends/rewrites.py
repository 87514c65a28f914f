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
from typing import TYPE_CHECKING

import numpy as np

from ..dims import Dim
from ..graph import Graph, Node, Param, node_error
from ..ops.base import axis_index, kernel_failure
from ..ops.elementwise import Add, Elementwise, Mul
from ..ops.linalg import Matmul
from ..ops.norm import BatchNorm
from ..ops.shape import Split
from ..transforms.derive import Known, derived_param, rebuilt
from ..transforms.recurrent import fuse_recurrent_cells
from ..types import ITEMSIZE, TensorType, nbytes

if TYPE_CHECKING:
    from ..ops.scan import Scan

# Conv and Scan are matched by op name, not class: importing their modules only to compare would
# cost every cold `graphnet validate` of a network that has neither (op names are unique).


def optimize(graph: Graph, binding: dict[str, int], known: Known) -> Graph:
    graph = fuse_recurrent_cells(graph, known)
    graph = hoist_from_scans(graph)
    graph = fuse_shared_projections(graph)
    graph = fold_static(graph, binding, known)
    return fold_batch_norm(graph, known, binding)


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


def fold_batch_norm(graph: Graph, known: Known, binding: dict[str, int] | None = None) -> Graph:
    """conv then batch_norm with known statistics is one conv: y = conv(x, w * s) + ((b - mean) * s
    + beta), s = gamma / sqrt(var + eps), the shift as its bias, which the conv adds as it writes its
    output. The scaled weight is a second copy (the caller keeps the originals), so it is made only
    where it is no larger than the conv's output at this binding (a depthwise conv's, a 1x1 conv's
    over a large image) and w is known (not an input, as trained weights are): elsewhere, where twice
    the weights would cost more memory than the pass saves, the conv keeps w and its output is
    scaled and shifted in place."""
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
        if (conv is None or conv.op.name != "conv" or conv.outputs[0] in outputs
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
        weight = _bound(graph, conv.inputs[1], binding or {})
        if conv.inputs[1] in known and _no_larger(weight, _bound(graph, conv.outputs[0], binding or {})):
            scaled_w, bias = f"{bn.name}#weight", f"{bn.name}#bias"
            w_name, channels = conv.inputs[1], TensorType(out.dtype, per_channel[:1])
            known.derive(scaled_w, lambda w=w_name, s=names[0]:
                         known[w] * known[s].reshape((-1,) + (1,) * (known[w].ndim - 1)))
            known.derive(bias, lambda s=names[1]: known[s].reshape(-1))
            for name, t in ((scaled_w, weight), (bias, channels)):
                new_params[name] = derived_param(bn, name, t, allocated=True)
                types[name] = t
            replaced[conv.name] = []
            replaced[bn.name] = [dataclasses.replace(conv, inputs=(conv.inputs[0], scaled_w, bias), outputs=bn.outputs)]
            continue
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


def _no_larger(a: TensorType, b: TensorType) -> bool:
    """Whether a has no more entries than b, both of known size."""
    if not all(d.is_const() for d in a.shape + b.shape):
        return False
    return nbytes(a) // ITEMSIZE[a.dtype] <= nbytes(b) // ITEMSIZE[b.dtype]


def hoist_from_scans(graph: Graph) -> Graph:
    """Work in a scan's body that does not depend on the carried state (a recurrent cell's input
    projection x_t W^T + b) is done once over the whole sequence before the loop: one large GEMM
    instead of one small one per step. The hoisted tensors enter the scan as extra sequences. The
    body left behind is rewritten too when the back end compiles its plan."""
    if not any(node.op.name == "scan" for node in graph.nodes):
        return graph
    nodes, types = [], dict(graph.types)
    for node in graph.nodes:
        if node.op.name == "scan":
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


def fuse_shared_projections(graph: Graph) -> Graph:
    """Matmuls of one tensor by each part of a split along the last axis of a [K, N] weight, in
    order, are one matmul by the weight and a split of the product (self-attention's q, k and v
    projections by std.mha's split of in_proj_weight^T): one GEMM N wide instead of several
    narrower ones. When each product's only reader adds the same part of a split bias, the bias is
    added whole before the split. Made before fold_static, so the weight stays a view of the param."""
    readers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for t in node.inputs:
            if t is not None:
                readers.setdefault(t, []).append(node)
    producers, outputs = graph.producers, set(graph.outputs.values())
    replaced: dict[str, list[Node]] = {}
    types = dict(graph.types)
    for split in graph.nodes:
        if not _splits_last_axis(graph, split, 2):
            continue
        products = [readers.get(t, []) for t in split.outputs]
        if not all(len(r) == 1 and isinstance(r[0].op, Matmul) and r[0].inputs[1] == t
                   for r, t in zip(products, split.outputs)):
            continue
        matmuls = [r[0] for r in products]
        a = matmuls[0].inputs[0]
        if any(m.inputs[0] != a or m.outputs[0] in outputs for m in matmuls) or graph.types[a].rank < 2:
            continue
        first, dtype = matmuls[0], graph.types[a].dtype
        width = graph.types[split.inputs[0]].shape[1]
        wide = f"{first.name}#wide"
        types[wide] = TensorType(dtype, graph.types[first.outputs[0]].shape[:-1] + (width,))
        nodes = [Node(f"{first.name}#fused", Matmul(), (a, split.inputs[0]), (wide,), first.trace)]
        adds = [_part_added(graph, readers.get(m.outputs[0], []), m.outputs[0], outputs) for m in matmuls]
        bias = producers.get(adds[0][1]) if adds[0] else None
        results = tuple(m.outputs[0] for m in matmuls)
        if (bias is not None and _splits_last_axis(graph, bias, 1) and all(adds)
                and [t for _, t in adds] == list(bias.outputs) and bias.op.parts(Dim(0) + width) == split.op.parts(width)):
            shifted = f"{first.name}#shifted"
            types[shifted] = types[wide]
            nodes.append(Node(f"{first.name}#bias", Add(), (wide, bias.inputs[0]), (shifted,), first.trace))
            wide, results = shifted, tuple(add.outputs[0] for add, _ in adds)
            replaced.update({add.name: [] for add, _ in adds})
        nodes.append(dataclasses.replace(split, name=f"{first.name}#split", op=split.op.model_copy(update={"axis": -1}),
                                         inputs=(wide,), outputs=results))
        replaced[first.name] = nodes
        replaced.update({m.name: [] for m in matmuls[1:]})
    if not replaced:
        return graph
    nodes = [m for n in graph.nodes for m in replaced.get(n.name, [n])]
    return rebuilt(graph, nodes, {}, types)


def _splits_last_axis(graph: Graph, node: Node, rank: int) -> bool:
    """A split of a tensor of this rank along its last axis."""
    if not isinstance(node.op, Split) or len(node.outputs) < 2:
        return False
    return graph.types[node.inputs[0]].rank == rank and node.op.axis in (rank - 1, -1)


def _part_added(graph: Graph, readers: list[Node], product: str, outputs: set[str]) -> tuple[Node, str] | None:
    """(the add, its other input) where an add of a [N] tensor is the only reader of a [..., N] product."""
    if len(readers) != 1 or not isinstance(readers[0].op, Add) or readers[0].outputs[0] in outputs:
        return None
    add = readers[0]
    others = [t for t in add.inputs if t != product]
    if len(others) != 1:
        return None
    bias, out = graph.types[others[0]], graph.types[product]
    ok = bias.rank == 1 and bias.shape[0] == out.shape[-1] and graph.types[add.outputs[0]] == out
    return (add, others[0]) if ok else None
