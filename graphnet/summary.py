"""The validated summary: a tree of block calls and ops with output shapes, params, MACs and
activation memory, then totals. With free dims left unbound, MACs and memory are formulas in them."""

from __future__ import annotations

from .dims import Dim, dim_prod, dim_sum, humanize
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
                   "params": 0, "macs": [], "bytes": [], "children": {}}
            rows.append(row)
            open_groups.append(row)
        shape = "[" + ", ".join(str(d.subs(dims) if dims else d) for d in graph.types[node.outputs[0]].shape) + "]"
        macs = graph.node_macs(node)
        size = Dim(0) if set(node.outputs) <= graph.static_tensors else output_bytes(graph, node)
        if dims:
            macs, size = macs.subs(dims), size.subs(dims)
        for level, row in enumerate(open_groups):
            child = ".".join(parts[:level + 2])
            row["children"].setdefault(parts[level + 1], node.op.name if child == node.name else _called(node, child))
            row.update(shape=shape, params=row["params"] + params[node.name])
            row["macs"].append(macs)
            row["bytes"].append(size)
        if len(parts) <= shown:
            rows.append({"path": node.name, "op": node.op.name, "level": len(open_groups), "shape": shape,
                         "params": params[node.name], "macs": macs, "bytes": size})
    for row in rows:
        if isinstance(row["macs"], list):
            row["macs"], row["bytes"] = dim_sum(row["macs"]), dim_sum(row["bytes"])
        children = row.pop("children", None)
        if children is not None and row["op"] is None:
            # not a call: the copies of a repeat or for_each (`layer1.0`, `layer1.1`), named by
            # what each copy is when they are one thing
            kinds = set(children.values()) - {None}
            kind = kinds.pop() if len(kinds) == 1 else "block"
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


def summary_table(graph: Graph, dims: dict[str, int] | None = None, depth: int | None = None) -> str:
    rows = summary_rows(graph, dims, depth)
    header = ("node", "op", "output shape", "params", "MACs", "memory")
    table = [header] + [("  " * r.get("level", 0) + r["path"], r["op"], r["shape"],
                         f"{r['params']:,}" if r["params"] else "", _count(r["macs"]), _bytes(r["bytes"]))
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    rule = "  ".join("-" * w for w in widths)

    def line(row):
        cells = [cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    total = graph.param_count()
    trainable = graph.param_count(trainable=True)
    macs = bound_macs(graph, dims)
    activations = dim_sum(output_bytes(graph, n) for n in graph.nodes if not set(n.outputs) <= graph.static_tensors)
    activations = activations.subs(dims) if dims else activations
    weights = sum(p.size * ITEMSIZE[p.type.dtype] for p in graph.params.values())
    inputs = ", ".join(f"{k}: {t}" for k, t in graph.inputs.items())
    outputs = ", ".join(f"{k}: {graph.types[t]}" for k, t in graph.outputs.items())
    lines = [f"{graph.name}  ({inputs}) -> ({outputs})", line(header), rule]
    lines += [line(r) for r in table[1:]]
    lines += [rule,
              f"params: {total:,} ({trainable:,} trainable, {total - trainable:,} non-trainable), "
              f"{_bytes(Dim(weights)) or '0 bytes'}",
              f"MACs: {humanize(macs)}" + (f" ({macs.value:,})" if macs.is_const() and macs.value >= 100_000 else ""),
              f"activations: {_bytes(activations) or '0 bytes'} (every op's output on the inputs, none freed)"]
    return "\n".join(lines)
