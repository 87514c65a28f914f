"""Pick OpenBLAS's AVX-512 GEMM kernel on CPUs that execute it; imported before anything loads NumPy.

OpenBLAS chooses a kernel when it loads: the one OPENBLAS_CORETYPE names, else one for the CPU it
detects. The machines graphnet is developed on run with OPENBLAS_CORETYPE=Haswell in their
environment, an AVX2 kernel that reaches half the float32 GEMM speed of the "SkylakeX" kernel on the
same AVX-512 CPU (docs/performance.md has the measurements). So, when NumPy is not loaded yet, on
x86-64 Linux whose /proc/cpuinfo lists every AVX-512 subset that kernel executes (listed only when
the OS has enabled AVX-512 state too), graphnet sets OPENBLAS_CORETYPE=SkylakeX for its process and
its children. The kernel changes only the speed and the last bits of rounding, never what is computed.

Idle OpenBLAS threads also go to sleep soon: OPENBLAS_THREAD_TIMEOUT=20, 2^20 cycles (a few
tenths of a millisecond) of waiting for work after a product, where OpenBLAS's default spins 2^28
cycles, about a tenth of a second. A pool spinning after a run holds cores that another process
needs (docs/performance.md); 2^20 still keeps it awake across the gaps between one run's products,
a few microseconds of Python each, so a run does not wake its threads once per product. A value
already in the environment is kept. OMP_WAIT_POLICY is not set: NumPy's wheels use OpenBLAS's own threads,
and it would change torch's, and every other OpenMP library's, pools in the caller's process.

GRAPHNET_OPENBLAS=keep leaves OpenBLAS's environment as it is. This module must not import NumPy.
"""

from __future__ import annotations

import os
import platform
import sys

SKYLAKEX_FLAGS = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor in /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def chosen_coretype(environ, cpuinfo: str, machine: str) -> str | None:
    """The OPENBLAS_CORETYPE to set, or None to leave it alone."""
    if environ.get("GRAPHNET_OPENBLAS") == "keep" or machine not in ("x86_64", "AMD64"):
        return None
    return "SkylakeX" if SKYLAKEX_FLAGS <= cpu_flags(cpuinfo) else None


def prefer_avx512() -> None:
    if "numpy" in sys.modules or not sys.platform.startswith("linux"):
        return   # too late to matter here, and it would only change child processes
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpuinfo = f.read()
    except OSError:
        return
    coretype = chosen_coretype(os.environ, cpuinfo, platform.machine())
    if coretype:
        os.environ["OPENBLAS_CORETYPE"] = coretype


def sleep_when_idle() -> None:
    if "numpy" in sys.modules or os.environ.get("GRAPHNET_OPENBLAS") == "keep":
        return
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")


prefer_avx512()
sleep_when_idle()
