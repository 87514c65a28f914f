"""Timing the engines of one case: warm-up runs, then interleaved rounds (each round runs every
engine once, starting one engine later than the round before, so that a slow stretch of the
machine is shared out rather than landing on one engine), medians of the timed runs.

Each timed run starts SETTLE_S after the run before it ended. Thread pools spin for a while after
their work (onnxruntime's intra-op threads, OpenMP's, OpenBLAS's), and a run started at once shares
the cores with the last engine's spinning threads: mobilenet_v2 on graphnet took 50-72 ms started
right after onnxruntime and 27-36 ms started 50 ms later (26-33 ms with no other engine in the
process); onnxruntime lost as much after graphnet. An engine that runs alone, as a user's does,
starts on idle cores, and so does each timed run here."""

from __future__ import annotations

import statistics
import time

from .engines import Runner

SETTLE_S = 0.1      # past the 10-50 ms onnxruntime's threads were seen to spin after a run


def time_interleaved(runners: dict[str, Runner], repeats: dict[str, int], warmup: int, budget: float | None = None
                     ) -> tuple[dict[str, list[float]], dict[str, list], dict[str, str]]:
    """Run each runner `warmup` times (at least once: the first outputs are kept, to compare the
    engines), then in rounds until each has `repeats[key]` timed runs, or fewer (not under 3)
    where the last warm-up run says they would take more than `budget` seconds. Returns the times
    in seconds, the first outputs, and the error of any runner that raised (it is dropped)."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    outputs: dict[str, list] = {}
    errors: dict[str, str] = {}
    active = dict(runners)
    wanted = dict(repeats)
    for key, run in list(active.items()):
        try:
            start = time.perf_counter()
            outputs[key] = run()
            for _ in range(warmup - 1):
                start = time.perf_counter()
                run()
            last = time.perf_counter() - start
        except Exception as e:       # an engine that cannot run this model is reported, not fatal
            errors[key] = f"{type(e).__name__}: {e}"
            del active[key]
            continue
        if budget and last * wanted[key] > budget:
            wanted[key] = min(wanted[key], max(3, int(budget / last)))
    keys = list(active)
    for r in range(max((wanted[k] for k in keys), default=0)):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            if key in errors or len(times[key]) >= wanted[key]:
                continue
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            try:
                active[key]()
            except Exception as e:
                errors[key] = f"{type(e).__name__}: {e}"
                continue
            times[key].append(time.perf_counter() - start)
    return times, outputs, errors


def stats(samples: list[float]) -> dict:
    if not samples:
        return {"median_s": None, "min_s": None, "max_s": None, "runs": 0}
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "runs": len(samples)}
