"""Every name expansion gives: node names in a body, node and call paths, qualified param names,
tensor names. The Graph IR's names are made here and nowhere else, so a rule for computing a name
(from `index` or `item`, say) is added in one place."""

from __future__ import annotations

from ..spec import NodeSpec
from .state import Body, Expansion


def node_names(ex: Expansion, body: Body) -> list[str]:
    """The names of a body's nodes: each node's `name`, or its index in the list."""
    names = []
    seen: dict[str, NodeSpec] = {}
    for i, node in enumerate(body.block.nodes):
        name = node.name if node.name is not None else str(i)
        clash = seen.get(name)
        if clash is not None:
            ex.diags.add(node.loc_of("name"), f"duplicate node name '{name}' (first at line {clash.loc.line})")
        elif name in body.locals:
            ex.diags.add(node.loc_of("name"), f"node name '{name}' is already the name of an input or param")
        seen[name] = node
        names.append(name)
    return names


def is_node_name(body: Body, name: str) -> bool:
    return any((n.name or str(i)) == name for i, n in enumerate(body.block.nodes))


def known_names(body: Body) -> list[str]:
    """The names a reference in the body may use, for 'did you mean'."""
    return list(body.locals) + [n.name or str(i) for i, n in enumerate(body.block.nodes)]


def copy_path(body: Body, name: str, node: NodeSpec, k: int, count: int) -> str:
    """Copy k of a node: `prefix.name`, and `.k` after it for a node that repeats."""
    repeats = count > 1 or node.repeat is not None or node.for_each is not None
    return body.prefix + name + (f".{k}" if repeats else "")


def qualified(body: Body, name: str) -> str:
    """A name given in a body (a param, a node, an output) as the graph knows it: the block call's
    path, then the name (`fc1.weight`)."""
    return body.prefix + name


def call_prefix(path: str) -> str:
    """What the names made inside a block call start with."""
    return path + "."


def tensor_names(path: str, outputs: tuple[str, ...]) -> list[str]:
    """A node's output tensors: its path, or `path:output` for each of several outputs."""
    return [path] if len(outputs) == 1 else [f"{path}:{n}" for n in outputs]


def step_name(path: str, name: str) -> str:
    """The slice (or carried state) one step of a scan sees of its input `name`."""
    return f"{path}/{name}"
