"""`run --profile`: where a run's time went, per op and for the slowest nodes, on either back end.
Not a command (it is not in COMMANDS). The NumPy back end times its own plan's steps; onnxruntime's
figures are its own profiler's (`SessionOptions.enable_profiling`), read from the trace it writes.
Both time a second run: the first pays for page faults, cold caches and lazy initialisation."""

from __future__ import annotations

import json
import os


def profile_table(rows: list[tuple[str, str, float]], title: str, top: int = 10) -> str:
    """The table for (node name, op, seconds) rows, in the order they ran."""
    total = sum(t for _, _, t in rows) or 1e-12
    per_op: dict[str, list] = {}
    for _, op, t in rows:
        entry = per_op.setdefault(op, [0.0, 0])
        entry[0] += t
        entry[1] += 1
    lines = [f"profile: {total * 1e3:.2f} ms in {len(rows)} steps ({title})",
             f"  {'op':<18}{'ms':>9}{'%':>7}{'steps':>7}"]
    for op, (t, n) in sorted(per_op.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"  {op:<18}{t * 1e3:9.2f}{100 * t / total:7.1f}{n:7d}")
    lines.append(f"  {'slowest nodes':<18}")
    for name, op, t in sorted(rows, key=lambda r: -r[2])[:top]:
        lines.append(f"  {name:<40}{op:<14}{t * 1e3:9.3f} ms")
    return "\n".join(lines)


def numpy_rows(plan, timings: list[float]) -> list[tuple[str, str, float]]:
    return [(step.name, step.op, t) for step, t in zip(plan.steps, timings)]


def onnxruntime_rows(trace_path: str) -> list[tuple[str, str, float]]:
    """The kernels of the last `model_run` in onnxruntime's profile trace (a Chrome trace JSON),
    named by their ONNX node and op type; the trace file is removed once read."""
    try:
        with open(trace_path) as f:
            events = json.load(f)
    finally:
        os.remove(trace_path)
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    if not runs:
        return []
    start, end = runs[-1]["ts"], runs[-1]["ts"] + runs[-1]["dur"]
    suffix = "_kernel_time"
    return [(e["name"][: -len(suffix)] if e["name"].endswith(suffix) else e["name"],
             e.get("args", {}).get("op_name", "?"), e["dur"] * 1e-6)
            for e in events if e.get("cat") == "Node" and start <= e["ts"] <= end]
