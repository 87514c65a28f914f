"""Rematerialization: a forward tensor the backward reads is recomputed there, when it is much
larger than what it is computed from, instead of being kept from the forward pass to the backward.

The case this is for is attention's probabilities softmax(Q K^T / sqrt(d) + M), [B, heads, T, S]:
they grow with T x S where Q and K grow with T and S, and the backward needs Q and K anyway (for
the gradients of the product). Kept, they were 12 x 24 MiB of bert_base's gradient at T=512; a
fused attention kernel (torch's scaled_dot_product_attention) recomputes them in its backward,
and so does this pass, for attention written in primitives, wherever the pattern appears.

A saved tensor t (read by a backward node, not an output) is recomputed when its *region* exists:
the forward nodes that compute t, walking back from its producer through nodes that make one
pass over their input (elementwise ops, softmax, reshapes and transposes), stopping at tensors
that are live for the whole run (params, inputs) or small (at most 1/GROWTH of t), and rooted in
at least one *expanding* node, one whose output is GROWTH times each of its activation inputs (Q
K^T, not a layer's x W). So what stays alive in t's place is small, and what is recomputed is one
product per saved tensor plus passes over it, never a chain of layers. Sizes are compared where
every free dim is large (2**10 times its multiple), so a graph with free T recomputes at every T,
and a graph of fixed sizes where its numbers say so.

The region's nodes are emitted again just before the first backward node that reads t, and every
backward read of t (or of another tensor already recomputed) takes the copy: the forward's t is
then freed at its last forward reader, and the copy lives only through the backward of its layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from ..graph import Graph, Node
from ..ops.elementwise import Elementwise
from ..ops.shape import Flatten, Reshape, Squeeze, Transpose, Unsqueeze
from ..ops.softmax import LogSoftmax, Softmax
from ..types import TensorType

GROWTH = 8          # how much larger than each of its inputs an expanding node's output must be
LARGE = 1 << 10     # a free dim's value (times its multiple) where sizes are compared
REGION_NODES = 12   # at most this many nodes recomputed for one tensor
_PASSES = (Elementwise, Softmax, LogSoftmax, Reshape, Transpose, Squeeze, Unsqueeze, Flatten)


def rematerialized(graph: Graph, forward: list[Node], backward: list[Node], types: dict[str, TensorType],
                   copy_of: Callable[[Node], tuple[str, tuple]]) -> list[Node]:
    """`backward` with the saved tensors worth recomputing recomputed (the module docstring);
    `types` gets the copies' types, `copy_of(node)` gives the name and trace of a forward node's copy."""
    plan = _Regions(graph, forward, types)
    redone: dict[str, str] = {}     # forward tensor -> its copy in the backward
    out: list[Node] = []
    for node in backward:
        for x in node.inputs:
            if x is not None and x not in redone and (region := plan.region(x)):
                for m in region:
                    if m.outputs[0] in redone:
                        continue
                    copy, trace = copy_of(m)
                    redone[m.outputs[0]] = copy
                    types[copy] = types[m.outputs[0]]
                    out.append(dataclasses.replace(m, name=copy, outputs=(copy,), trace=trace,
                                                   inputs=tuple(redone.get(t, t) for t in m.inputs)))
        out.append(dataclasses.replace(node, inputs=tuple(redone.get(t, t) for t in node.inputs))
                   if redone.keys() & set(node.inputs) else node)
    return out


class _Regions:
    def __init__(self, graph: Graph, forward: list[Node], types: dict[str, TensorType]):
        self.types = types
        self.producer = {t: n for n in forward for t in n.outputs}
        self.order = {n.name: i for i, n in enumerate(forward)}
        self.live = set(graph.params) | set(graph.inputs) | set(graph.outputs.values())
        self.params = set(graph.params)
        multiples = {k: getattr(f, "multiple_of", None) or 1 for k, f in graph.dim_facts.items()}
        self.binding = {s: LARGE * multiples.get(s, 1) for t in types.values() for d in t.shape for s in d.symbols()}
        self._regions: dict[str, list[Node] | None] = {}
        self._sizes: dict[str, int | None] = {}

    def size(self, tensor: str) -> int | None:
        if tensor not in self._sizes:
            try:
                dims = [d.subs(self.binding).value for d in self.types[tensor].shape]
                self._sizes[tensor] = math.prod(dims) if all(d > 0 for d in dims) else None
            except (ValueError, ArithmeticError, KeyError):
                self._sizes[tensor] = None
        return self._sizes[tensor]

    def small(self, tensor: str, than: int) -> bool:
        s = self.size(tensor)
        return s is not None and s * GROWTH <= than

    def region(self, tensor: str) -> list[Node] | None:
        """The forward nodes recomputing `tensor`, in forward order, or None if it is kept."""
        if tensor not in self._regions:
            self._regions[tensor] = (self._find(tensor) if tensor in self.producer and tensor not in self.live
                                     else None)
        return self._regions[tensor]

    def _find(self, tensor: str) -> list[Node] | None:
        big = self.size(tensor)
        if big is None:
            return None
        chosen: dict[str, Node] = {}
        stack, expanding = [self.producer[tensor]], False
        while stack:
            m = stack.pop()
            if m.name in chosen:
                continue
            if len(m.outputs) != 1 or m.op.takes_body or len(chosen) == REGION_NODES:
                return None
            chosen[m.name] = m
            acts = [x for x in m.inputs if x is not None and x not in self.params]
            if isinstance(m.op, _PASSES):
                for x in acts:
                    if x in self.live or self.small(x, big):
                        continue
                    if x not in self.producer:
                        return None
                    stack.append(self.producer[x])
            elif (out := self.size(m.outputs[0])) is not None and acts and all(self.small(x, out) for x in acts):
                expanding = True
            else:
                return None
        return sorted(chosen.values(), key=lambda n: self.order[n.name]) if expanding else None
