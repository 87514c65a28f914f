"""Every name expansion gives: node names in a body, node and call paths, qualified param names,
tensor names. The Graph IR's names are made here and nowhere else, so a rule for computing a name
(from `index` or `item`, say) is added in one place."""

from __future__ import annotations

from ..errors import Location
from ..names import BadName, format_name
from ..spec import NodeSpec, ParamSpec
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


def default_segment(name: str, node: NodeSpec, k: int, count: int) -> str:
    """What copy k of a node without a `path` adds to the names it makes: its name, and `.k` after
    it for a node that repeats."""
    repeats = count > 1 or node.repeat is not None or node.for_each is not None
    return name + (f".{k}" if repeats else "")


def node_segment(ex: Expansion, node: NodeSpec, default: str, scope: dict) -> str:
    """What a copy adds to the names it makes: its `path` evaluated in the copy's scope ("" on a
    block or scan node: nothing, for its params), or the default."""
    if node.path is None:
        return default
    return computed_name(ex, node.path, scope, node.loc_of("path"), empty_ok=node.op is None)


def copy_path(body: Body, segment: str, default: str) -> str:
    """A copy's path: its ops' name, and the prefix of the names made in the block it calls. A
    call that adds no segment to its params' names still names its ops by the default."""
    return body.prefix + (segment or default)


def param_name(ex: Expansion, body: Body, name: str, decl: ParamSpec) -> str:
    """A declared param's qualified name: its `path` (or its key) after the params' prefix."""
    leaf = name if decl.path is None else computed_name(ex, decl.path, body.scope, decl.loc_of("path"))
    return body.param_prefix + leaf


def call_param_prefix(body: Body, segment: str) -> str:
    """What the params made inside a block call start with."""
    return body.param_prefix + segment + "." if segment else body.param_prefix


def computed_name(ex: Expansion, template: str, scope: dict, loc: Location, empty_ok: bool = False) -> str:
    try:
        return format_name(template, scope, empty_ok)
    except BadName as e:
        ex.fail(loc.shifted(e.column), e.message)


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
