"""Integer value bounds over a Graph IR: what is known of each tensor's values before it runs.

Each op states its own rule (`Op.value_bounds`, unknown by default): a range or an int constant
knows its values, add, sub, mul and cast carry bounds through, ops that move values (reshape,
expand, slice, ...) keep them. A gather whose indices surely reach past its table raises, so
`validate` refuses `range(T)` indexing a 512-row position table with T bound to 513 by `--dim`,
the error located at the gather node; a run checks again with the dims its inputs bind, before
anything runs. Only types and attributes are read: no array is made.
Scan bodies are not walked (their inputs change every step); their gathers are checked at run time.
"""

from __future__ import annotations

from .errors import Diagnostics
from .graph import Graph, node_error
from .ops import ShapeError, TensorType
from .ops.base import Bounds


def value_bounds(graph: Graph, binding: dict[str, int] | None = None) -> dict[str, Bounds]:
    """Tensor -> the bounds of its values, for the tensors whose bounds are known, with the free
    dims bound by `binding` when given; raises SpecError at every node whose bounds prove it
    fails at run time. Without a binding, the free dims with a `max` fact are also tried at the
    largest value their facts allow (`T: {max: 1024}` at T = 1024): a range(T) that a 1024-row
    table holds there is safe, and one it does not is refused, the binding named."""
    known = _value_bounds(graph, binding)
    largest = {} if binding else _largest_allowed(graph)
    if largest:
        shown = ", ".join(f"{k} = {v}" for k, v in largest.items())
        _value_bounds(graph, largest, f"with {shown}, the most {'its' if len(largest) == 1 else 'their'} facts allow: ")
    return known


def _largest_allowed(graph: Graph) -> dict[str, int]:
    return {name: f.max // f.multiple_of * f.multiple_of for name, f in sorted(graph.dim_facts.items())
            if f.max is not None and f.max >= f.multiple_of}


def _value_bounds(graph: Graph, binding: dict[str, int] | None, prefix: str = "") -> dict[str, Bounds]:
    known: dict[str, Bounds] = {}
    diags = Diagnostics()
    for node in graph.nodes:
        given = [known.get(t) if t is not None else None for t in node.inputs]
        if node.inputs and given.count(None) == len(given):
            continue          # nothing known of the inputs' values: nothing of the output's
        ins = [_bound(graph.types[t], binding) if t is not None else None for t in node.inputs]
        op = node.op.bind(binding) if binding else node.op
        try:
            out = op.value_bounds(ins, given)
        except ShapeError as e:
            diags.extend(node_error(node.trace, node.op.name, prefix + str(e)))
            continue
        if out is not None and len(node.outputs) == 1:
            known[node.outputs[0]] = out
    diags.raise_if_any()
    return known


def _bound(t: TensorType, binding: dict[str, int] | None) -> TensorType:
    return TensorType(t.dtype, tuple(d.subs(binding) for d in t.shape)) if binding else t
