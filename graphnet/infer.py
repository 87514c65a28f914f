"""Shape inference over a whole Graph IR: each node's op rule applied in topological order.

Expansion types nodes as it makes them (input patterns need the shapes), using the same op rules;
this pass serves graphs from other front ends (ONNX import) and re-checks any graph's types."""

from __future__ import annotations

from .dims import multiples_known
from .graph import Graph
from .ops import ShapeError, TensorType


def infer_types(graph: Graph) -> dict[str, TensorType]:
    """Every tensor's type from the graph inputs and params; raises ShapeError naming the node.
    The free dims' multiple_of facts are in force, as they were when the graph was expanded."""
    with multiples_known({k: f.multiple_of for k, f in graph.dim_facts.items()}):
        return _infer_types(graph)


def _infer_types(graph: Graph) -> dict[str, TensorType]:
    types: dict[str, TensorType] = dict(graph.inputs)
    types.update({name: p.type for name, p in graph.params.items()})
    for node in graph.nodes:
        args = [types[t] if t is not None else None for t in node.inputs]
        while args and args[-1] is None:
            args.pop()
        try:
            out = node.op.infer(*args)
        except ShapeError as e:
            raise ShapeError(f"node '{node.name}' ({node.op.name}): {e}") from None
        outs = (out,) if isinstance(out, TensorType) else tuple(out)
        if len(outs) != len(node.outputs):
            raise ShapeError(f"node '{node.name}' ({node.op.name}) gives {len(outs)} outputs, "
                             f"the graph names {len(node.outputs)}")
        types.update(zip(node.outputs, outs))
    return types
