"""The contention mode's competitor: another NumPy process doing BLAS work on every core, started
and stopped by the benchmark around a case's second timing (`python -m benchmarks.run --contention`).

It is what a user's other job looks like: a loop of [1024, 1024] float32 matmuls under OpenBLAS's
defaults (one thread per core, spinning pools), not under the settings graphnet or the benchmark
chose for themselves. It exits by itself when the benchmark does (its parent changes)."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager

LOOP = """
import os, sys
import numpy as np
parent = os.getppid()
a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
out = np.empty_like(a)
np.matmul(a, a, out=out)
print("ready", flush=True)
while os.getppid() == parent:
    np.matmul(a, a, out=out)
"""

# the settings this process chose for its own pools, which a user's other job would not have
OURS = ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


@contextmanager
def competitor():
    """Run the block beside a competing NumPy process, busy from the block's start to its end."""
    env = {k: v for k, v in os.environ.items() if k not in OURS}
    proc = subprocess.Popen([sys.executable, "-c", LOOP], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the competing process did not start (exit status {proc.wait()})")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
