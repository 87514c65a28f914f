"""Timing the engines of one case: warm-up runs, then rounds in which each engine runs a block of
BLOCK timed runs in a row (each round starting one engine later than the round before, so that a
slow stretch of the machine is shared out rather than landing on one engine), medians of the timed
runs.

Each block starts with one untimed run, and the timed runs follow it back to back, as a user's
repeated runs do. A run right after another engine's starts with that engine's data in the caches
and its threads still on the cores: timed one run per turn, graphnet's mobilenet_v2 read 45 ms in
a full run where it reads 26-33 ms alone in a process (and with onnxruntime's default spinning,
which run.py turns off, 50-72 ms right after an onnxruntime run). A pause before each run made
every engine slower instead (threads parked, caches cold: mlp 19 ms on graphnet against 9.6).
Blocks do not close the whole gap: the full run with blocks still read 42 ms for that case, and
29.5-34 ms with graphnet and onnxruntime the only engines in the process.
"""

from __future__ import annotations

import statistics
import time

from .engines import Runner

BLOCK = 5           # timed runs of one engine in a row


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
    rounds = max((-(-wanted[k] // BLOCK) for k in keys), default=0)
    for r in range(rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            need = min(BLOCK, wanted[key] - len(times[key]))
            if key in errors or need <= 0:
                continue
            try:
                active[key]()            # untimed: the switch from the engine before
                for _ in range(need):
                    start = time.perf_counter()
                    active[key]()
                    times[key].append(time.perf_counter() - start)
            except Exception as e:
                errors[key] = f"{type(e).__name__}: {e}"
    return times, outputs, errors


def stats(samples: list[float]) -> dict:
    if not samples:
        return {"median_s": None, "min_s": None, "max_s": None, "runs": 0}
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "runs": len(samples)}
