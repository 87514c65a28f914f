"""A Graph drawn as a Mermaid flowchart, a Graphviz DOT graph or (through Graphviz's `dot`) an SVG:
`render(graph, ...)` is a pure function to bytes; the `graphnet render` command is wired in cli.py.

What is drawn is a DAG of *units*. By default every top-level block call is one unit, a box named by
its path and labelled with its block and key args (the conv geometry when the block has one conv,
the out features of a linear, else the out channels and the stride); primitive ops outside blocks
are units of their own. `depth` N opens N levels of block calls: an opened call is a subgraph
(cluster) named by its path and titled with its block, and the calls N + 1 levels down become the
units; `depth=None` opens every call, down to the primitives. Edges carry the shape of the tensor
they move (free dims stay symbolic: `B×64×56×56`). Params are not drawn: they are folded into the
label of the op that reads them, as are nodes computed only from params and constants (a weight's
transpose, a position range). Where an `add` joins two branches from one fork, the shorter branch
is the shortcut, and its edges are dotted (`-.->`, `style=dashed`). Render names no op: each op
gives its label and key attributes (`Op.label`, `Op.call_label`) and how it is drawn (`Op.joins`,
`Op.residual`, `Op.convolution`).

The output is a pure function of the graph and the options: the same input gives the same bytes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import Location, SpecError
from .ops.base import Drawn

if TYPE_CHECKING:
    from .graph import Graph, Node

FORMATS = ("mermaid", "dot", "svg", "png", "pdf")
SUFFIXES = {".svg": "svg", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid", ".png": "png",
            ".pdf": "pdf"}
LAID_OUT = ("svg", "png", "pdf")     # the formats Graphviz's dot lays out
# The longest chain of units drawn left to right; longer nets are drawn top to bottom.
LR_MAX_CHAIN = 12
# Mermaid's own limits (its default config): more edges fail to parse, more text fails to render.
MERMAID_MAX_EDGES = 500
MERMAID_MAX_TEXT = 50_000


# -- the diagram: units, clusters, edges ---------------------------------------------------------

@dataclass
class Unit:
    id: str
    kind: str                  # 'op' (a primitive), 'call' (a collapsed block call), 'input', 'output'
    title: str                 # 'call': the call's path; else ''
    text: str                  # the op and its key attrs, the block and its key args, or the io name
    residual: bool = False     # 'op': a join that may close a shortcut (Op.residual)
    round: bool = False        # drawn as a circle (Op.joins, joining two branches)


@dataclass
class Cluster:
    id: str
    path: str
    block: str
    items: list = field(default_factory=list)     # Units and Clusters, in order of first appearance


@dataclass
class Edge:
    src: str
    dst: str
    label: str
    shortcut: bool = False


@dataclass
class Diagram:
    name: str
    direction: str             # 'LR' or 'TB'
    items: list                # the top level: Units and Clusters
    units: dict[str, Unit]
    edges: list[Edge]


def build(graph: "Graph", dims: dict[str, int] | None = None, depth: int | None = 0) -> Diagram:
    """The diagram of `graph` with block calls opened `depth` levels down (None: all of them)."""
    static = graph.static_tensors
    ids = _Ids()
    units: dict[str, Unit] = {}
    unit_of: dict[tuple, str] = {}         # ('call', path) or ('op', node name) -> unit id
    members: dict[str, list] = {}          # unit id -> its nodes
    root = Cluster("", "", "")
    clusters: dict[str, Cluster] = {}

    def place(item, chain) -> None:
        parent = root
        for path, block in chain:
            if path not in clusters:
                clusters[path] = Cluster(ids.make("s", path), path, block)
                parent.items.append(clusters[path])
            parent = clusters[path]
        parent.items.append(item)

    producer: dict[str, str] = {}         # tensor -> the unit that makes it
    for name in graph.inputs:
        unit = Unit(ids.make("in", name), "input", "", name)
        units[unit.id] = unit
        root.items.append(unit)
        producer[name] = unit.id

    for node in graph.nodes:
        if all(t in static for t in node.outputs):
            continue
        calls = _calls(node)
        opened = calls if depth is None else calls[:depth]
        if len(opened) < len(calls):
            path, block = calls[len(opened)]
            key = ("call", path)
            if key not in unit_of:
                parent = opened[-1][0] + "." if opened else ""
                title = path[len(parent):] if path.startswith(parent) else path
                unit = Unit(ids.make("n", path), "call", title, block)
                unit_of[key] = unit.id
                units[unit.id] = unit
                members[unit.id] = []
                place(unit, opened)
            uid = unit_of[key]
        else:
            unit = Unit(ids.make("n", node.name), "op", "", "", type(node.op).residual)
            uid = unit_of[("op", node.name)] = unit.id
            units[uid] = unit
            members[uid] = []
            place(unit, opened)
        members[uid].append(node)
        for t in node.outputs:
            producer[t] = uid

    for uid, nodes in members.items():
        unit = units[uid]
        if unit.kind == "op":
            unit.text = _op_label(graph, nodes[0], static, dims)
            dynamic = [t for t in nodes[0].inputs if t is not None and t not in static]
            unit.round = type(nodes[0].op).joins and len(dynamic) >= 2
        else:
            args = _call_args(graph, nodes, static, dims)
            unit.text = f"{unit.text} {args}" if args else unit.text

    edges: list[Edge] = []
    seen: set[tuple[str, str, str]] = set()
    for uid, nodes in members.items():
        for node in nodes:
            for t in node.inputs:
                if t is None or t in static or t not in producer:
                    continue
                src = producer[t]
                if src != uid and (src, uid, t) not in seen:
                    seen.add((src, uid, t))
                    edges.append(Edge(src, uid, _type_label(graph, t, dims)))
    for name, t in graph.outputs.items():
        unit = Unit(ids.make("out", name), "output", "", name)
        units[unit.id] = unit
        root.items.append(unit)
        if t in producer:
            edges.append(Edge(producer[t], unit.id, _type_label(graph, t, dims)))

    chain = _mark_shortcuts(units, edges)
    return Diagram(graph.name, "LR" if chain <= LR_MAX_CHAIN else "TB", root.items, units, edges)


def _calls(node: "Node") -> list[tuple[str, str]]:
    """The block calls a node sits in, outermost first, as (call path, block called). A trace frame
    records the block its own line sits in, so the block a call calls is the next inner frame's."""
    frames = node.trace
    return [(frames[k].path, frames[k - 1].block) for k in range(len(frames) - 1, 0, -1)]


class _Ids:
    """Mermaid- and DOT-safe ids from paths: a prefix, then the path with every character outside
    [A-Za-z0-9] as '_'; a clash with an id already made gets a numbered suffix."""

    def __init__(self):
        self.used: set[str] = set()

    def make(self, prefix: str, path: str) -> str:
        base = f"{prefix}_{re.sub(r'[^A-Za-z0-9]', '_', path)}"
        out, n = base, 2
        while out in self.used:
            out, n = f"{base}_{n}", n + 1
        self.used.add(out)
        return out


# -- labels ----------------------------------------------------------------------------------------

def _dim(d, dims) -> str:
    if dims:
        d = d.subs(dims)
    text = str(d)
    return text if re.fullmatch(r"\w+", text) else f"({text})"


def _shape(shape, dims) -> str:
    return "×".join(_dim(d, dims) for d in shape) if shape else "scalar"


def _type_label(graph: "Graph", tensor: str, dims) -> str:
    t = graph.types[tensor]
    shape = _shape(t.shape, dims)
    return shape if t.dtype == "float32" else f"{t.dtype} {shape}"


def _drawn(graph: "Graph", node: "Node", static: set[str], dims) -> Drawn:
    """The node as its op's label sees it; a param or constant it reads is folded in by its last name."""
    return Drawn(tuple(graph.types[t] if t is not None else None for t in node.inputs),
                 tuple(graph.types[t] for t in node.outputs),
                 tuple(t.rsplit(".", 1)[-1].rsplit(":", 1)[-1] if t is not None and t in static else None
                       for t in node.inputs),
                 lambda d: _dim(d, dims))


def _op_label(graph: "Graph", node: "Node", static: set[str], dims) -> str:
    args = node.op.label(_drawn(graph, node, static, dims))
    return f"{node.op.name} {args}" if args else node.op.name


def _call_args(graph: "Graph", nodes: list, static: set[str], dims) -> str:
    """A collapsed call's key args, from what it computes: what its one key op shows (Op.call_label:
    a conv's or pool's geometry, a linear's out features), else its out channels and stride."""
    keys = [text for text in (n.op.call_label(_drawn(graph, n, static, dims)) for n in nodes) if text is not None]
    if not keys:
        return ""
    if len(keys) == 1:
        return keys[0]
    inside = {t for n in nodes for t in n.outputs}
    ins = [t for n in nodes for t in n.inputs if t is not None and t not in static and t not in inside]
    out = graph.types[nodes[-1].outputs[0]]
    if not out.shape:
        return ""
    if not any(type(n.op).convolution for n in nodes) or out.rank < 3:
        return _dim(out.shape[-1], dims)
    text = _dim(out.shape[1], dims)
    if ins:
        x = graph.types[ins[0]]
        if x.rank == out.rank:
            a, b = x.shape[2], out.shape[2]
            if dims:
                a, b = a.subs(dims), b.subs(dims)
            if a.is_const() and b.is_const() and b.value and a.value > b.value and a.value % b.value == 0:
                text += f",stride {a.value // b.value}"
    return text


# -- shortcuts -------------------------------------------------------------------------------------

def _mark_shortcuts(units: dict[str, Unit], edges: list[Edge]) -> int:
    """Dot the shorter branch into each `add` that joins two branches from one fork; return the
    number of units on the longest chain."""
    succ: dict[str, list[str]] = {u: [] for u in units}
    pred: dict[str, list[str]] = {u: [] for u in units}
    for e in edges:
        if e.dst not in succ[e.src]:
            succ[e.src].append(e.dst)
            pred[e.dst].append(e.src)
    order = _topo(units, pred, succ)
    if order is None:
        return len(units)
    index = {u: i for i, u in enumerate(order)}
    longest: dict[str, int] = {}
    for u in order:
        longest[u] = 1 + max((longest[p] for p in pred[u]), default=0)

    def ancestors(u: str) -> set[str]:
        seen, stack = {u}, [u]
        while stack:
            for p in pred[stack.pop()]:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return seen

    def distance(f: str, to: str, between: set[str]) -> int:
        """Edges on the longest path from f to `to` through `between`."""
        dist = {f: 0}
        for u in sorted(between, key=index.__getitem__):
            if u != f:
                ds = [dist[p] for p in pred[u] if p in dist]
                if ds:
                    dist[u] = 1 + max(ds)
        return dist.get(to, 0)

    dotted: set[tuple[str, str]] = set()
    for v in order:
        unit = units[v]
        if not unit.residual or len(pred[v]) != 2:
            continue
        a, b = pred[v]
        anc_a, anc_b = ancestors(a), ancestors(b)
        common = anc_a & anc_b
        if not common:
            continue
        f = max(common, key=index.__getitem__)
        below = _descendants(f, succ)
        da, db = distance(f, a, below & anc_a), distance(f, b, below & anc_b)
        if da == db:
            continue
        s, anc_s = (a, anc_a) if da < db else (b, anc_b)
        branch = (below & anc_s) - {f}
        if any(not set(succ[x]) <= branch | {v} or not set(pred[x]) <= branch | {f} for x in branch):
            continue
        if branch:
            dotted.update((f, x) for x in branch if f in pred[x])
            dotted.update((x, y) for x in branch for y in succ[x] if y in branch or y == v)
        else:
            dotted.add((f, v))
    for e in edges:
        e.shortcut = (e.src, e.dst) in dotted
    return max(longest.values(), default=0)


def _descendants(u: str, succ) -> set[str]:
    seen, stack = {u}, [u]
    while stack:
        for s in succ[stack.pop()]:
            if s not in seen:
                seen.add(s)
                stack.append(s)
    return seen


def _topo(units, pred, succ) -> list[str] | None:
    indegree = {u: len(pred[u]) for u in units}
    ready = [u for u in units if not indegree[u]]
    order = []
    while ready:
        u = ready.pop(0)
        order.append(u)
        for s in succ[u]:
            indegree[s] -= 1
            if not indegree[s]:
                ready.append(s)
    return order if len(order) == len(units) else None


# -- Mermaid -----------------------------------------------------------------------------------------

_MERMAID_ESCAPES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;",
                    "\n": "#10;", "\r": "#13;"}


def _mm(text: str) -> str:
    """Text safe inside a quoted Mermaid label: the characters Mermaid or HTML would read as syntax
    as Mermaid's entity codes (`#quot;`)."""
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in text)


def _mermaid_label(unit: Unit) -> str:
    if unit.kind == "call":
        return f"{_mm(unit.title)}<br>{_mm(unit.text)}"
    return _mm(unit.text)


def to_mermaid(d: Diagram) -> str:
    lines = [f"flowchart {d.direction}"]

    def emit(items, indent):
        pad = "    " * indent
        for item in items:
            if isinstance(item, Cluster):
                lines.append(f'{pad}subgraph {item.id}["{_mm(item.path)}: {_mm(item.block)}"]')
                emit(item.items, indent + 1)
                lines.append(f"{pad}end")
            else:
                label = _mermaid_label(item)
                if item.kind in ("input", "output"):
                    shape = f'(["{label}"])'
                elif item.kind == "call":
                    shape = f'[["{label}"]]'
                elif item.round:
                    shape = f'(("{label}"))'
                else:
                    shape = f'["{label}"]'
                lines.append(f"{pad}{item.id}{shape}")

    emit(d.items, 1)
    for e in d.edges:
        arrow = "-.->" if e.shortcut else "-->"
        lines.append(f'    {e.src} {arrow}|"{_mm(e.label)}"| {e.dst}')
    head = [f"%% {_comment(d.name)}: rendered by graphnet"]
    size = sum(len(line) + 1 for line in lines)
    if len(d.edges) > MERMAID_MAX_EDGES or size > MERMAID_MAX_TEXT:
        head.append(f"%% {len(d.edges)} edges, {size} characters: above Mermaid's default limits (maxEdges "
                    f"{MERMAID_MAX_EDGES}, maxTextSize {MERMAID_MAX_TEXT}); raise them in mermaid.initialize "
                    "or render with a smaller --depth")
    return "\n".join(head + lines) + "\n"


def _comment(text: str) -> str:
    return re.sub(r"[\x00-\x1f]", " ", text)


# -- Graphviz ----------------------------------------------------------------------------------------

def _dq(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "") + '"'


def to_dot(d: Diagram) -> str:
    lines = [f"digraph {_dq(d.name)} {{",
             f"    rankdir={d.direction};",
             '    node [shape=box, fontname="Helvetica", fontsize=11];',
             '    edge [fontname="Helvetica", fontsize=9];']

    def emit(items, indent):
        pad = "    " * indent
        for item in items:
            if isinstance(item, Cluster):
                lines.append(f"{pad}subgraph {_dq('cluster_' + item.id)} {{")
                lines.append(f"{pad}    label={_dq(item.path + ': ' + item.block)};")
                lines.append(f'{pad}    style="rounded"; color="gray50";')
                emit(item.items, indent + 1)
                lines.append(f"{pad}}}")
            else:
                if item.kind in ("input", "output"):
                    attrs = f"label={_dq(item.text)}, shape=ellipse"
                elif item.kind == "call":
                    attrs = f'label={_dq(item.title + chr(10) + item.text)}, style="rounded,bold"'
                elif item.round:
                    attrs = f"label={_dq(item.text)}, shape=circle"
                else:
                    attrs = f"label={_dq(item.text)}"
                lines.append(f"{pad}{_dq(item.id)} [{attrs}];")

    emit(d.items, 1)
    for e in d.edges:
        style = ", style=dashed" if e.shortcut else ""
        lines.append(f"    {_dq(e.src)} -> {_dq(e.dst)} [label={_dq(e.label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# Graphviz's layout is superlinear in the edges (430 s for 22,650 of them): past this, give up
DOT_TIMEOUT_S = 60


def to_svg(dot: str, fmt: str = "svg") -> bytes:
    """The DOT text laid out by Graphviz's `dot` as `fmt` (svg, png or pdf); a located error when
    dot is missing, fails or takes longer than DOT_TIMEOUT_S."""
    exe = shutil.which("dot")
    if exe is None:
        raise SpecError.at(Location("<command line>"),
                           f"--format {fmt} needs Graphviz's 'dot' on PATH (https://graphviz.org/download/, "
                           "e.g. apt-get install graphviz); --format dot writes the graph for it")
    try:
        r = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=DOT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SpecError.at(Location("<command line>"),
                           f"Graphviz's dot took over {DOT_TIMEOUT_S} s to lay out the graph and was stopped; "
                           "draw less of it (a smaller --depth) or write --format dot and lay it out yourself") from None
    if r.returncode != 0:
        message = r.stderr.decode(errors="replace").strip().splitlines()
        raise SpecError.at(Location("<command line>"),
                           f"Graphviz's dot failed (exit {r.returncode}): {message[0] if message else 'no message'}")
    return r.stdout


def render(graph: "Graph", fmt: str = "mermaid", depth: int | None = 0, dims: dict[str, int] | None = None) -> bytes:
    """The graph drawn in `fmt` (one of FORMATS), as the bytes to write."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    d = build(graph, dims, depth)
    if fmt == "mermaid":
        return to_mermaid(d).encode()
    dot = to_dot(d)
    return dot.encode() if fmt == "dot" else to_svg(dot, fmt)
