"""The validated summary: per node path, op, output shape, params and MACs, then totals."""

from __future__ import annotations

from .dims import Dim
from .graph import Graph


def _fmt_count(value: Dim) -> str:
    if value.is_const():
        return f"{value.value:,}"
    return str(value)


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


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


def summary_rows(graph: Graph, dims: dict[str, int] | None = None, depth: int | None = None) -> list[dict]:
    """One row per primitive node, or with `depth`, per block call that many path levels down:
    its block, the output shape of its last node, and its params and MACs summed."""
    params = node_params(graph)
    rows: list[dict] = []
    for node in graph.nodes:
        path, kind = _group(node, depth)
        out = graph.types[node.outputs[0]]
        shape = "[" + ", ".join(str(d.subs(dims) if dims else d) for d in out.shape) + "]"
        macs = graph.node_macs(node)
        macs = macs.subs(dims) if dims else macs
        if rows and rows[-1]["path"] == path:
            row = rows[-1]
            row.update(shape=shape, params=row["params"] + params[node.name], macs=row["macs"] + macs)
        else:
            rows.append({"path": path, "op": kind, "shape": shape, "params": params[node.name], "macs": macs})
    return rows


def _group(node, depth: int | None) -> tuple[str, str]:
    """The path a node is summarized under at `depth`, and what to call it: its op, or the block."""
    parts = node.name.split(".")
    if depth is None or len(parts) <= depth:
        return node.name, node.op.name
    path = ".".join(parts[:depth])
    # the outermost frame inside the group that sits in a block names the block the group calls
    inner = next((f for f in reversed(node.trace) if f.path.count(".") >= depth and f.block), None)
    return path, inner.block if inner is not None and inner.block else "block"


def summary_table(graph: Graph, dims: dict[str, int] | None = None, depth: int | None = None) -> str:
    rows = summary_rows(graph, dims, depth)
    header = ("node", "op", "output shape", "params", "MACs")
    table = [header] + [(r["path"], r["op"], r["shape"], f"{r['params']:,}" if r["params"] else "",
                         _fmt_count(r["macs"]) if r["macs"] != 0 else "") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    rule = "  ".join("-" * w for w in widths)

    def line(row):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]),
                 row[3].rjust(widths[3]), row[4].rjust(widths[4])]
        return "  ".join(cells).rstrip()

    total = graph.param_count()
    trainable = graph.param_count(trainable=True)
    macs = bound_macs(graph, dims)
    inputs = ", ".join(f"{k}: {t}" for k, t in graph.inputs.items())
    outputs = ", ".join(f"{k}: {graph.types[t]}" for k, t in graph.outputs.items())
    lines = [f"{graph.name}  ({inputs}) -> ({outputs})", line(header), rule]
    lines += [line(r) for r in table[1:]]
    lines += [rule,
              f"params: {total:,} ({trainable:,} trainable, {total - trainable:,} non-trainable)",
              f"MACs: {_fmt_count(macs)}" + (f" ({_human(macs.value)})" if macs.is_const() else "")]
    return "\n".join(lines)
