"""The Graph IR: a flat DAG of primitive ops, every front end's output and every back end's input.

Tensors are named: graph inputs by their input name, params by their qualified name
(`layer1.0.conv1.weight`), node outputs by the node's path (`layer1.0.conv1.conv`, or
`path:out` for a node with several outputs). Nodes are stored in a topological order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .dims import Dim, dim_prod, dim_sum
from .errors import Location, Note, SpecError, is_std_location
from .ops import Op
from .types import TensorType


@dataclass(frozen=True)
class Frame:
    """One level of the instantiation stack: where a node or block call was written."""

    loc: Location
    path: str          # the path of the node or block call at this level
    block: str         # the block this level is inside ('' at the top level)


@dataclass(frozen=True)
class Node:
    name: str                          # path, e.g. layer1.0.conv1.conv
    op: Op
    inputs: tuple[str | None, ...]     # tensor names; None for an omitted optional input
    outputs: tuple[str, ...]
    trace: tuple[Frame, ...]           # innermost first: the op line, then each enclosing call

    @property
    def block_path(self) -> tuple[str, ...]:
        """The blocks this node sits in, outermost first, e.g. ('basic_block', 'std.conv2d')."""
        return tuple(f.block for f in reversed(self.trace) if f.block)


def node_error(trace: tuple[Frame, ...], op: str, message: str) -> SpecError:
    """`node 'PATH' (OP): message` about a node found wrong after expansion (by its value bounds, a
    kernel or onnxruntime), located as expansion locates a node's errors: at the innermost line the
    user wrote, with the enclosing block and calls as notes."""
    primary = next((f for f in trace if not is_std_location(f.loc)), trace[0])
    notes = tuple(Note(f.loc, f"in block '{f.block}' at node '{f.path}'" if f is trace[0] and f.block
                       else (f"from '{f.path}'" if f.path else "here"))
                  for f in trace if f is not primary)
    return SpecError.at(primary.loc, f"node '{trace[0].path}' ({op}): {message}", notes)


@dataclass(frozen=True)
class Param:
    name: str
    type: TensorType
    init: Any                           # an init scheme from graphnet.init
    trainable: bool
    loc: Location
    # Derived by a rewrite into an array of its own (a folded mask, restacked cell weights), which a
    # plan holds beyond the weights; False for weights and for views of them (a weight's transpose).
    allocated: bool = False
    init_loc: Location | None = None    # where its init is written, for errors in making it

    @property
    def size(self) -> int:
        return dim_prod(self.type.shape).value


@dataclass
class Graph:
    name: str
    inputs: dict[str, TensorType]
    outputs: dict[str, str]             # output name -> tensor name
    params: dict[str, Param]
    nodes: list[Node]
    types: dict[str, TensorType]        # every tensor's type
    input_locs: dict[str, Location] = field(default_factory=dict)
    source: str = ""
    output_locs: dict[str, Location] = field(default_factory=dict)
    # What a transform records about the graph it made (train mode's `graphnet.mode`), as text that
    # the ONNX export writes into the model's metadata_props.
    metadata: dict[str, str] = field(default_factory=dict)

    @cached_property
    def producers(self) -> dict[str, Node]:
        return {t: node for node in self.nodes for t in node.outputs}

    @cached_property
    def static_tensors(self) -> frozenset[str]:
        """Params, and the outputs of nodes computed from params and constants alone (a weight's
        transpose, a mask table): the same for every input, so drawn and counted as weights."""
        static = set(self.params)
        for node in self.nodes:
            if all(t is None or t in static for t in node.inputs):
                static.update(node.outputs)
        return frozenset(static)

    def free_dims(self) -> list[str]:
        seen: dict[str, None] = {}
        for t in self.inputs.values():
            for d in t.shape:
                for s in sorted(d.symbols()):
                    seen[s] = None
        return list(seen)

    def param_count(self, trainable: bool | None = None) -> int:
        return sum(p.size for p in self.params.values() if trainable is None or p.trainable == trainable)

    def node_macs(self, node: Node) -> Dim:
        ins = [self.types[t] for t in node.inputs if t is not None]
        return node.op.macs(ins, [self.types[t] for t in node.outputs])

    def total_macs(self) -> Dim:
        return dim_sum(self.node_macs(n) for n in self.nodes)
