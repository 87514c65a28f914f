"""The benchmark command: `python -m benchmarks.run` from the repository root (see README.md here).

One process times every engine on every case (the canary before each case and at the end); peak
memory is then measured in a child process per engine and case; then validation times; then the
table (or JSON) with the targets marked pass or miss."""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time

# Every engine's worker threads sleep when a run ends, instead of spinning for a while (GNU OpenMP
# under torch here; onnxruntime's sessions are told in engines.py; graphnet puts OpenBLAS's pool to
# sleep itself, graphnet/openblas.py): a spinning pool holds a core the next engine in the
# interleaved order needs, and on 2 cores that made the engine run after torch 2.5x slower. Read
# when those libraries load, so set before any of them does.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import graphnet  # noqa: F401,E402  (before NumPy: importing graphnet may choose OpenBLAS's kernels)
import numpy as np  # noqa: E402

from . import canary as canary_mod
from .contention import competitor
from .engines import BY_KEY, ENGINES, load_workload, max_abs_diff, thread_info, unavailable
from .memory import backend_peak_bytes, live_memory_estimate, measure
from .report import add_ratios, evaluate_targets, format_report, memory_check
from .suite import SUITES, VALIDATE_SPECS, select
from .timing import stats, time_interleaved
from .validate import time_validate


def _keys(text: str, what: str) -> list[str]:
    if text == "all":
        return [e.key for e in ENGINES]
    if text == "none":
        return []
    keys = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in keys if k not in BY_KEY]
    if bad:
        raise SystemExit(f"{what}: unknown engine '{bad[0]}' (engines: {', '.join(BY_KEY)})")
    return keys


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                description="Time graphnet's NumPy back end against onnxruntime, onnx.reference "
                                            "and PyTorch on the benchmark suite.")
    p.add_argument("--suite", default="default", choices=sorted(SUITES))
    p.add_argument("--models", help="comma-separated spec names (the suite's cases for them, else one case each)")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE", help="set a dim in every case")
    p.add_argument("--engines", default="all", help=f"comma-separated, of: {', '.join(BY_KEY)} (default all)")
    p.add_argument("--repeat", type=int, help="timed runs per engine and case (default 20; --quick 3)")
    p.add_argument("--warmup", type=int, help="untimed runs first (default 2; --quick 1)")
    p.add_argument("--reference-repeat", type=int, help="timed runs of onnx.reference (default 3; --quick 1)")
    p.add_argument("--budget", type=float, help="seconds of timed runs per engine and case, beyond which an engine "
                   "gets fewer runs, at least 3 (default 30; --quick 2)")
    p.add_argument("--memory-engines", default=None,
                   help="engines whose peak memory is measured, each in a child process: a list, 'all' "
                        "(default: those timed) or 'none'")
    p.add_argument("--validate", default=",".join(VALIDATE_SPECS),
                   help="specs whose validation is timed (comma-separated, or 'none')")
    p.add_argument("--quick", action="store_true", help="few repeats: a smoke check, not a measurement")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write the results as JSON to FILE ('-' "
                   "or no FILE: standard output, instead of the table)")
    p.add_argument("--contention", action="store_true",
                   help="time every case a second time beside a competing NumPy process (benchmarks/contention.py) "
                        "and report each engine's slowdown")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.repeat = args.repeat or (3 if args.quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.reference_repeat = args.reference_repeat or (1 if args.quick else 3)
    args.budget = args.budget or (2.0 if args.quick else 30.0)
    args.engine_keys = _keys(args.engines, "--engines")
    args.memory_keys = args.engine_keys if args.memory_engines is None else _keys(args.memory_engines, "--memory-engines")
    try:
        args.overrides = {k: int(v) for k, v in (d.split("=", 1) for d in args.dim)}
    except ValueError:
        raise SystemExit("--dim takes NAME=VALUE with a whole number") from None
    args.models = [m.strip() for m in args.models.split(",")] if args.models else None
    args.validate = [] if args.validate == "none" else [s.strip() for s in args.validate.split(",") if s.strip()]
    return args


def run_case(case, args, readings: list) -> dict:
    """Prepare every engine on the case, time them interleaved, keep the first outputs' differences."""
    w = load_workload(case, args.seed)
    rows, runners = [], {}
    for key in args.engine_keys:
        e = BY_KEY[key]
        row = {"engine": key, "label": e.label, "status": "ok", "reason": ""}
        rows.append(row)
        reason = unavailable(e, case.model)
        if reason:
            row.update(status="skipped", reason=reason)
            continue
        try:
            start = time.perf_counter()
            runners[key] = e.prepare(w)
            row["prepare_s"] = time.perf_counter() - start
        except Exception as ex:          # e.g. onnx.reference has no Scan over axis 1
            row.update(status="error", reason=f"{type(ex).__name__}: {ex}")
    repeats = {k: args.reference_repeat if BY_KEY[k].slow else args.repeat for k in runners}
    before = canary_mod.canary(3 if args.quick else 5)
    readings.append({"where": f"before {case.label}", "gflops": before})
    times, outputs, errors = time_interleaved(runners, repeats, args.warmup, args.budget)
    contended: dict = {}
    if args.contention:
        print(f"timing {case.label} beside a competing NumPy process ...", file=sys.stderr, flush=True)
        with competitor():
            contended, _, more = time_interleaved({k: r for k, r in runners.items() if k not in errors},
                                                  repeats, 1, args.budget)
        errors.update({k: f"beside the competitor: {v}" for k, v in more.items() if k not in errors})
    threads = _threads()
    base = outputs.get("graphnet") or next(iter(outputs.values()), None)
    for row in rows:
        key = row["engine"]
        if key in errors:
            row.update(status="error", reason=errors[key])
        if row["status"] != "ok":
            continue
        row.update(stats(times[key]), times_s=times[key], threads=threads.get(key, ""),
                   max_abs_diff=max_abs_diff(base, outputs[key]) if base is not None else None)
        if contended.get(key):
            row["contended"] = {**stats(contended[key]), "times_s": contended[key]}
            row["slowdown"] = row["contended"]["median_s"] / row["median_s"]
    result = {"label": case.label, "model": case.model, "dims": case.dims_dict, "binding": w.binding,
              "macs": w.macs, "canary_before": before, "rows": rows,
              "memory_estimate": {**live_memory_estimate(w.net.graph, w.binding),
                                  "backend_peak_bytes": backend_peak_bytes(w.net, w.binding)}}
    del w, runners, outputs
    gc.collect()
    return result


def _threads() -> dict:
    info = thread_info()
    blas = info["openblas"].get("threads", "?")
    torch = info["torch"]["threads"] if info["torch"] else "?"
    # a graphnet run uses at most that many: one per core other processes leave free (backends/threads.py)
    return {"graphnet": f"blas <={blas}", "graphnet-noopt": f"blas <={blas}", "ort": "ort default",
            "onnx-reference": f"blas {blas}", "torch": f"torch {torch}", "ort-torch": "ort default"}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    cases = select(args.suite, args.models, args.overrides)
    import onnxruntime
    machine = {**thread_info(), "numpy": np.__version__, "onnxruntime": onnxruntime.__version__,
               "python": platform.python_version(), "platform": platform.platform()}
    readings = [{"where": "start", "gflops": canary_mod.canary(3 if args.quick else 10)}]
    results = []
    for case in cases:
        print(f"timing {case.label} ...", file=sys.stderr, flush=True)
        results.append(run_case(case, args, readings))
    readings.append({"where": "end", "gflops": canary_mod.canary(3 if args.quick else 5)})
    phases = {"timing_s": time.perf_counter() - start}
    peak = max(r["gflops"] for r in readings)
    flagged = [r["where"] for r in readings if r["gflops"] < canary_mod.SLOW * peak]
    for i, c in enumerate(results):
        c["canary_after"] = readings[i + 2]["gflops"]
        c["slowed"] = min(c["canary_before"], c["canary_after"]) < canary_mod.SLOW * peak
        add_ratios(c, peak)
    for c in results:
        for row in c["rows"]:
            if row["status"] == "ok" and row["engine"] in args.memory_keys:
                print(f"memory {c['label']} {row['engine']} ...", file=sys.stderr, flush=True)
                row["memory"] = measure(c["model"], c["dims"], row["engine"], runs=1 if args.quick else 2)
        c["memory_check"] = memory_check(c)
        c["memory_check_noopt"] = memory_check(c, "graphnet-noopt")
    phases["memory_s"] = time.perf_counter() - start - phases["timing_s"]
    validate = []
    for spec in args.validate:
        print(f"validate {spec} ...", file=sys.stderr, flush=True)
        validate.append(time_validate(spec, repeat=1 if args.quick else 5))
    phases["validate_s"] = time.perf_counter() - start - phases["timing_s"] - phases["memory_s"]
    result = {"command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv),
              "settings": {"suite": args.suite, "repeat": args.repeat, "warmup": args.warmup,
                           "reference_repeat": args.reference_repeat, "budget_s": args.budget, "quick": args.quick,
                           "seed": args.seed, "engines": args.engine_keys, "memory_engines": args.memory_keys,
                           "contention": args.contention},
              "machine": machine,
              "canary": {"size": canary_mod.SIZE, "peak_gflops": peak, "readings": readings,
                         "slow": canary_mod.SLOW, "flagged": flagged},
              "cases": results, "validate": validate,
              "targets": evaluate_targets(results, validate)}
    result["elapsed_s"] = time.perf_counter() - start
    result["phases"] = phases
    if args.json in (None, "-"):
        print(json.dumps(result, indent=1) if args.json == "-" else format_report(result))
    else:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(format_report(result))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
