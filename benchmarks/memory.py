"""Peak memory: measured per engine in a child process of its own, and estimated for graphnet
from the graph.

Measured: a child process (`python -m benchmarks.memory`) imports, loads the spec, makes the
weights and inputs, prepares one engine and does one tiny matmul (so OpenBLAS's start-up is not
counted); then it resets the kernel's peak-RSS mark (`/proc/self/clear_refs` 5, Linux), reads its
RSS, runs the engine a few times (the first run included) and reads the peak RSS (VmHWM). The
difference, `delta`, is what running the network adds on top of what preparing it left resident;
`retained` is what is still resident after the runs (caches: a compiled plan, folded weights, an
arena). Where the peak mark cannot be reset, ru_maxrss (the peak over the whole process,
preparation included) is used instead and the result says so.

Estimated ("weights + largest live activation set"): the params' bytes plus the most bytes of
tensors alive at once when the graph's nodes run in plan order, each intermediate freed after its
last reader as the NumPy plan frees it (graph outputs and inputs held throughout). Ops whose NumPy
kernels return views (reshape, transpose, ...) add no bytes; their input's buffer stays alive as
long as any view of it does. Kernel-internal temporaries (a convolution's column buffer, a scan's
per-step tensors) are not in the graph, so they are not counted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import graphnet  # noqa: F401  (before NumPy: importing graphnet may choose OpenBLAS's kernels)
import numpy as np

from graphnet.backends.numpy_backend import last_uses
from graphnet.dims import dim_prod
from graphnet.graph import Graph
from graphnet.types import ITEMSIZE

ROOT = Path(__file__).resolve().parent.parent
# Ops whose NumPy kernels return a view of their first input (no new buffer).
VIEW_OPS = frozenset({"reshape", "transpose", "flatten", "split", "slice", "unsqueeze", "squeeze"})


def live_memory_estimate(graph: Graph, binding: dict[str, int]) -> dict:
    """Bytes of the params, and the largest set of input and intermediate tensors alive at once
    (with the node at which it is reached) when the graph runs in plan order with `binding` for
    its free dims. Meant to move into the NumPy back end, next to compile_plan."""
    def nbytes(t: str) -> int:
        ty = graph.types[t]
        return dim_prod(ty.shape).subs(binding).value * ITEMSIZE[ty.dtype]

    weights = sum(dim_prod(p.type.shape).value * ITEMSIZE[p.type.dtype] for p in graph.params.values())
    last_use = last_uses(graph)
    held = set(graph.outputs.values())
    inputs = sum(nbytes(t) for t in graph.inputs)
    # Params and inputs are buffers of their own, counted above and never freed (a transpose of a
    # weight is a view of it); node outputs get a buffer each unless their op makes views.
    root: dict[str, str] = {t: t for t in [*graph.params, *graph.inputs]}   # tensor -> its buffer
    users: dict[str, int] = {t: 1 for t in root}                          # buffer -> live tensors in it
    size: dict[str, int] = {}                  # freeable buffer -> bytes
    live = peak = inputs
    peak_at = ""

    def release(t: str) -> None:
        nonlocal live
        buf = root.pop(t, None)
        if buf is None:
            return
        users[buf] -= 1
        if users[buf] == 0 and buf in size:
            live -= size.pop(buf)

    for i, node in enumerate(graph.nodes):
        base = node.inputs[0] if node.inputs else None
        view = node.op.name in VIEW_OPS and base in root
        for t in node.outputs:
            buf = root[base] if view else t
            if not view:
                size[buf] = nbytes(t)
                live += size[buf]
            root[t] = buf
            users[buf] = users.get(buf, 0) + 1
        if live > peak:
            peak, peak_at = live, node.name
        for t in node.inputs:
            if t is not None and last_use.get(t) == i and t not in held and t not in graph.inputs:
                release(t)
        for t in node.outputs:
            if t not in last_use and t not in held:
                release(t)
    return {"weights": weights, "inputs": inputs, "live_peak": peak, "live_peak_at": peak_at,
            "total": weights + peak}


def backend_peak_bytes(net, binding: dict[str, int]) -> int:
    """The NumPy back end's own estimate (numpy_backend.peak_bytes, behind `--max-memory`): what a
    run of the plan it makes allocates beyond the weights, kernel scratch included."""
    from graphnet.backends.numpy_backend import peak_bytes
    return peak_bytes(net.graph, binding)


# -- measuring, in a child process ------------------------------------------------------------------

def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmHWM") is not None
    except OSError:
        return False


def run_from_reset(run, runs: int) -> tuple[bool, int | None]:
    """Run `run` `runs` times from a reset peak mark: whether the mark could be reset (else
    VmHWM still holds what came before), and the RSS in KiB before the runs."""
    gc.collect()
    exact = _reset_peak()
    before = _status_kib("VmRSS")
    for _ in range(runs):
        out = run()
        del out
    return exact, before


def measure_here(model: str, dims: dict[str, int], engine: str, runs: int) -> dict:
    """Prepare `engine` on the case in this process, run it `runs` times, report peak RSS growth."""
    from .engines import BY_KEY, load_workload
    from .suite import Case
    w = load_workload(Case(model, tuple(dims.items())))
    runner = BY_KEY[engine].prepare(w)
    np.ones((64, 64), np.float32) @ np.ones((64, 64), np.float32)   # OpenBLAS's own start-up, not the run's
    exact, before = run_from_reset(runner, runs)
    gc.collect()
    after = _status_kib("VmRSS")
    if exact:
        peak, method = _status_kib("VmHWM"), "VmHWM after resetting it (clear_refs 5)"
    else:
        peak, method = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss (includes preparation)"
    result = {"engine": engine, "runs": runs, "rss_before": before * 1024 if before else None,
              "peak": peak * 1024, "delta": (peak - (before or 0)) * 1024, "method": method,
              "retained": (after - before) * 1024 if before and after else None,
              "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if engine.startswith("graphnet"):
        result["estimate"] = live_memory_estimate(w.net.graph, w.binding)
    return result


def measure(model: str, dims: dict[str, int], engine: str, runs: int = 2, timeout: float = 600) -> dict:
    """measure_here in a fresh Python process (so engines do not share a heap or a peak)."""
    cmd = [sys.executable, "-m", "benchmarks.memory", model, "--engine", engine, "--runs", str(runs)]
    cmd += [a for k, v in dims.items() for a in ("--dim", f"{k}={v}")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"engine": engine, "error": f"timed out after {timeout:g} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"engine": engine, "error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory",
                                     description="Peak memory of one engine on one spec (one JSON line).")
    parser.add_argument("model")
    parser.add_argument("--engine", required=True)
    parser.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    dims = {k: int(v) for k, v in (d.split("=", 1) for d in args.dim)}
    print(json.dumps(measure_here(args.model, dims, args.engine, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
