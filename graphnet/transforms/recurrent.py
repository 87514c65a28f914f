"""Recurrent-cell fusion, for both back ends: a scan of a cell that declares the fused op it is
(`fuses_to:` in its block, e.g. std.lstm_cell) becomes that op, rnn, lstm or gru. The NumPy plan runs
one kernel per step instead of the cell's ops, and the ONNX export carries the LSTM/GRU/RNN op that
onnxruntime runs natively.

What fusion relies on is what the cell declares (ops/recurrent.py: CellFusion), checked when the
scan is expanded: which inputs and outputs are the carried states, which output is stacked, which
params are the op's weights and in what gate order their blocks are. Node names inside the cell do
not matter. A call that the op cannot express (a scan over a state, or along an axis other than 0
or 1 of the sequence, for which the op has no layout) runs as written: the scan stays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..graph import Graph, Node, Param
from ..ops.shape import Squeeze, Unsqueeze
from ..types import TensorType
from .derive import Known, derived_param, rebuilt

if TYPE_CHECKING:
    from ..ops.scan import Scan


def fuse_recurrent_cells(graph: Graph, known: Known) -> Graph:
    """The graph with every scan of a declaring cell, over [B, T, I] or [T, B, I], replaced by the
    fused op. The cell's weights are restacked in ONNX's layout (W, R, B, gate blocks reordered),
    derived into `known`."""
    nodes, new_params, types = [], {}, dict(graph.types)
    for node in graph.nodes:
        fused = _fused_cell(graph, node, known, new_params, types)
        nodes += fused if fused is not None else [node]
    if not new_params:
        return graph
    return rebuilt(graph, nodes, new_params, types)


def _fits(graph: Graph, scan: Node, known: Known) -> bool:
    """Whether the call can be the fused op (the declaration itself was checked at expansion)."""
    op = scan.op
    fusion = op.fuses_to
    return (set(op.carried) == set(fusion.states) and len(op.sequences) == 1 and op.stacked == (fusion.output,)
            and op.axis % 3 in (0, 1) and all(p in known for p in fusion.weights.values()))


def _fused_cell(graph: Graph, scan: Node, known: Known, new_params: dict[str, Param],
                types: dict[str, TensorType]) -> list[Node] | None:
    op = scan.op
    # by name, not class: see backends/rewrites.py
    if op.name != "scan" or op.fuses_to is None or not _fits(graph, scan, known):
        return None
    fusion = op.fuses_to
    outer = dict(zip(op.carried + op.sequences, scan.inputs))        # cell input -> outer tensor
    x = outer[op.sequences[0]]
    x_type = graph.types[x]
    w_type = graph.types[fusion.weights["w"]]
    hidden = graph.types[fusion.weights["r"]].shape[1].value
    gh, order = w_type.shape[0].value, fusion.gate_order()
    layout = 1 if op.axis % 3 == 1 else 0
    fused_op = fusion.op_class()(hidden_size=hidden, layout=layout,
                                 direction="reverse" if op.reverse else "forward", **fusion.attrs)

    def restacked(role: str):
        array = known[fusion.weights[role]]
        blocks = array.reshape((len(order), hidden) + array.shape[1:])
        return blocks[order].reshape((1, gh) + array.shape[1:])

    recipes = {
        "W": (lambda: restacked("w").astype(x_type.dtype), (1, gh, w_type.shape[1])),
        "R": (lambda: restacked("r").astype(x_type.dtype), (1, gh, hidden)),
        "B": (lambda: np.concatenate([restacked("wb"), restacked("rb")], axis=1).astype(x_type.dtype), (1, 2 * gh)),
    }
    weights = []
    for key, (compute, shape) in recipes.items():
        name = f"{scan.name}#{key}"
        known.derive(name, compute)
        new_params[name] = derived_param(scan, name, TensorType(x_type.dtype, shape), allocated=True)
        types[name] = new_params[name].type
        weights.append(name)

    state_axis = 1 if layout else 0
    trace = scan.trace
    out_nodes, initial = [], []
    for state in fusion.states:
        unsq = Unsqueeze(axes=[state_axis])
        out = f"{scan.name}#initial_{state}"
        types[out] = unsq.infer(graph.types[outer[state]])
        out_nodes.append(Node(out, unsq, (outer[state],), (out,), trace))
        initial.append(out)
    fused_outs = tuple(f"{scan.name}#{o}" for o in fused_op.outputs)
    fused_types = fused_op.infer(x_type, *(types[n] for n in weights), *(types[s] for s in initial))
    types.update(zip(fused_outs, fused_types))
    out_nodes.append(Node(f"{scan.name}#{fused_op.name}", fused_op, (x, *weights, *initial), fused_outs, trace))
    # the scan's outputs: the carried states [B, H], then the stacked output [B, T, H] (or [T, B, H])
    results = dict(zip(op.output_names(), scan.outputs))
    pairs = [(s, fused_outs[1 + k], state_axis) for k, s in enumerate(fusion.states)]
    for name, source, axis in pairs + [(fusion.output, fused_outs[0], 2 if layout else 1)]:
        sq = Squeeze(axes=[axis])
        out_nodes.append(Node(f"{scan.name}#{name}_out", sq, (source,), (results[name],), trace))
    return out_nodes
