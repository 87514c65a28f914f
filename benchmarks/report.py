"""From measurements to the report: ratios, the targets marked pass or miss, the printed table."""

from __future__ import annotations

from .suite import TARGETS, Case, Target

MIB = 1 << 20


def add_ratios(case: dict, peak_gflops: float | None) -> None:
    """Each row's time over graphnet's, its achieved GFLOP/s (2 x MACs / median) and that as a
    fraction of the run's matmul peak."""
    rows = {r["engine"]: r for r in case["rows"]}
    base = rows.get("graphnet", {}).get("median_s")
    for r in case["rows"]:
        t = r.get("median_s")
        r["ratio_vs_graphnet"] = t / base if t and base else None
        r["gflops"] = 2 * case["macs"] / t / 1e9 if t and case["macs"] else None
        r["peak_fraction"] = r["gflops"] / peak_gflops if r["gflops"] and peak_gflops else None


def memory_check(case: dict, engine: str = "graphnet") -> dict | None:
    """graphnet's measured run peak (weights + inputs resident before the run, plus what the run
    added) against the estimate (weights + largest live set)."""
    row = next((r for r in case["rows"] if r["engine"] == engine), None)
    mem = (row or {}).get("memory") or {}
    est = mem.get("estimate")
    if not est or "delta" not in mem:
        return None
    measured = est["weights"] + est["inputs"] + mem["delta"]
    return {"measured": measured, "estimate": est["total"], "ratio": measured / est["total"]}


def evaluate_targets(cases: list[dict], validate: list[dict]) -> list[dict]:
    out = []
    for t in TARGETS:
        if t.kind == "validate":
            key = "in_process_s" if "in-process" in t.name else "cli_s"
            for v in validate:
                out.append(_verdict(t, v["spec"], v.get(key)))
            continue
        for c in cases:
            if not t.applies(Case(c["model"], tuple(c["dims"].items()))):
                continue
            if t.kind == "memory":
                check = c.get("memory_check")
                out.append(_verdict(t, c["label"], check["ratio"] if check else None))
            elif t.kind == "slowdown":
                rows = {r["engine"]: r.get("slowdown") for r in c["rows"]}
                if any(v is not None for v in rows.values()):       # only with --contention
                    num, den = rows.get(t.numerator), rows.get(t.denominator)
                    out.append(_verdict(t, c["label"], num / den if num and den else None))
            else:
                rows = {r["engine"]: r.get("median_s") for r in c["rows"]}
                num, den = rows.get(t.numerator), rows.get(t.denominator)
                out.append(_verdict(t, c["label"], num / den if num and den else None))
    return out


def _verdict(t: Target, label: str, value: float | None) -> dict:
    ok = t.check(value)
    return {"target": t.name, "case": label, "value": value, "rule": t.rule, "kind": t.kind,
            "result": "n/a" if ok is None else "pass" if ok else "miss"}


# -- text ------------------------------------------------------------------------------------------

def _table(header: tuple, rows: list[tuple], right: set[int]) -> list[str]:
    cells = [header] + rows
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, r in enumerate(cells):
        cols = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        lines.append("  ".join(cols).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _num(v, fmt: str, none: str = "") -> str:
    return none if v is None else format(v, fmt)


def _mib(v) -> str:
    return "" if v is None else f"{v / MIB:.1f}"


def _row(r: dict) -> tuple:
    if r["status"] != "ok":
        return (r["label"], r["status"]) + ("",) * 8
    mem = r.get("memory") or {}
    memory = _mib(mem.get("delta")) if "delta" in mem else ("error" if mem.get("error") else "")
    diff = r.get("max_abs_diff")
    return (r["label"], _num(r["median_s"] and r["median_s"] * 1e3, ".2f"), str(r["runs"]),
            _num(r["ratio_vs_graphnet"], ".2f") + "x" if r["ratio_vs_graphnet"] else "",
            _num(r["gflops"], ".1f"), _num(r["peak_fraction"] and 100 * r["peak_fraction"], ".0f") + "%"
            if r["peak_fraction"] else "", memory, _mib(mem.get("retained")),
            "" if diff is None else f"{diff:.1e}", r.get("threads", ""))


def _notes(rows: list[dict]) -> list[str]:
    """Why a row did not run, and memory measurements that failed."""
    out = [f"{r['label']}: {r['status']}: {r['reason']}" for r in rows if r["status"] != "ok"]
    out += [f"{r['label']}: memory: {r['memory']['error']}" for r in rows if (r.get("memory") or {}).get("error")]
    return out


def format_report(result: dict) -> str:
    m = result["machine"]
    blas = m.get("openblas") or {}
    torch = m.get("torch")
    can = result["canary"]
    readings = ", ".join(format(c["gflops"], ".0f") for c in can["readings"])
    lines = [f"graphnet benchmarks: {result['command']}",
             f"machine: {m['cpu_count']} cores; NumPy {m['numpy']} with {blas.get('corename') or blas.get('name')} "
             f"OpenBLAS kernels, {blas.get('threads', '?')} threads; onnxruntime {m['onnxruntime']} "
             f"(default intra-op threads); "
             + (f"torch {torch['version']} ({torch['threads']} threads)" if torch else "torch not installed"),
             f"matmul canary ({can['size']}^3 float32): peak {can['peak_gflops']:.1f} GFLOP/s; "
             f"readings {readings}"
             + (f"; SLOWED (< {can['slow']:.0%} of peak) around: {', '.join(can['flagged'])}" if can["flagged"] else ""),
             f"times: median of timed runs after {result['settings']['warmup']} warm-up run(s), engines interleaved; "
             f"onnx.reference at most {result['settings']['reference_repeat']} timed run(s) (it is slow); fewer runs "
             f"(at least 3) where they would take over {result['settings']['budget_s']:g} s",
             "mem MiB: peak RSS a run adds (child process per engine); kept MiB: RSS still held after the runs", ""]
    header = ("engine", "median ms", "runs", "vs graphnet", "GFLOP/s", "% peak", "mem MiB", "kept MiB", "max|diff|",
              "threads")
    for c in result["cases"]:
        est = c.get("memory_estimate")
        lines.append(f"{c['label']}: {c['macs'] / 1e9:.3f} GMAC = {2 * c['macs'] / 1e9:.3f} GFLOP; canary "
                     f"{c['canary_before']:.0f} -> {c['canary_after']:.0f} GFLOP/s"
                     + ("  SLOWED MACHINE" if c["slowed"] else ""))
        lines += ["  " + s for s in _table(header, [_row(r) for r in c["rows"]], {1, 2, 3, 4, 5, 6, 7, 8})]
        lines += ["  " + s for s in _notes(c["rows"])]
        slowed = [r for r in c["rows"] if r.get("slowdown")]
        if slowed:
            lines.append("  beside a competing NumPy process (median ms, slowdown = beside / alone):")
            lines += ["    " + s for s in _table(("engine", "alone", "beside", "slowdown"), [
                (r["label"], f"{r['median_s'] * 1e3:.2f}", f"{r['contended']['median_s'] * 1e3:.2f}",
                 f"{r['slowdown']:.2f}x") for r in slowed], {1, 2, 3})]
        if est:
            lines.append(f"  graphnet memory: weights {_mib(est['weights'])} MiB + largest live set "
                         f"{_mib(est['live_peak'])} MiB (at {est['live_peak_at']}) = {_mib(est['total'])} MiB estimated")
            measured = []
            for key, check in (("", c.get("memory_check")), ("--no-optimize ", c.get("memory_check_noopt"))):
                if check:
                    measured.append(f"{key}{_mib(check['measured'])} MiB = {check['ratio']:.2f}x")
            if measured:
                lines.append("    measured run peak (weights + inputs + mem MiB): " + "; ".join(measured))
            if est.get("backend_peak_bytes") is not None:
                lines.append(f"    the back end's peak_bytes (beyond weights, kernel scratch included): "
                             f"{_mib(est['backend_peak_bytes'])} MiB")
        lines.append("")
    if result["validate"]:
        rows = [(v["spec"], _num(v.get("in_process_s"), ".3f"), _num(v.get("cli_s"), ".3f"),
                 " ".join(v.get("error", []))) for v in result["validate"]]
        lines += _table(("validate", "in-process s", "cold CLI s", "error"), rows, {1, 2}) + [""]
    rows = [(t["target"], t["case"], "" if t["value"] is None else f"{t['value']:.3g}", t["rule"], t["result"])
            for t in result["targets"]]
    lines += _table(("target", "case", "value", "rule", "result"), rows, {2})
    counts = {k: sum(t["result"] == k for t in result["targets"]) for k in ("pass", "miss", "n/a")}
    phases = result.get("phases", {})
    lines += ["", f"targets: {counts['pass']} pass, {counts['miss']} miss, {counts['n/a']} n/a; "
                  f"whole run {result['elapsed_s']:.1f} s (timing {phases.get('timing_s', 0):.1f} s, memory "
                  f"{phases.get('memory_s', 0):.1f} s, validation {phases.get('validate_s', 0):.1f} s)"]
    return "\n".join(lines)
