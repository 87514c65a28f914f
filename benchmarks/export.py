"""The cost of an ONNX export (bert_base by default): wall time and peak RSS of `export_onnx`, and
beside them what this machine takes at the same moment to write and fsync the same number of bytes
from memory, the floor no export can beat, so that numbers from a busy machine can be read.

    python -m benchmarks.export [--spec specs/bert_base.yaml] [--dim NAME=VALUE ...] [--json FILE]

Peak RSS: the kernel's peak mark is reset (`/proc/self/clear_refs` 5, Linux) after the weights are
made, so `peak` is the most the process held while exporting, the weights included; where the mark
cannot be reset, ru_maxrss (the peak of the whole run) stands in and the result says so. The weights
are random normal (their values do not change the cost) and the model goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _rss(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def write_floor(nbytes: int, folder: str) -> float:
    """Seconds to write `nbytes` from memory to a new file in `folder` and fsync it."""
    data = np.ones(nbytes // 4 + 1, np.float32)
    path = os.path.join(folder, "floor.bin")
    start = time.perf_counter()
    with open(path, "wb") as f:
        f.write(memoryview(data).cast("B")[:nbytes])
        f.flush()
        os.fsync(f.fileno())
    took = time.perf_counter() - start
    os.remove(path)
    return took


def measure(spec: str, dims: dict[str, int]) -> dict:
    import graphnet as gn
    net = gn.load(spec, dims or None)
    rng = np.random.default_rng(0)
    # absolute values: a batch norm's variance must be positive for its fold
    weights = {k: np.abs(rng.standard_normal(tuple(d.value for d in p.type.shape), dtype=np.float32)).astype(p.type.dtype)
               for k, p in net.graph.params.items()}
    nbytes = sum(w.nbytes for w in weights.values())
    with tempfile.TemporaryDirectory(prefix="graphnet-bench-", dir=ROOT) as folder:
        floor = write_floor(nbytes, folder)
        reset = _reset_peak()
        before = _rss("VmRSS")
        start = time.perf_counter()
        net.export_onnx(os.path.join(folder, "model.onnx"), weights)
        took = time.perf_counter() - start
        size = os.path.getsize(os.path.join(folder, "model.onnx"))
    peak = _rss("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"spec": spec, "dims": dims, "weights_bytes": nbytes, "file_bytes": size, "export_s": took,
            "write_floor_s": floor, "rss_before_bytes": before, "peak_rss_bytes": peak,
            "peak_over_weights": peak / nbytes, "peak_is": "during the export" if reset else "whole process",
            "load_average": os.getloadavg(), "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.export", description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "specs" / "bert_base.yaml"))
    p.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON")
    args = p.parse_args(argv)
    dims = {k: int(v) for k, v in (item.split("=", 1) for item in args.dim)}
    r = measure(args.spec, dims)
    mib = 1 << 20
    print(f"{Path(r['spec']).stem}: {r['weights_bytes'] / mib:.0f} MiB of weights, exported in {r['export_s']:.2f} s "
          f"(writing and fsyncing the same bytes alone: {r['write_floor_s']:.2f} s); peak RSS "
          f"{r['peak_rss_bytes'] / mib:.0f} MiB ({r['peak_is']}) = {r['peak_over_weights']:.2f}x the weights; "
          f"load average {r['load_average'][0]:.1f} on {r['cpus']} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
