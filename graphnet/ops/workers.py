"""The threads a kernel may spread blocks of its NumPy work over (a depthwise conv's channel blocks).

NumPy's copies and ufunc loops and its matmul release the GIL, so blocks of one kernel's work run
on several cores from Python threads, as BLAS runs a product on several. The count is 1, one
block after another in the caller's thread, unless a back end sets it for a run with `using`
(backends/threads.py: the cores other processes leave free, the count BLAS gets too). Each thread
takes the next block when it is done with one, so a thread the scheduler holds up delays one
block rather than a share fixed in advance. The pool's idle threads wait on a queue: they hold no
core between kernels.
"""

from __future__ import annotations

import contextvars
import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

# per context, so that sessions run from several threads at once each keep their own count
_count: contextvars.ContextVar[int] = contextvars.ContextVar("graphnet_kernel_threads", default=1)
_pool: ThreadPoolExecutor | None = None


def most() -> int:
    """The most threads a kernel spreads its blocks over: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def count() -> int:
    """The threads kernels may spread their blocks over here and now."""
    return _count.get()


@contextmanager
def using(threads: int):
    """Kernels run in the block may spread their blocks over `threads` threads (at most `most()`)."""
    token = _count.set(max(1, min(threads, most())))
    try:
        yield
    finally:
        _count.reset(token)


def each_block(blocks: int, scratch: Callable[[], object], work: Callable[[int, object], None]) -> None:
    """work(i, s) for every block i < blocks, over the threads `using` allows, s being the
    calling thread's own scratch (scratch() made once per thread)."""
    global _pool
    threads = min(_count.get(), blocks)
    if threads <= 1:
        held = scratch()
        for i in range(blocks):
            work(i, held)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=most() - 1, thread_name_prefix="graphnet")
    taken = itertools.count()         # next() on it is atomic under the GIL

    def loop() -> None:
        held = scratch()
        for i in taken:
            if i >= blocks:
                return
            work(i, held)

    # each helper runs in a copy of the caller's context: NumPy's errstate (IEEE results without
    # warnings, as a session runs) lives there
    helpers = [_pool.submit(contextvars.copy_context().run, loop) for _ in range(threads - 1)]
    try:
        loop()
    finally:
        for f in helpers:
            f.result()
