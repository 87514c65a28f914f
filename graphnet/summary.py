"""The validated summary: a tree of block calls and ops with output shapes, params, MACs and
activation memory, then totals. With free dims left unbound, MACs and memory are formulas in them.

A free spatial dim makes every strided layer's size an opaque floor division (`(H - 1)//2 + 1`),
and a product of two of them expands into four terms: the table names each such size once
(`H1 = (H - 1)//2 + 1`, listed under it) and writes the counts in those names (`9408·B·H1·W1`)."""

from __future__ import annotations

from fractions import Fraction

from .dims import Dim, dim_prod, dim_sum, format_shape, humanize
from .graph import Graph, Node
from .types import ITEMSIZE, format_bytes



def node_params(graph: Graph) -> dict[str, int]:
    """Each param counted once, on the first node that reads it."""
    seen: set[str] = set()
    out: dict[str, int] = {}
    for node in graph.nodes:
        total = 0
        for t in node.inputs:
            if t in graph.params and t not in seen:
                seen.add(t)
                total += graph.params[t].size
        out[node.name] = total
    return out


def bound_macs(graph: Graph, dims: dict[str, int] | None) -> Dim:
    total = graph.total_macs()
    return total.subs(dims) if dims else total


def output_bytes(graph: Graph, node: Node) -> Dim:
    return dim_sum(dim_prod(graph.types[t].shape) * ITEMSIZE[graph.types[t].dtype] for t in node.outputs)


def summary_rows(graph: Graph, dims: dict[str, int] | None = None, depth: int | None = None) -> list[dict]:
    """Rows in graph order. Without `depth`, one per primitive node. With it, a tree: a row for each
    block call (and each repeat) up to `depth` path levels, indented by `level`, holding the sums of
    what is inside it and its last output shape; primitive nodes above that depth keep their rows."""
    params = node_params(graph)
    rows: list[dict] = []
    open_groups: list[dict] = []
    for node in graph.nodes:
        parts = node.name.split(".")
        shown = len(parts) if depth is None else min(len(parts), depth)
        # close groups this node is not in, open the ones it enters
        groups = [".".join(parts[:k]) for k in range(1, shown + 1)] if depth is not None else []
        if len(parts) <= shown:
            groups = groups[:-1]
        while open_groups and (len(open_groups) > len(groups) or open_groups[-1]["path"] != groups[len(open_groups) - 1]):
            open_groups.pop()
        for level in range(len(open_groups), len(groups)):
            # a block's MACs and bytes are summed once it is complete (dim_sum: one pass)
            row = {"path": groups[level], "op": _called(node, groups[level]), "level": level, "shape": "",
                   "dims": (), "input_dims": _input_dims(graph, node, dims), "params": 0, "macs": [], "bytes": [],
                   "children": {}}
            rows.append(row)
            open_groups.append(row)
        out_dims = tuple(d.subs(dims) if dims else d for d in graph.types[node.outputs[0]].shape)
        shape = format_shape(out_dims)
        macs = graph.node_macs(node)
        size = Dim(0) if set(node.outputs) <= graph.static_tensors else output_bytes(graph, node)
        if dims:
            macs, size = macs.subs(dims), size.subs(dims)
        for level, row in enumerate(open_groups):
            child = ".".join(parts[:level + 2])
            row["children"].setdefault(parts[level + 1], node.op.name if child == node.name else _called(node, child))
            row.update(shape=shape, dims=out_dims, params=row["params"] + params[node.name])
            row["macs"].append(macs)
            row["bytes"].append(size)
        if len(parts) <= shown:
            rows.append({"path": node.name, "op": node.op.name, "level": len(open_groups), "shape": shape,
                         "dims": out_dims, "input_dims": _input_dims(graph, node, dims),
                         "params": params[node.name], "macs": macs, "bytes": size})
    for row in rows:
        if isinstance(row["macs"], list):
            row["macs"], row["bytes"] = dim_sum(row["macs"]), dim_sum(row["bytes"])
        children = row.pop("children", None)
        if children is not None and row["op"] is None:
            # not a call: the copies of a repeat or for_each (`layer1.0`, `layer1.1`), named by
            # what each copy is when they are one thing; a child that is a group of its own (None)
            # is another kind, so torchvision's `features` of stages and mergings is not `x8` of one
            kinds = set(children.values())
            kind = kinds.pop() if len(kinds) == 1 and None not in kinds else "block"
            row["op"] = f"{kind} x{len(children)}" if all(c.isdigit() for c in children) else kind
    return rows


def _called(node: Node, path: str) -> str | None:
    """The block called at `path` on this node's way down, or None when no call has that path
    (a repeat's group, `layer1`, whose copies are the calls): the frame of a call records where it
    is written, and the frame inside it the block it sits in, which is the block called."""
    for inner, frame in zip(node.trace, node.trace[1:]):
        if frame.path == path:
            return inner.block
    return None


def _input_dims(graph: Graph, node: Node, dims: dict[str, int] | None) -> tuple | None:
    """The shape of the first input of `node` that is data, not a param or a constant made from
    them; for a block's row, that of its first node: what flows into the row."""
    for t in node.inputs:
        if t is not None and t not in graph.params and t not in graph.static_tensors:
            return tuple(d.subs(dims) if dims else d for d in graph.types[t].shape)
    return None


def share(part: Dim, whole: Dim) -> float | None:
    """`part / whole` when it is one number whatever the free dims (both known, or `part` a
    constant multiple of `whole`), else None; 0 of 0 is None."""
    if whole.is_const() and part.is_const():
        return part.value / whole.value if whole.value else None
    if part == 0:
        return 0.0
    if set(part.terms) != set(whole.terms):
        return None
    ratios = {Fraction(c, whole.terms[m]) for m, c in part.terms.items()}
    return float(ratios.pop()) if len(ratios) == 1 else None


class SizeNames:
    """Names for the sizes of a graph that hold an opaque operation (a floor division on a free
    dim), in the order the graph makes them: `H1 = (H - 1)//2 + 1`. `named(d)` writes a dim in
    them; a size of the form `atom + c` lets every power of its atom be rewritten as `(name - c)`."""

    def __init__(self, shapes, taken: set[str]):
        self.names: dict[Dim, str] = {}
        self.atoms: dict = {}            # atom -> (name, c): atom = name - c
        counters: dict[str, int] = {}
        for shape in shapes:
            for d in shape or ():
                if d.is_const() or d in self.names or not any(not isinstance(a, str) for m in d.terms for a, _ in m):
                    continue
                base = min(d.symbols() or {"d"})
                while True:
                    counters[base] = counters.get(base, 0) + 1
                    name = f"{base}{counters[base]}"
                    if name not in taken:
                        break
                self.names[d] = name
                opaque = [(m, c) for m, c in d.terms.items() if m]
                if len(opaque) == 1 and opaque[0][1] == 1 and len(opaque[0][0]) == 1 and opaque[0][0][0][1] == 1:
                    self.atoms.setdefault(opaque[0][0][0][0], (name, d.terms.get((), 0)))

    def named(self, d: Dim) -> Dim:
        if not self.atoms or d.is_const():
            return d
        terms = []
        for m, coeff in d.terms.items():
            term = Dim(coeff)
            for atom, p in m:
                base = Dim(self.atoms[atom][0]) - self.atoms[atom][1] if atom in self.atoms else Dim({((atom, 1),): 1})
                for _ in range(p):
                    term = term * base
            terms.append(term)
        return dim_sum(terms)

    def shape(self, dims) -> str:
        return format_shape(self.names.get(d, d) for d in dims)

    def legend(self) -> str:
        return ", ".join(f"{name} = {d}" for d, name in self.names.items())


def _count(value: Dim) -> str:
    return "" if value == 0 else (f"{value.value:,}" if value.is_const() else humanize(value))


def _bytes(value: Dim) -> str:
    """Bytes in binary units, per unit of the free dims when there are some: '3.1 MiB·B'."""
    if value == 0:
        return ""
    terms = []
    for mono, coeff in sorted(value.terms.items(), key=lambda mc: (-sum(p for _, p in mc[0]), str(mc[0]))):
        factors = "·".join(str(a) + ("²" if p == 2 else f"^{p}" if p > 2 else "") for a, p in mono)
        terms.append(format_bytes(coeff) + (f"·{factors}" if factors else ""))
    return " + ".join(terms)


def summary_table(graph: Graph, dims: dict[str, int] | None = None, depth: int | None = None,
                  input_shapes: bool = False, peak: tuple[int, dict[str, int]] | None = None) -> str:
    """The table, then the totals. `depth` 0 gives the totals alone; a depth adds each row's share
    of the params and MACs; `input_shapes` a column of what flows into each row; `peak`, the
    estimated peak memory of a run (bytes, and the binding of the free dims it was worked out at)."""
    rows = summary_rows(graph, dims, depth)
    names = SizeNames([r["dims"] for r in rows] + [r["input_dims"] for r in rows],
                      set(graph.free_dims()))
    total = graph.param_count()
    trainable = graph.param_count(trainable=True)
    macs = bound_macs(graph, dims)
    shares = depth is not None

    def percent(part, whole) -> str:
        value = share(part, whole)
        if value is None or part == 0:
            return ""
        return "<0.1%" if value < 0.0005 else f"{100 * value:.1f}%"

    header = ("node", "op", *(["input shape"] if input_shapes else []), "output shape", "params",
              *(["params %"] if shares else []), "MACs", *(["MACs %"] if shares else []), "memory")
    table = [header]
    for r in rows:
        table.append(("  " * r.get("level", 0) + r["path"], r["op"],
                      *([names.shape(r["input_dims"]) if r["input_dims"] is not None else ""] if input_shapes else []),
                      names.shape(r["dims"]), f"{r['params']:,}" if r["params"] else "",
                      *([percent(Dim(r["params"]), Dim(total))] if shares else []),
                      _count(names.named(r["macs"])), *([percent(r["macs"], macs)] if shares else []),
                      _bytes(names.named(r["bytes"]))))
    left = 3 + input_shapes       # columns of text, left-aligned; the numbers are right-aligned
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    rule = "  ".join("-" * w for w in widths)

    def line(row):
        cells = [cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    activations = dim_sum(output_bytes(graph, n) for n in graph.nodes if not set(n.outputs) <= graph.static_tensors)
    activations = activations.subs(dims) if dims else activations
    weights = sum(p.size * ITEMSIZE[p.type.dtype] for p in graph.params.values())
    inputs = ", ".join(f"{k}: {t}" for k, t in graph.inputs.items())
    outputs = ", ".join(f"{k}: {graph.types[t]}" for k, t in graph.outputs.items())
    lines = [f"{graph.name}  ({inputs}) -> ({outputs})"]
    if depth != 0:          # depth 0: the totals alone
        lines += [line(header), rule] + [line(r) for r in table[1:]] + [rule]
        if names.names:
            lines.append(f"where {names.legend()}")
    lines += [f"params: {total:,} ({trainable:,} trainable, {total - trainable:,} non-trainable), "
              f"{_bytes(Dim(weights)) or '0 bytes'}",
              f"MACs: {humanize(names.named(macs))}" + (f" ({macs.value:,})" if macs.is_const() and macs.value >= 100_000 else ""),
              f"activations: {_bytes(names.named(activations)) or '0 bytes'} (every op's output on the inputs, none freed)"]
    if peak is not None:
        need, binding = peak
        at = f" at {', '.join(f'{k}={v}' for k, v in binding.items())}" if binding else ""
        lines.append(f"peak memory: {format_bytes(need)}{at} (a NumPy run's estimate, beyond the weights)")
    return "\n".join(lines)
