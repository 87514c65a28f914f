"""The `--json` reports, a versioned contract: docs/report.schema.json is their JSON Schema, and a
test validates every report against it. Not a command (it is not in COMMANDS).

Version 1. Every report is an object with `version` (1), `command`, `ok` and `errors` (the located
errors that belong to no one spec: a bad command line). `validate` adds `specs`, one entry per spec
in the order given (a folder standing for its .yaml files), each with its `path`, `ok`, its own
located `errors`, and `network` (null when it fails). Each field keeps one type: a count is an int,
or null when free dims leave it symbolic, and its formula in the free dims is always a string in a
`*_formula` field beside it; a shape is a list of dim strings (`["B", "784"]`) beside `sizes`, its
ints with null for a symbolic dim. `weights` adds its report's fields (docs/weights.md) to the four.
A field is only ever added in a later version 1 report; a change of meaning is version 2."""

from __future__ import annotations

import json

from ..dims import Dim
from ..errors import SpecError

VERSION = 1


def count(d: Dim | int) -> int | None:
    d = d if isinstance(d, Dim) else Dim(d)
    return d.value if d.is_const() else None


def formula(d: Dim | int) -> str:
    return str(d if isinstance(d, Dim) else Dim(d))


def shape(dims) -> dict:
    return {"shape": [str(d) for d in dims], "sizes": [count(d) for d in dims]}


def errors(error: SpecError | None) -> list[dict]:
    """Located errors as JSON: file, line, col, message, and the notes under each."""
    if error is None:
        return []
    return [{**_where(d.loc), "message": d.message, "notes": [{**_where(n.loc), "message": n.message} for n in d.notes]}
            for d in error.diagnostics]


def _where(loc) -> dict:
    return {"file": loc.file, "line": loc.line, "col": loc.col}


def report(command: str, ok: bool, error: SpecError | None = None, **fields) -> dict:
    return {"version": VERSION, "command": command, "ok": ok, "errors": errors(error), **fields}


def spec_entry(path: str, net=None, error: SpecError | None = None, depth: int | None = None) -> dict:
    """One spec of a `validate` report: its network when it loaded, else its errors."""
    return {"path": path, "ok": error is None, "errors": errors(error),
            "network": None if net is None else network(net, depth)}


def network(net, depth: int | None = None) -> dict:
    from ..summary import share, summary_rows
    from ..types import ITEMSIZE
    g = net.graph
    macs, params = g.total_macs(), g.param_count()
    peak = net.peak_memory()

    def tensor(name, t) -> dict:
        return {"name": name, "dtype": t.dtype, **shape(t.shape)}

    def row(r) -> dict:
        macs_share = share(r["macs"], macs)
        return {"path": r["path"], "op": r["op"], "level": r["level"], **shape(r["dims"]),
                "input_shape": None if r["input_dims"] is None else [str(d) for d in r["input_dims"]],
                "params": r["params"], "params_share": r["params"] / params if params else None,
                "macs": count(r["macs"]), "macs_formula": formula(r["macs"]), "macs_share": macs_share,
                "bytes": count(r["bytes"]), "bytes_formula": formula(r["bytes"])}

    return {
        "name": g.name, "free_dims": list(g.free_dims()),
        "params": params, "trainable_params": g.param_count(trainable=True),
        "weight_bytes": sum(p.size * ITEMSIZE[p.type.dtype] for p in g.params.values()),
        "macs": count(macs), "macs_formula": formula(macs),
        "peak_bytes": None if peak is None else peak[0], "peak_binding": None if peak is None else peak[1],
        "inputs": [tensor(k, t) for k, t in g.inputs.items()],
        "outputs": [tensor(k, g.types[t]) for k, t in g.outputs.items()],
        "nodes": [row(r) for r in summary_rows(g, depth=depth)] if depth != 0 else [],
    }


def dumps(data: dict) -> str:
    return json.dumps(data, indent=2)
