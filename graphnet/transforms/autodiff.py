"""Reverse-mode autodiff as a Graph IR -> Graph IR transform.

From a forward graph, the tensors to differentiate (params and float inputs) and a cotangent input
per output, `differentiate` builds one graph computing the outputs and the gradients: the forward
nodes as they are, then, walking them backwards, each node's vjp (written in its op's class)
emitting nodes of primitive ops that map the cotangents of its outputs to those of its inputs.
Cotangents of a tensor read several times are added. Every new node is typed by its op's shape
rule as it is made, so free dims stay symbolic and the result is a graph like any other: the NumPy
plan runs it with its buffer reuse and memory guard (a forward activation lives until the last
backward node that reads it), the ONNX exporter lowers it, render draws it.

Backward nodes are named after the forward node they differentiate, '<path>#grad<k>', and carry its
trace (paths marked '∂'), so an error in one (and onnxruntime's, by source_node) is located at the
node the user wrote, and a diagram draws the backward of each block call as a box of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ..dims import multiples_known
from ..errors import Location
from ..graph import Frame, Graph, Node, node_error
from ..ops import OPS, ShapeError
from ..ops.base import NoVjp
from ..types import FLOAT_DTYPES, TensorType
from .remat import rematerialized

GRAD = "grad."            # the gradient of tensor t is the output 'grad.<t>'
COTANGENT = "cotangent."  # the cotangent of output o is the input 'cotangent.<o>'
BACKWARD = "∂"            # marks the paths of the backward nodes in their traces


def differentiable(graph: Graph) -> list[str]:
    """What gradients are taken of by default: the trainable float params and the float inputs."""
    params = [n for n, p in graph.params.items() if p.trainable and p.type.dtype in FLOAT_DTYPES]
    return params + [n for n, t in graph.inputs.items() if t.dtype in FLOAT_DTYPES]


def gradient_graph(graph: Graph, wrt: Iterable[str] | None = None) -> Graph:
    """The graph computing `graph`'s outputs and the gradients 'grad.<name>' of `wrt` (params and
    inputs; by default `differentiable(graph)`), given an input 'cotangent.<output>' for each
    float output."""
    cotangents = {o: COTANGENT + o for o, t in graph.outputs.items() if graph.types[t].dtype in FLOAT_DTYPES}
    return differentiate(graph, list(differentiable(graph) if wrt is None else wrt), cotangents)


def differentiate(graph: Graph, wrt: list[str], cotangents: dict[str, str],
                  accumulate: dict[str, str] | None = None) -> Graph:
    """`graph` with inputs named by `cotangents` (output -> input name) and outputs 'grad.<w>' for
    each w of `wrt`. With `accumulate` (param -> input name), each of those params' gradients is
    added to that further input of its type (a scan's running sum over its steps). The free dims'
    multiple_of facts are in force, as they were when the forward was typed."""
    with multiples_known({k: f.multiple_of for k, f in graph.dim_facts.items()}):
        return _differentiate(graph, wrt, cotangents, accumulate)


def _differentiate(graph: Graph, wrt: list[str], cotangents: dict[str, str],
                   accumulate: dict[str, str] | None) -> Graph:
    for w in wrt:
        if w not in graph.inputs and w not in graph.params:
            raise ValueError(f"'{w}' is neither an input nor a param of '{graph.name}'")
    types = dict(graph.types)
    inputs = dict(graph.inputs)
    for out, name in cotangents.items():
        inputs[name] = types[name] = graph.types[graph.outputs[out]]
    for param, name in (accumulate or {}).items():
        inputs[name] = types[name] = graph.params[param].type
    backward = _Backward(graph, types)
    nodes = backward.forward_nodes(wrt, cotangents)
    seeds: dict[str, list[str]] = {}
    for out, name in cotangents.items():      # outputs that are one tensor get the sum of their cotangents
        seeds.setdefault(graph.outputs[out], []).append(name)
    grads = backward.run(nodes, wrt, seeds)
    outputs = dict(graph.outputs)
    for w in wrt:
        t = grads.get(w) or backward.zeros(types[w], at=None)
        if accumulate and w in accumulate:
            t = backward.emit_at(None, "add", accumulate[w], t)
        outputs[GRAD + w] = t
    locs = dict(graph.input_locs)
    for out, name in cotangents.items():
        locs[name] = graph.output_locs.get(out, Location(graph.source))
    kept = _read_by(backward.nodes, set(outputs.values()))
    made = {t for n in backward.nodes for t in n.outputs} - {t for n in kept for t in n.outputs}
    kept = rematerialized(graph, nodes, kept, types, lambda m: (backward.name_after(m), _backward_trace(m.trace)))
    return dataclasses.replace(graph, inputs=inputs, outputs=outputs, nodes=nodes + kept,
                               types={k: v for k, v in types.items() if k not in made}, input_locs=locs)


def _read_by(nodes: list[Node], needed: set[str]) -> list[Node]:
    """The backward nodes some output depends on. A vjp gives every input its cotangent, also one
    nothing is differentiated for (a constant scale, a frozen weight): left in, those nodes would
    cost their time and keep forward activations alive until they ran (attention's raw scores, read
    only by the cotangent of the constant that scales them)."""
    kept = []
    for node in reversed(nodes):
        if needed.intersection(node.outputs):
            kept.append(node)
            needed.update(t for t in node.inputs if t is not None)
    return kept[::-1]


class _Backward:
    """The builder the vjps emit through (ops/base.py: Grad): it names, types and locates each new
    node after the forward node being differentiated."""

    def __init__(self, graph: Graph, types: dict[str, TensorType]):
        self.graph, self.types = graph, types
        self.nodes: list[Node] = []
        self.at: Node | None = None
        self._count: dict[str, int] = {}

    # -- the forward part --------------------------------------------------------------------
    def forward_nodes(self, wrt: list[str], cotangents: dict[str, str]) -> list[Node]:
        """The forward nodes, those to be differentiated as their op's `for_backward` runs them."""
        self.active = set(wrt)
        for node in self.graph.nodes:
            if any(t in self.active for t in node.inputs if t is not None):
                self.active.update(t for t in node.outputs if self.types[t].dtype in FLOAT_DTYPES)
        reaching = {self.graph.outputs[o] for o in cotangents}
        for node in reversed(self.graph.nodes):
            if reaching.intersection(node.outputs):
                reaching.update(t for t in node.inputs if t is not None)
        self.reaching = reaching
        nodes = []
        for node in self.graph.nodes:
            op = node.op.for_backward() if self._differentiated(node) else node.op
            if op is not node.op:
                extra = op.output_names()[len(node.outputs):]
                outs = node.outputs + tuple(f"{node.name}:{n}" for n in extra)
                made = op.infer(*self._trimmed_types(node.inputs))
                self.types.update(zip(outs, made))
                node = dataclasses.replace(node, op=op, outputs=outs)
            nodes.append(node)
        return nodes

    def _differentiated(self, node: Node) -> bool:
        return (any(t in self.active for t in node.inputs if t is not None)
                and any(t in self.reaching for t in node.outputs))

    def _trimmed_types(self, names) -> list[TensorType | None]:
        args = [self.types[t] if t is not None else None for t in names]
        while args and args[-1] is None:
            args.pop()
        return args

    # -- the backward walk -------------------------------------------------------------------
    def run(self, nodes: list[Node], wrt: list[str], seeds: dict[str, list[str]]) -> dict[str, str]:
        """Each tensor's cotangent, from the seeds (tensor -> cotangents to add), walking back."""
        parts: dict[str, list[str]] = {t: list(c) for t, c in seeds.items()}
        for node in reversed(nodes):
            if not self._differentiated(node):
                continue
            self.at = node
            dys = tuple(self._total(parts, t) for t in node.outputs)
            if all(d is None for d in dys):
                continue
            try:
                dxs = node.op.vjp(self, node.inputs, node.outputs, dys)
            except NoVjp as e:
                raise node_error(node.trace, node.op.name, f"has no gradient: {e}") from None
            except ShapeError as e:
                raise node_error(node.trace, node.op.name, f"its vjp does not fit these types: {e}") from None
            for x, dx in zip(node.inputs, dxs):
                if x is None or dx is None or x not in self.active:
                    continue
                if self.types[dx] != self.types[x]:
                    raise node_error(node.trace, node.op.name, f"its vjp gives {self.types[dx]} for input "
                                     f"'{x}' of type {self.types[x]}")
                parts.setdefault(x, []).append(dx)
        self.at = None
        return {w: self._total(parts, w) for w in wrt if w in parts}

    def _total(self, parts: dict[str, list[str]], tensor: str) -> str | None:
        terms = parts.get(tensor)
        if not terms:
            return None
        total = terms[0]
        for t in terms[1:]:
            total = self.emit("add", total, t)
        parts[tensor] = [total]
        return total

    # -- Grad: what a vjp emits through ------------------------------------------------------
    def emit(self, op: str, *inputs: str | None, **attrs):
        return self.emit_at(self.at, op, *inputs, **attrs)

    def emit_at(self, at: Node | None, op: str, *inputs: str | None, **attrs):
        made = OPS[op](**attrs)
        out = made.infer(*self._trimmed_types(inputs))
        outs = (out,) if isinstance(out, TensorType) else tuple(out)
        name = self.name_after(at)
        names = (name,) if len(outs) == 1 else tuple(f"{name}:{n}" for n in made.output_names())
        self.types.update(zip(names, outs))
        trace = _backward_trace(at.trace) if at is not None else self._graph_trace()
        self.nodes.append(Node(name, made, tuple(inputs), names, trace))
        return names[0] if len(names) == 1 else names

    def name_after(self, at: Node | None) -> str:
        """A new backward node's name: '<forward node>#grad<k>'."""
        base = at.name if at is not None else "grad"
        k = self._count[base] = self._count.get(base, 0) + 1
        return f"{base}#grad{k}"

    def _graph_trace(self) -> tuple[Frame, ...]:
        return (Frame(Location(self.graph.source), "", ""),)

    def type_of(self, tensor: str) -> TensorType:
        return self.types[tensor]

    def const(self, value: float, dtype: str) -> str:
        return self.emit("constant", value=value, dtype=dtype)

    def zeros(self, t: TensorType, at: Node | None = None) -> str:
        shape = {"shape": list(t.shape)} if t.shape else {}
        return self.emit_at(at if at is not None else self.at, "constant", value=0.0, dtype=t.dtype, **shape)

    def unbroadcast(self, dy: str, like: TensorType) -> str:
        have = self.types[dy]
        if have.shape == like.shape:
            return dy
        lead = have.rank - like.rank
        axes = list(range(lead)) + [lead + i for i, d in enumerate(like.shape)
                                    if d == 1 and have.shape[lead + i] != 1]
        out = self.emit("reduce_sum", dy, axes=axes, keepdims=True) if axes else dy
        if lead:
            out = self.emit("squeeze", out, axes=list(range(lead)))
        return out

    def unfused_gradient(self, op, xs, dys):
        from .unfuse import unfused
        trace = _backward_trace(self.at.trace)
        graph = unfused(op, [self.types[x] if x is not None else None for x in xs], trace)
        ports = [p.name for p in op.inputs]
        given = {n: x for n, x in zip(ports, xs) if x is not None}
        grads = self._gradient_through(graph, given, {o: d for o, d in zip(op.output_names(), dys) if d is not None})
        return tuple(grads.get(n) if x is not None else None for n, x in zip(ports, xs))

    def _gradient_through(self, graph: Graph, inputs: dict[str, str], cotangents: dict[str, str]) -> dict[str, str]:
        """The gradient graph of `graph` (the node being differentiated, written in other ops) added
        to the backward, `inputs` (graph input -> tensor) and `cotangents` (graph output -> its
        cotangent) in place of its inputs: graph input -> the tensor of its cotangent."""
        wrt = [n for n, t in graph.inputs.items() if inputs[n] in self.active and t.dtype in FLOAT_DTYPES]
        grad = differentiate(graph, wrt, {o: COTANGENT + o for o in cotangents})
        rename = {**inputs, **{COTANGENT + o: d for o, d in cotangents.items()}}
        trace = _backward_trace(self.at.trace)
        for node in grad.nodes:
            name = self.name_after(self.at)
            outs = (name,) if len(node.outputs) == 1 else tuple(f"{name}:{i}" for i in range(len(node.outputs)))
            for old, new in zip(node.outputs, outs):
                rename[old] = new
                self.types[new] = grad.types[old]
            self.nodes.append(Node(name, node.op, tuple(rename[t] if t is not None else None for t in node.inputs),
                                   outs, trace))
        return {w: rename[grad.outputs[GRAD + w]] for w in wrt}

    def body_gradient(self, body: Graph, wrt: list[str], cotangents: dict[str, str],
                      accumulate: dict[str, str] | None = None) -> Graph:
        return differentiate(body, wrt, cotangents, accumulate)


def _backward_trace(trace: tuple[Frame, ...]) -> tuple[Frame, ...]:
    """The forward node's trace, each path marked '∂' (the notes' chain rule): located at the same
    lines, drawn in block boxes of their own beside the forward's."""
    return tuple(dataclasses.replace(f, path=BACKWARD + f.path) if f.path else f for f in trace)
