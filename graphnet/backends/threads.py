"""How many BLAS threads a NumPy-backend run uses: one per core that other processes leave free.

OpenBLAS cuts each matrix product into one equal share per thread and waits for the last share.
Beside another busy process a thread that the scheduler preempts holds the whole product up:
transformer_encoder on 2 cores beside a NumPy process doing matmuls ran 2 to 5 times slower with
2 threads than with 1 (docs/performance.md). So before each run the session counts the cores that
other processes kept busy since its last count (/proc/stat's busy and stolen time less this
process's own CPU time, over at least WINDOW_S) and runs with the cores left, at least one and at
most the count BLAS has when the run starts (its default, one per core, or what the caller set with
OPENBLAS_NUM_THREADS or threadpoolctl). The count is put back after the run, so the caller's own
NumPy is left as it was. Where /proc/stat cannot be read (not Linux) nothing changes.

threadpoolctl (a dependency) finds the BLAS libraries loaded and sets their thread counts.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

WINDOW_S = 0.1     # /proc/stat counts in clock ticks (10 ms): a shorter window is mostly rounding
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Sample:
    wall: float
    busy: int       # ticks every CPU spent on anything but idle and I/O wait, stolen time included
    total: int      # ticks of every CPU
    cpus: int       # CPUs /proc/stat counts
    own: float      # this process's CPU seconds, all its threads


def parse_stat(text: str) -> tuple[int, int, int]:
    """(busy, total, cpus) from /proc/stat text: user nice system idle iowait irq softirq steal."""
    lines = text.splitlines()
    ticks = [int(v) for v in lines[0].split()[1:9]]
    cpus = sum(1 for line in lines[1:] if line.startswith("cpu"))
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks), max(cpus, 1)


def sample() -> Sample | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            busy, total, cpus = parse_stat(f.read())
    except (OSError, ValueError, IndexError):
        return None
    t = os.times()
    return Sample(time.monotonic(), busy, total, cpus, t.user + t.system)


def others_busy(before: Sample, after: Sample) -> float:
    """The cores other processes kept busy between two samples."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    own = (after.own - before.own) * _TICK
    return max(0.0, after.cpus * (after.busy - before.busy - own) / total)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class FreeCores:
    """The cores free for this process, as last measured: None until a window has passed."""

    def __init__(self):
        self.last = sample()
        self.free: float | None = None

    def __call__(self) -> float | None:
        if self.last is None:
            return None
        now = sample()
        if now is not None and now.wall - self.last.wall >= WINDOW_S:
            self.free = min(usable_cores(), now.cpus) - others_busy(self.last, now)
            self.last = now
        return self.free


def thread_count(free: float | None, ceiling: int) -> int:
    """The threads for a run: the free cores rounded, at least 1, at most `ceiling`."""
    if free is None:
        return ceiling
    return max(1, min(ceiling, int(free + 0.5)))


class _Policy:
    """The process's BLAS libraries (found on first use, when NumPy has loaded its BLAS) and its
    count of free cores: one per process, since the cores are the machine's."""

    def __init__(self):
        self.free = FreeCores()
        self._blas = None

    @property
    def blas(self) -> list:
        if self._blas is None:
            try:
                from threadpoolctl import ThreadpoolController
                self._blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
            except Exception:       # threadpoolctl could not inspect this process: leave BLAS alone
                self._blas = []
        return self._blas


_policy: _Policy | None = None


@contextmanager
def free_core_threads():
    """Run the block with BLAS limited to the cores other processes leave free; restored after."""
    global _policy
    if _policy is None:
        _policy = _Policy()
    libs = _policy.blas
    free = _policy.free()
    changed = []
    for lib in libs:
        before = lib.num_threads
        wanted = thread_count(free, before)
        if wanted != before:
            lib.set_num_threads(wanted)
            changed.append((lib, before))
    try:
        yield
    finally:
        for lib, before in changed:
            lib.set_num_threads(before)
