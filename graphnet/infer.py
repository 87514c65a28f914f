"""Shape inference over a whole Graph IR: each node's op rule applied in topological order.

Expansion types nodes as it makes them (input patterns need the shapes), using the same op rules;
this pass serves graphs from other front ends (ONNX import) and re-checks any graph's types."""

from __future__ import annotations

from .dims import format_shape, multiples_known
from .graph import Graph, node_error
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


def bound_types(graph: Graph, binding: dict[str, int]) -> dict[str, TensorType]:
    """Every tensor's type with the free dims bound as a run binds them, each op's rule applied
    again to the sizes, since a size valid for the symbols may not be for a value: a 4-wide pool
    after a stride-4 conv on T = 8 has 2 cells left. Raises SpecError at the node that refuses,
    located as expansion locates it, with the binding and the input types named."""
    def bound(t: TensorType) -> TensorType:
        return TensorType(t.dtype, tuple(d.subs(binding) for d in t.shape))

    types = {name: bound(t) for name, t in graph.inputs.items()}
    types.update({name: p.type for name, p in graph.params.items()})
    for node in graph.nodes:
        args = [types[t] if t is not None else None for t in node.inputs]
        while args and args[-1] is None:
            args.pop()
        if node.op.takes_body:
            # made for the symbols, which it checks its inputs against: its body is checked instead
            bound_types(node.op.body, binding)
            types.update((t, bound(graph.types[t])) for t in node.outputs)
            continue
        try:
            out = node.op.bind(binding).infer(*args)
        except ShapeError as e:
            shown = ", ".join(f"{t.dtype}{format_shape(t.shape)}" for t in args if t is not None)
            dims = ", ".join(f"{k} = {v}" for k, v in sorted(binding.items()) if k in graph.free_dims())
            raise node_error(node.trace, node.op.name, (f"with {dims}: " if dims else "") + f"{e}"
                             + (f" (inputs: {shown})" if shown else "")) from None
        types.update(zip(node.outputs, (out,) if isinstance(out, TensorType) else tuple(out)))
    return types
