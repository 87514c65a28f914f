"""What expansion works on: the state of one expansion, the body being expanded, and the values
that flow between nodes. Every other module of the package takes these as arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..errors import Diagnostics, Location, Note
from ..graph import Frame, Node, Param
from ..load import Library, is_std_location
from ..ops import TensorType
from ..spec import BlockSpec, NodeSpec


class Poisoned(Exception):
    """Raised to skip a node whose input already failed; never reported."""


class Failed(Exception):
    """A node failed and the error was already recorded."""


@dataclass
class Absent:
    """An optional input that was not given, or a param whose `if` is false."""


@dataclass
class Tensor:
    name: str
    type: TensorType | None     # None: poisoned


@dataclass
class Result:
    """What a node in a block body produced: its outputs by name, in order."""

    outputs: dict[str, Tensor | Absent]
    kind: str                   # 'op', 'block', 'skipped', 'poisoned'
    # a block call's params by their names below the call (`weight`, `wte.weight`), so another
    # node can use the same tensor (weight tying): `inputs: [h, embed.weight]`
    params: dict[str, Tensor] = field(default_factory=dict)


def poisoned() -> Result:
    """What a node that failed or was skipped for a failed input stands for: reading it skips the reader."""
    return Result({"y": Tensor("", None)}, "poisoned")


@dataclass
class Body:
    """The state of one block body being expanded: its scope, names, and what was used."""

    library: Library
    block: BlockSpec
    block_name: str
    prefix: str
    scope: dict[str, Any]
    trace: tuple[Frame, ...]
    locals: dict[str, Tensor | Absent | Result] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    declared: dict[str, Location] = field(default_factory=dict)   # inputs and params, for unused checks
    param_prefix: str = ""      # what params are named under: the prefix, but below a call whose path is ""


@dataclass
class Expansion:
    """What one expansion has made so far, and the counters that bound its work."""

    diags: Diagnostics = field(default_factory=Diagnostics)
    nodes: list[Node] = field(default_factory=list)           # the graph being built (a scan's body, inside one)
    types: dict[str, TensorType] = field(default_factory=dict)
    params: dict[str, Param] = field(default_factory=dict)
    param_order: list[str] = field(default_factory=list)     # the names of `params`, as made
    spec_dims: set[str] = field(default_factory=set)          # the spec's dims, which no block sees
    dim_facts: dict[str, Any] = field(default_factory=dict)   # free dim -> its spec.DimFacts
    block_stack: list[str] = field(default_factory=list)      # the block calls being expanded, outermost first
    made: dict[str, str] = field(default_factory=dict)        # every input, param and node name made, and what it is
    stacked: set[int] = field(default_factory=set)            # ids of the diagnostics whose notes hold their call stack
    copies_made: int = 0         # every copy of every node expanded so far, in every call
    enclosing_copies: int = 1    # how many times the body being expanded is expanded in all

    def claim(self, name: str, what: str) -> str | None:
        """Paths can give two things one name, which the Graph IR holds once: the problem, if so."""
        if name in self.made:
            return (f"the name '{name}' is already taken by {self.made[name]} made before; "
                    "every node and param needs its own path")
        self.made[name] = what
        return None

    def fail(self, loc: Location, message: str, notes=()) -> NoReturn:
        self.diags.add(loc, message, tuple(notes))
        raise Failed()

    def report_node(self, body: Body, node_loc: Location, path: str, what: str, message: str) -> NoReturn:
        """Record an error at the innermost user-written location, with the call stack as notes."""
        frames = [Frame(node_loc, path, body.block_name)] + list(body.trace)
        primary = next((f for f in frames if not is_std_location(f.loc)), frames[0])
        notes = [Note(f.loc, f"in block '{f.block}' at node '{f.path}'" if f is frames[0] and f.block
                      else (f"from '{f.path}'" if f.path else "here"))
                 for f in frames if f is not primary]
        self.diags.add(primary.loc, f"node '{path}' ({what}): {message}", tuple(notes))
        self.stacked.add(id(self.diags.items[-1]))
        raise Failed()

    def stop(self, body: Body, node: NodeSpec, loc: Location, path: str, message: str) -> None:
        """A limit on the work of expanding: reported like a node's error, then expansion stops."""
        try:
            self.report_node(body, loc, path, "block " + node.block if node.block else node.op or "scan", message)
        except Failed:
            self.diags.raise_if_any()
