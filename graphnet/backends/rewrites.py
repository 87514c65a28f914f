"""Plan-time rewrites of the Graph IR for the NumPy back end.

Each rewrite takes a graph with its dims bound and `values`, the arrays known before any input
arrives (the weights, then what earlier rewrites derived), and returns an equivalent graph; a
derived array is added to `values` and declared as a non-trainable param of the new graph. They
change how the NumPy back end computes, never what: tests/backends/test_rewrites.py runs every
spec with and without them. `Network.session(optimize=False)` (`graphnet run --no-optimize`) skips
them. The ONNX export uses only fuse_recurrent_cells, since ONNX has those cells as ops; onnxruntime
makes the other optimizations itself.
"""

from __future__ import annotations

import re

import dataclasses

import numpy as np

from ..graph import Graph, Node, Param
from ..ops import TensorType
from ..ops.base import axis_index
from ..ops.conv import Conv
from ..ops.elementwise import Add, Elementwise, Mul
from ..ops.linalg import Matmul
from ..ops.norm import BatchNorm
from ..ops.recurrent import Gru, Lstm, Rnn
from ..ops.scan import Scan
from ..ops.shape import Squeeze, Unsqueeze


def optimize(graph: Graph, binding: dict[str, int], values: dict[str, np.ndarray]) -> Graph:
    graph = fuse_recurrent_cells(graph, values)
    graph = hoist_from_scans(graph)
    graph = fold_static(graph, binding, values)
    return fold_batch_norm(graph, values)


def _derived(node: Node, name: str, value: np.ndarray) -> Param:
    return Param(name, TensorType(str(value.dtype), value.shape), init=None, trainable=False, loc=node.trace[0].loc)


def _rebuilt(graph: Graph, nodes: list[Node], new_params: dict[str, Param], types: dict) -> Graph:
    """The graph with these nodes, its params plus the new ones, less those nothing reads."""
    read = {t for node in nodes for t in node.inputs} | set(graph.outputs.values())
    params = {k: p for k, p in {**graph.params, **new_params}.items() if k in read}
    return dataclasses.replace(graph, nodes=nodes, params=params, types=types)


def fold_static(graph: Graph, binding: dict[str, int], values: dict[str, np.ndarray]) -> Graph:
    """Compute once the nodes that read only params and constants (a weight's transpose, a mask,
    a zero initial state): they give the same arrays for every input."""
    known = set(graph.params)
    nodes, new_params, types = [], {}, dict(graph.types)
    for node in graph.nodes:
        if not all(t is None or t in known for t in node.inputs) or set(node.outputs) & set(graph.outputs.values()):
            nodes.append(node)
            continue
        op = node.op.bind(binding) if binding else node.op
        args = [values[t] if t is not None else None for t in node.inputs]
        while args and args[-1] is None:
            args.pop()
        result = op.compute(*args)
        results = (result,) if len(node.outputs) == 1 else tuple(result)
        for name, value in zip(node.outputs, results):
            value = np.asarray(value)
            values[name] = value
            new_params[name] = _derived(node, name, value)
            types[name] = new_params[name].type
            known.add(name)
    return _rebuilt(graph, nodes, new_params, types)


def fold_batch_norm(graph: Graph, values: dict[str, np.ndarray]) -> Graph:
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
        if not isinstance(bn.op, BatchNorm) or not all(t in values for t in bn.inputs[1:]):
            continue
        conv = producers.get(bn.inputs[0])
        if (conv is None or not isinstance(conv.op, Conv) or conv.outputs[0] in outputs
                or len(readers[conv.outputs[0]]) != 1 or any(t not in values for t in conv.inputs[2:] if t)):
            continue
        gamma, beta, mean, var = (values[t].astype(np.float64) for t in bn.inputs[1:])
        b = values[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2 and conv.inputs[2] else 0.0
        scale = gamma / np.sqrt(var + bn.op.epsilon)
        per_channel = (-1,) + (1,) * (graph.types[bn.outputs[0]].rank - 2)
        dtype = graph.types[bn.outputs[0]].dtype
        names = (f"{bn.name}#scale", f"{bn.name}#shift")
        for name, value in zip(names, (scale, (b - mean) * scale + beta)):
            values[name] = value.reshape(per_channel).astype(dtype)
            new_params[name] = _derived(bn, name, values[name])
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
    return _rebuilt(graph, nodes, new_params, types)


def hoist_from_scans(graph: Graph) -> Graph:
    """Work in a scan's body that does not depend on the carried state (a recurrent cell's input
    projection x_t W^T + b) is done once over the whole sequence before the loop: one large GEMM
    instead of one small one per step. The hoisted tensors enter the scan as extra sequences. The
    body left behind is marked to be optimized too, when its plan is made."""
    if not any(isinstance(node.op, Scan) for node in graph.nodes):
        return graph
    nodes, types = [], dict(graph.types)
    for node in graph.nodes:
        if isinstance(node.op, Scan):
            hoisted, node = _hoist(graph, node, types)
            nodes += hoisted
            node = dataclasses.replace(node, op=node.op.model_copy(update={"optimize": True}))
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
    new_body = _rebuilt(dataclasses.replace(body, inputs=inputs), kept, {}, body.types)
    new_op = op.model_copy(update={"body": new_body, "sequences": tuple(op.sequences[i] for i in kept_sequences)
                                   + tuple(new_sequences)})
    new_inputs = (scan.inputs[:nc] + tuple(scan.inputs[nc + i] for i in kept_sequences)
                  + tuple(rename(t) for t in new_sequences) + scan.inputs[nc + ns:])
    return hoisted, dataclasses.replace(scan, op=new_op, inputs=new_inputs)


def _batchable(body: Graph, node: Node, sequences: set[str], invariant: set[str], axis: int) -> bool:
    """Whether applying the node to whole sequences (a time axis inserted where the scan slices)
    gives its per-step results stacked along that axis."""
    rank = body.types[node.outputs[0]].rank
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


# std's recurrent cells and the fused ONNX op each one is: (op class, carried state names, the
# order of the cell's gate blocks in ONNX's order). std follows PyTorch: LSTM i, f, g, o and GRU
# r, z, n; ONNX wants LSTM i, o, f, c and GRU z, r, h. std's GRU applies the reset gate after the
# recurrent matmul: ONNX's linear_before_reset.
_CELLS = {
    "std.rnn_cell": (Rnn, ("h",), [0], {}),
    "std.lstm_cell": (Lstm, ("h", "c"), [0, 3, 1, 2], {}),
    "std.gru_cell": (Gru, ("h",), [1, 0, 2], {"linear_before_reset": True}),
}


def fuse_recurrent_cells(graph: Graph, values: dict[str, np.ndarray]) -> Graph:
    """A scan of one of std's recurrent cells over [B, T, I] or [T, B, I] is the fused rnn, lstm or
    gru op: one kernel per step here, and the LSTM/GRU/RNN op that onnxruntime runs natively when
    exported. The cell's weights are restacked in ONNX's layout (W, R, B, gate blocks reordered)."""
    nodes, new_params, types = [], {}, dict(graph.types)
    for node in graph.nodes:
        fused = _fused_cell(graph, node, values, new_params, types)
        nodes += fused if fused is not None else [node]
    if len(nodes) == len(graph.nodes) and not new_params:
        return graph
    return _rebuilt(graph, nodes, new_params, types)


def _fused_cell(graph, scan, values, new_params, types) -> list[Node] | None:
    op = scan.op
    if not isinstance(op, Scan) or op.sequences != ("x",) or op.stacked != ("y",):
        return None
    cells = {b for n in op.body.nodes for b in n.block_path if b in _CELLS}
    if len(cells) != 1:
        return None
    cell = cells.pop()
    kind, carried, order, attrs = _CELLS[cell]
    # the cell scanned directly: its inputs and outputs are the scan's own, in the same roles
    direct = {k: f"{scan.name}.{k}_next" for k in carried} | {"y": f"{scan.name}.h_next"}
    x_type = graph.types[scan.inputs[len(carried)]]
    # a cell's params are weight_ih, ... and its `suffix` (weight_ih_l0 in a spec named like torch.nn.LSTM)
    params = {re.sub(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_.*", r"\1", p.rsplit(".", 1)[-1]): p
              for p in op.params}
    if (op.carried != carried or op.body.outputs != direct
            or op.body_inputs() != [f"{scan.name}/{k}" for k in carried + ("x",)]
            or not all(cell in n.block_path for n in op.body.nodes)
            or x_type.rank != 3 or op.axis % 3 not in (0, 1)
            or set(params) != {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
            or any(t not in values for t in op.params)):
        return None
    hidden = values[params["weight_hh"]].shape[1]

    def restacked(array, axis_len):
        blocks = array.reshape((len(order), hidden) + array.shape[1:])
        return blocks[order].reshape((1, axis_len) + array.shape[1:])

    gh = len(order) * hidden
    w = restacked(values[params["weight_ih"]], gh)
    r = restacked(values[params["weight_hh"]], gh)
    b = np.concatenate([restacked(values[params["bias_ih"]], gh), restacked(values[params["bias_hh"]], gh)], axis=1)
    layout = 1 if op.axis % 3 == 1 else 0
    fused_op = kind(hidden_size=hidden, layout=layout, direction="reverse" if op.reverse else "forward", **attrs)
    state_axis = 1 if layout else 0
    trace = scan.trace
    out_nodes, state_names = [], []
    for name, t in zip(carried, scan.inputs[:len(carried)]):
        unsq = Unsqueeze(axes=[state_axis])
        out = f"{scan.name}#initial_{name}"
        types[out] = unsq.infer(graph.types[t])
        out_nodes.append(Node(out, unsq, (t,), (out,), trace))
        state_names.append(out)
    weights = []
    for key, value in (("W", w), ("R", r), ("B", b)):
        name = f"{scan.name}#{key}"
        values[name] = value.astype(x_type.dtype)
        new_params[name] = _derived(scan, name, values[name])
        types[name] = new_params[name].type
        weights.append(name)
    fused_outs = tuple(f"{scan.name}#{o}" for o in fused_op.outputs)
    fused_types = fused_op.infer(x_type, *(types[n] for n in weights), *(types[s] for s in state_names))
    types.update(zip(fused_outs, fused_types))
    out_nodes.append(Node(f"{scan.name}#{fused_op.name}", fused_op, (scan.inputs[len(carried)], *weights, *state_names),
                          fused_outs, trace))
    # the scan's outputs: carried states [B, H], then y [B, T, H] (or [T, B, H])
    results = dict(zip(op.output_names(), scan.outputs))
    for name, source, axis in [(c, f"{scan.name}#{c}", state_axis) for c in carried] + [("y", f"{scan.name}#y", 2 if layout else 1)]:
        sq = Squeeze(axes=[axis])
        out_nodes.append(Node(f"{scan.name}#{name}_out", sq, (source,), (results[name],), trace))
    return out_nodes
