"""Weights against a graph's params: the one place that decides what fits. `weights_report` sorts
every tensor into matched, missing, unexpected, mis-shaped, mis-typed (a cast that would change
values, or one never made) and non-finite, reading only the tensors whose name and shape fit;
`check_weights` raises one located error listing every mismatch, or hands back the weights cast to
the params' dtypes. `graphnet weights` prints the report, and every run and export makes the check.

PyTorch's bookkeeping buffers that are no weights (`num_batches_tracked`: batch_norm's step count,
which only its momentum-free training mode would use) are ignored by rule: a tensor whose name ends
in IGNORED_SUFFIX and is no param is counted as ignored, never read, never an error."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import Location, Note, SpecError
from ..graph import Graph
from .casts import cast_exactly, never_cast
from .tensors import TensorInfo, WeightFile

IGNORED_SUFFIX = "num_batches_tracked"
KINDS = ("missing", "unexpected", "mis-shaped", "mis-typed", "non-finite")
SHOWN = 10      # mismatches of each kind the text report lists (--json lists them all)


@dataclass(frozen=True)
class Mismatch:
    kind: str                   # one of KINDS
    name: str
    message: str                # what the located error says
    detail: dict                # for --json


@dataclass
class WeightsReport:
    network: str
    params: int
    source: str
    prefix: str = ""
    matched: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    casts: Counter = field(default_factory=Counter)         # (file dtype, param dtype) -> tensors
    ignored: list[str] = field(default_factory=list)
    outside: int = 0            # tensors without the prefix, left out
    hint: str = ""              # a --weights-prefix that would match the missing params
    weights: dict[str, np.ndarray] = field(default_factory=dict)   # the matched ones, cast

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def count(self, kind: str) -> int:
        return sum(m.kind == kind for m in self.mismatches)

    def error(self) -> SpecError:
        """Every mismatch in one located error: alone, or summed up with each one as a note."""
        where = Location(self.source)
        if len(self.mismatches) == 1:
            return SpecError.at(where, self.mismatches[0].message)
        counts = ", ".join(f"{self.count(k)} {k}" for k in KINDS if self.count(k))
        return SpecError.at(where, f"the weights do not fit '{self.network}': {counts}"
                            f"{f'; {self.hint}' if self.hint else ''} (each one below)",
                            tuple(Note(where, m.message) for m in self.mismatches))

    def casts_line(self) -> str | None:
        """The lossless casts made, in one line, or None when there were none."""
        if not self.casts:
            return None
        total = sum(self.casts.values())
        kinds = ", ".join(f"{have} -> {want} ({n})" for (have, want), n in sorted(self.casts.items()))
        return f"{self.source}: cast {total} weight{'s' if total != 1 else ''} to the spec's dtypes, changing no value: {kinds}"


def weights_report(graph: Graph, weights: Mapping, source: str = "<weights>",
                   allow_nonfinite: bool = False) -> WeightsReport:
    """How `weights` (a WeightFile, or a dict of arrays) fit the graph's params."""
    lazy = isinstance(weights, WeightFile)
    infos = weights.infos if lazy else {k: _info(v) for k, v in weights.items()}
    report = WeightsReport(graph.name, len(graph.params), source, getattr(weights, "prefix", ""),
                           outside=getattr(weights, "outside", 0))
    extra = [n for n in infos if n not in graph.params]
    report.ignored = [n for n in extra if n.endswith(IGNORED_SUFFIX)]
    extra = [n for n in extra if not n.endswith(IGNORED_SUFFIX)]
    found: dict[str, Mismatch] = {}
    fitting = []
    for name, p in graph.params.items():
        shape = tuple(d.value for d in p.type.shape)
        want = p.type.dtype
        spec = {"dtype": want, "shape": list(shape), "declared_at": str(p.loc)}
        info = infos.get(name)
        if info is None:
            close = _close(name, extra)
            found[name] = Mismatch("missing", name, f"weight '{name}' is missing (declared at {p.loc}){_mean(close)}",
                                   {**spec, "did_you_mean": close})
        elif info.shape != shape:
            found[name] = Mismatch("mis-shaped", name, f"weight '{name}' has shape {list(info.shape)} but the spec "
                                   f"declares {list(shape)} (at {p.loc})", {"file": _json(info), "spec": spec})
        elif (why := never_cast(info.dtype, want)) is not None:
            found[name] = Mismatch("mis-typed", name, f"weight '{name}' has dtype {info.dtype} but the spec declares "
                                   f"{want} (at {p.loc}); {why}", {"file": _json(info), "spec": spec})
        else:
            fitting.append(name)
    values = weights.read(fitting) if lazy else {n: np.asarray(weights[n]) for n in fitting}
    for name in fitting:
        p, info = graph.params[name], infos[name]
        want, spec = p.type.dtype, {"dtype": p.type.dtype, "declared_at": str(p.loc)}
        cast, changed = cast_exactly(values.pop(name), want)
        bad = 0 if allow_nonfinite or cast.dtype.kind != "f" else int(cast.size - np.count_nonzero(np.isfinite(cast)))
        if changed:
            found[name] = Mismatch("mis-typed", name, f"weight '{name}' has dtype {info.dtype} but the spec declares "
                                   f"{want} (at {p.loc}); as {want}, {changed} of its {cast.size} values would change",
                                   {"file": _json(info), "spec": spec, "values_changed": changed})
        elif bad:
            found[name] = Mismatch("non-finite", name, f"weight '{name}' has {bad} NaN or infinite value"
                                   f"{'s' if bad != 1 else ''} (declared at {p.loc}; run, export and weights take them with "
                                   "--allow-nonfinite)",
                                   {"file": _json(info), "spec": spec, "non_finite": bad})
        else:
            report.matched.append(name)
            report.weights[name] = cast
            if info.dtype != want:
                report.casts[(info.dtype, want)] += 1
    report.mismatches = [found[n] for n in graph.params if n in found]
    missing = [m.name for m in report.mismatches if m.kind == "missing"]
    for name in extra:      # the missing params are what an unexpected name was meant to be, if any are
        close = _close(name, missing or graph.params)
        report.mismatches.append(Mismatch("unexpected", name, f"weight '{name}' is not a param of '{graph.name}'"
                                          f"{_mean(close)}", {"file": _json(infos[name]), "did_you_mean": close}))
    report.hint = _prefix_hint(extra, missing)
    return report


def check_weights(graph: Graph, weights: Mapping, source: str = "<weights>",
                  allow_nonfinite: bool = False) -> dict[str, np.ndarray]:
    """The weights as the params declare them (lossless casts made), or one located error at
    `source` listing every tensor that does not fit."""
    report = weights_report(graph, weights, source, allow_nonfinite)
    if not report.ok:
        raise report.error()
    return report.weights


def _info(value) -> TensorInfo:
    a = np.asarray(value)
    return TensorInfo(a.dtype.name, tuple(int(d) for d in a.shape))


def _json(info: TensorInfo) -> dict:
    return {"dtype": info.dtype, "shape": list(info.shape)}


def _close(name: str, candidates) -> str | None:
    """The closest candidate, as errors.did_you_mean finds it."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def _mean(close: str | None) -> str:
    return f"; did you mean '{close}'?" if close else ""


def _prefix_hint(extra: list[str], missing: list[str]) -> str:
    """A prefix that, stripped from the unexpected names, would match most of the missing params:
    a checkpoint of a bigger model holding this one as a sub-module."""
    if not extra or not missing:
        return ""
    wanted, counts = set(missing), Counter()
    for name in extra:
        parts = name.split(".")
        for k in (1, 2):
            if len(parts) > k and ".".join(parts[k:]) in wanted:
                counts[".".join(parts[:k]) + "."] += 1
    if not counts:
        return ""
    prefix, n = counts.most_common(1)[0]
    if 2 * n < len(missing):
        return ""
    return f"--weights-prefix {prefix} would match {n} of the {len(missing)} missing"


def format_report(report: WeightsReport) -> str:
    """The report as `graphnet weights` prints it: the counts, then the first mismatches of each kind."""
    lines = [f"{report.source} against {report.network} ({report.params} params"
             f"{f', --weights-prefix {report.prefix}' if report.prefix else ''})"]
    rows = [("matched", len(report.matched), "")]
    rows += [(kind, report.count(kind), "") for kind in KINDS]
    rows.append(("ignored", len(report.ignored), f"names ending in {IGNORED_SUFFIX}, by rule" if report.ignored else ""))
    if report.prefix:
        rows.append(("outside prefix", report.outside, "left out"))
    total = sum(report.casts.values())
    rows.append(("cast", total, ", ".join(f"{h} -> {w} ({n})" for (h, w), n in sorted(report.casts.items()))
                 + (", changing no value" if total else "")))
    lines += [f"  {label:<15}{n:>6}{f'  {note}' if note else ''}" for label, n, note in rows]
    for kind in KINDS:
        shown = [m for m in report.mismatches if m.kind == kind]
        if shown:
            more = f", the first {SHOWN}" if len(shown) > SHOWN else ""
            lines.append(f"{kind} ({len(shown)}{more}):")
            cells = [_cells(m) for m in shown[:SHOWN]]
            width = max(len(name) for name, _ in cells)
            lines += [f"  {name:<{width}}  {rest}" for name, rest in cells]
    if report.hint:
        lines.append(f"hint: {report.hint}")
    lines.append("ok: every param has its weight" if report.ok else
                 f"not ok: {len(report.mismatches)} mismatch{'es' if len(report.mismatches) != 1 else ''}")
    return "\n".join(lines)


def _cells(m: Mismatch) -> tuple[str, str]:
    """A mismatch as the report lists it: the name, and what is wrong."""
    d = m.detail
    if m.kind in ("missing", "unexpected"):
        have = d if m.kind == "missing" else d["file"]
        where = f"  declared at {d['declared_at']}" if m.kind == "missing" else ""
        return m.name, f"{have['dtype']}{have['shape']}{where}{_mean(d['did_you_mean'])}"
    return m.name, m.message.removeprefix(f"weight {m.name!r} ")


def report_json(report: WeightsReport) -> dict:
    return {
        "network": report.network, "file": report.source, "prefix": report.prefix, "ok": report.ok,
        "counts": {"params": report.params, "matched": len(report.matched),
                   **{k: report.count(k) for k in KINDS}, "ignored": len(report.ignored),
                   "outside_prefix": report.outside, "cast": sum(report.casts.values())},
        "casts": [{"from": h, "to": w, "count": n} for (h, w), n in sorted(report.casts.items())],
        **{k.replace("-", "_"): [{"name": m.name, **m.detail} for m in report.mismatches if m.kind == k] for k in KINDS},
        "ignored": report.ignored, "hint": report.hint or None,
    }
