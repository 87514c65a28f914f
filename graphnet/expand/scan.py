"""Scan nodes: a block expanded once, on one step's slices of its sequences, becomes the body graph
of a scan op. The core expands the body between the two halves here: what each step sees, before,
and the scan node made from the expanded body, after."""

from __future__ import annotations

from dataclasses import dataclass

from ..dims import Dim
from ..errors import did_you_mean
from ..graph import Graph, Node
from ..ops import ShapeError, TensorType
from ..spec import BlockSpec, NodeSpec
from .names import step_name
from .op_nodes import add_node
from .state import Absent, Body, Expansion, Failed, Result, Tensor


@dataclass
class Steps:
    """A scan node's inputs, and what one step of its body sees of each."""

    label: str                      # the block's label in messages
    block: BlockSpec
    given: dict[str, Tensor | Absent]
    carried: list[str]              # block inputs carried from step to step, in the block's order
    sequences: list[str]            # block inputs sliced along the axis, as `over` lists them
    steps: dict[str, Tensor]        # carried, then sequences: the body's inputs


def scan_steps(ex: Expansion, node: NodeSpec, block: BlockSpec, label: str, path: str, inputs) -> Steps:
    names = list(block.inputs)
    given = dict(inputs) if isinstance(inputs, dict) else dict(zip(names, inputs))
    for i, name in enumerate(node.over):
        if name not in block.inputs:
            ex.fail(node.loc_of("over", i), f"block '{label}' has no input '{name}' to scan over"
                    f"{did_you_mean(name, names)} (inputs: {', '.join(names)})")
    carried = [n for n in names if n not in node.over and isinstance(given.get(n), Tensor)]
    steps: dict[str, Tensor] = {}
    length: Dim | None = None
    for name in carried + list(node.over):
        value = given.get(name)
        if not isinstance(value, Tensor):
            ex.fail(node.loc_of("inputs") if node.inputs is not None else node.loc,
                    f"scan over block '{label}' needs input '{name}'")
        t = value.type
        if name in node.over:
            if not -t.rank <= node.axis < t.rank:
                ex.fail(node.loc_of("axis"), f"axis {node.axis} is out of range for '{name}' {t}")
            axis = node.axis % t.rank
            if length is not None and t.shape[axis] != length:
                ex.fail(node.loc_of("over"), f"sequences differ in length: {length} and {t.shape[axis]}")
            length = t.shape[axis]
            t = TensorType(t.dtype, t.shape[:axis] + t.shape[axis + 1:])
        steps[name] = Tensor(step_name(path, name), t)
    return Steps(label, block, given, carried, list(node.over), steps)


def _made_as(ex: Expansion, block: BlockSpec, params: list[str], key: str, path: str) -> str:
    """The name the block's param `key` was made under, which its `path` may compute
    (weight_ih_l0); `path.key` when the scan reads no such param, for the misfit to say so."""
    decl = block.params.get(key)
    made = [p for p in params if decl is not None and ex.params[p].loc == decl.loc]
    return made[0] if len(made) == 1 else f"{path}.{key}"


def scan_node(ex: Expansion, body: Body, node: NodeSpec, path: str, s: Steps, outputs: dict,
              body_nodes: list[Node], body_types: dict[str, TensorType]) -> Result:
    """The scan node over the expanded body: its outputs are the carried states, then the stacked ones."""
    from ..ops.recurrent import CellFusion      # here: a spec without a scan never imports the module
    from ..ops.scan import Scan
    if any(isinstance(v, Tensor) and v.type is None for v in outputs.values()):
        raise Failed()   # the body's own errors are recorded
    for name in s.carried:
        out = outputs.get(name)
        if not isinstance(out, Tensor) or out.type != s.steps[name].type:
            got = f"gives {out.type}" if isinstance(out, Tensor) else "has no such output"
            ex.fail(node.loc_of("scan"), f"block '{s.label}' must output '{name}' with the carried "
                    f"state's type {s.steps[name].type} (it {got})")
    stacked = [n for n in outputs if n not in s.carried]
    params = sorted({t for n in body_nodes for t in n.inputs if t in ex.params})
    body_types.update({p: ex.params[p].type for p in params})
    inputs = s.carried + s.sequences
    graph = Graph(path, {s.steps[n].name: s.steps[n].type for n in inputs},
                  {n: outputs[n].name for n in outputs}, {p: ex.params[p] for p in params},
                  body_nodes, body_types)
    decl = s.block.fuses_to
    fusion = None if decl is None else CellFusion(
        op=decl.op, states=decl.states, output=decl.output, gates=decl.gates, attrs=decl.attrs,
        weights={role: _made_as(ex, s.block, params, param, path) for role, param in decl.weights.items()})
    op = Scan(body=graph, carried=tuple(s.carried), sequences=tuple(s.sequences), stacked=tuple(stacked),
              params=tuple(params), axis=node.axis, reverse=node.reverse, fuses_to=fusion)
    misfit = fusion and fusion.misfit(op)
    if misfit:
        where, message = misfit
        ex.fail(s.block.loc_of("fuses_to", *where), f"block '{s.label}' declares fuses_to {fusion.op}, but {message}")
    args = [s.given[n] for n in inputs] + [Tensor(p, ex.params[p].type) for p in params]
    try:
        out_types = op.infer(*[a.type for a in args])
    except ShapeError as e:
        ex.report_node(body, node.loc, path, f"scan {s.label}", str(e))
    return add_node(ex, body, node, path, op, args, out_types)
