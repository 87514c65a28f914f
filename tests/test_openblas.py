"""graphnet picks OpenBLAS's AVX-512 kernel where the CPU executes it, and only then; OpenBLAS itself
(OPENBLAS_VERBOSE=2) reports the kernel it loaded."""

import os
import subprocess
import sys

from graphnet.openblas import SKYLAKEX_FLAGS, chosen_coretype, cpu_flags

AVX512 = "processor\t: 0\nflags\t\t: fpu sse avx2 " + " ".join(sorted(SKYLAKEX_FLAGS)) + "\n"
AVX2 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n"


def test_the_choice():
    assert cpu_flags(AVX512) >= SKYLAKEX_FLAGS
    assert chosen_coretype({}, AVX512, "x86_64") == "SkylakeX"
    assert chosen_coretype({"OPENBLAS_CORETYPE": "Haswell"}, AVX512, "x86_64") == "SkylakeX"
    assert chosen_coretype({}, AVX2, "x86_64") is None            # avx512f alone is not enough
    assert chosen_coretype({}, AVX512, "aarch64") is None
    assert chosen_coretype({"GRAPHNET_OPENBLAS": "keep"}, AVX512, "x86_64") is None
    assert chosen_coretype({}, "", "x86_64") is None


def _loaded_kernel(env: dict, code: str = "import graphnet, numpy") -> str:
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env, "OPENBLAS_VERBOSE": "2"},
                         capture_output=True, text=True, timeout=60)
    return out.stdout + out.stderr


def test_openblas_loads_the_chosen_kernel():
    try:
        with open("/proc/cpuinfo") as f:
            here = f.read()
    except OSError:
        here = ""
    expected = chosen_coretype({}, here, os.uname().machine)
    shown = _loaded_kernel({"OPENBLAS_CORETYPE": "Haswell"})
    if expected:
        assert f"Core: {expected}" in shown
    # opting out keeps the environment's choice, and NumPy loaded first is left alone
    assert "SkylakeX" not in _loaded_kernel({"OPENBLAS_CORETYPE": "Haswell", "GRAPHNET_OPENBLAS": "keep"})
    assert "SkylakeX" not in _loaded_kernel({"OPENBLAS_CORETYPE": "Haswell"}, "import numpy, graphnet")


def _thread_timeout(env: dict, code: str = "import graphnet, os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))") -> str:
    env = {**{k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}, **env}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60).stdout.strip()


def test_idle_pools_sleep_unless_the_environment_says_otherwise():
    assert _thread_timeout({}) == "20"
    assert _thread_timeout({"OPENBLAS_THREAD_TIMEOUT": "28"}) == "28"
    assert _thread_timeout({"GRAPHNET_OPENBLAS": "keep"}) == "None"
    # NumPy loaded first: too late for OpenBLAS to read it, so graphnet sets nothing
    assert _thread_timeout({}, "import numpy, graphnet, os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))") == "None"
