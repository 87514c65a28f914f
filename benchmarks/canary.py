"""The matmul canary: a short float32 NumPy matmul timed between benchmark blocks. Its GFLOP/s is
the machine's matmul peak as measured in this run (engines' achieved GFLOP/s are reported as a
fraction of the best canary), and a canary well below the best flags the blocks around it as run
on a slowed machine (another process, thermal or frequency throttling).

`python -m benchmarks.canary` prints one canary and the BLAS NumPy uses (its core type and
threads), e.g. to compare `OPENBLAS_CORETYPE=...` settings in fresh processes."""

from __future__ import annotations

import ctypes
import glob
import json
import os
import sys
import time

import numpy as np

SIZE = 1024                 # a [1024, 1024] @ [1024, 1024] float32 matmul: 2.1 GFLOP
SLOW = 0.8                  # a canary under this fraction of the run's best flags its neighbours


def canary(reps: int = 5, size: int = SIZE) -> float:
    """GFLOP/s of the fastest of `reps` matmuls (after one untimed)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), np.float32)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return 2 * size ** 3 / best / 1e9


def _openblas():
    """NumPy's bundled OpenBLAS (its symbols carry a scipy_openblas prefix and 64_ suffix), or None."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*"))):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def blas_info() -> dict:
    """The BLAS NumPy calls: OpenBLAS's core type (the kernels it chose for this CPU), its config and
    thread count when it can be asked; otherwise what NumPy's build says."""
    lib = _openblas()
    info: dict = {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                  "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}
    calls = {"corename": "scipy_openblas_get_corename64_", "config": "scipy_openblas_get_config64_",
             "threads": "scipy_openblas_get_num_threads64_"}
    if lib is None or not all(hasattr(lib, c) for c in calls.values()):
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        info.update(name=blas.get("name"), version=blas.get("version"))
        return info
    for key in ("corename", "config"):
        fn = getattr(lib, calls[key])
        fn.restype = ctypes.c_char_p
        info[key] = fn().decode()
    info["threads"] = int(getattr(lib, calls["threads"])())
    return info


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    reps = int(argv[0]) if argv else 10
    print(json.dumps({"gflops": round(canary(reps), 1), "size": SIZE, **blas_info()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
