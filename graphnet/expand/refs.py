"""References: what a node's `inputs` and a body's `outputs` name, resolved to tensors, and which
inputs and params a body used."""

from __future__ import annotations

from typing import Any

from ..errors import Location, did_you_mean
from ..ops import OPS
from ..spec import NodeSpec
from .names import is_node_name, known_names, qualified
from .state import Absent, Body, Expansion, Failed, Poisoned, Result, Tensor


def refs(node: NodeSpec) -> list[str]:
    """The references a node's `inputs` writes."""
    if node.inputs is None:
        return []
    if isinstance(node.inputs, str):
        return [node.inputs]
    if isinstance(node.inputs, dict):
        return list(node.inputs.values())
    return [r for r in node.inputs if r is not None]


def mark_used(body: Body, node: NodeSpec, previous: str | None) -> None:
    """A node that failed (say, a bad repeat) before resolving its inputs still uses them;
    otherwise one mistake would also be reported as unused inputs or params."""
    body.used.update(ref.split(".")[0] for ref in refs(node))
    if node.inputs is None and previous is None and body.block.inputs:
        body.used.add(next(iter(body.block.inputs)))


def node_inputs(ex: Expansion, body: Body, node: NodeSpec, previous: str | None, chained: Result | None,
                first_only: bool = False) -> list[Tensor | Absent] | dict[str, Tensor | Absent]:
    """Resolve a node's inputs: a list, or a mapping when the node names them (a list with
    first_only). Copies after the first take the previous copy's output as their first input."""
    if chained is not None:
        carried = single_output(ex, chained, node, "the previous copy")
        if first_only:
            return [carried]
        fresh = node_inputs(ex, body, node, previous, None)
        if isinstance(fresh, dict):
            return {**fresh, next(iter(fresh)): carried}
        return [carried] + fresh[1:]
    if node.inputs is None:
        if node.op is not None and node.op in OPS and not OPS[node.op].inputs:
            return []   # constant, range: nothing to chain from
        if previous is None:
            first = next(iter(body.block.inputs), None)
            if first is None:
                return []
            return [resolve(ex, body, first, node.loc)]   # marks it used; skips a poisoned input
        prev = body.locals[previous]
        return [single_output(ex, prev, node, f"the previous node '{previous}'")]
    given = [node.inputs] if isinstance(node.inputs, str) else node.inputs
    if isinstance(given, dict):
        items = list(given.items())[:1] if first_only else given.items()
        resolved = {k: resolve(ex, body, v, node.loc_of("inputs", k)) for k, v in items}
        return list(resolved.values()) if first_only else resolved
    out = []
    for i, ref in enumerate(given):
        if first_only and i > 0:
            break
        loc = node.loc_of("inputs", i) if not isinstance(node.inputs, str) else node.loc_of("inputs")
        out.append(Absent() if ref is None else resolve(ex, body, ref, loc))
    return out


def single_output(ex: Expansion, result, node: NodeSpec, what: str) -> Tensor | Absent:
    if isinstance(result, Result) and result.kind == "poisoned":
        raise Poisoned()
    if isinstance(result, Result):
        if len(result.outputs) != 1:
            ex.fail(node.loc, f"{what} has several outputs ({', '.join(result.outputs)}); "
                              "name the one to use in 'inputs'")
        result = next(iter(result.outputs.values()))
    if isinstance(result, Tensor) and result.type is None:
        raise Poisoned()   # produced by a node that already failed
    return result


def resolve(ex: Expansion, body: Body, ref: str, loc: Location, where: str = "inputs") -> Tensor | Absent:
    head, _, out = ref.partition(".")
    if head not in body.locals:
        if is_node_name(body, head):
            raise Poisoned()   # a node that failed before it produced anything
        ex.fail(loc, f"unknown name '{head}' in {where}{did_you_mean(head, known_names(body))}")
    body.used.add(head)
    value = body.locals[head]
    if isinstance(value, Result) and value.kind == "poisoned":
        raise Poisoned()
    if isinstance(value, Result):
        if out:
            if out not in value.outputs and value.kind == "skipped":
                ex.fail(loc, f"node '{head}' is skipped (its 'if' is false), so it has no output '{out}': a "
                             f"skipped node forwards its first input as '{head}'; give this node the same 'if', "
                             f"or reference '{head}'")
            if out not in value.outputs and out in value.params:
                value = value.params[out]     # one tensor, two uses: tied, counted and exported once
            elif out not in value.outputs:
                params = f"; params: {', '.join(value.params)}" if value.params else ""
                ex.fail(loc, f"node '{head}' has no output '{out}' (outputs: {', '.join(value.outputs)}{params})")
            else:
                value = value.outputs[out]
        elif len(value.outputs) != 1:
            ex.fail(loc, f"node '{head}' has several outputs ({', '.join(value.outputs)}); "
                         f"say which, e.g. '{head}.{next(iter(value.outputs))}'")
        else:
            value = next(iter(value.outputs.values()))
    elif out:
        ex.fail(loc, f"'{head}' is a single tensor; it has no output '{out}'")
    if isinstance(value, Tensor) and value.type is None:
        raise Poisoned()
    return value


def resolve_outputs(ex: Expansion, body: Body) -> dict[str, Any]:
    """A body's outputs by name: tensors (tensor names at the top level), or Absent."""
    out = {}
    for name, ref in body.block.outputs.items():
        loc = body.block.loc_of("outputs", name)
        try:
            value = resolve(ex, body, ref, loc, "outputs")
        except (Failed, Poisoned):
            out[name] = Tensor(qualified(body, name), None)
            continue
        out[name] = value.name if body.prefix == "" and isinstance(value, Tensor) else value
    return out


def check_unused(ex: Expansion, body: Body, where: str) -> None:
    for name, loc in body.declared.items():
        if name not in body.used:
            kind = "input" if name in body.block.inputs else "param"
            ex.diags.add(loc, f"{kind} '{name}' of {where} is never used")
