"""The BLAS thread policy: the free cores worked out from /proc/stat counts, the thread count a run
gets from them, and the caller's count put back after a run (threadpoolctl reads it)."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import graphnet as gn
from graphnet import network
from graphnet.backends.numpy_backend import run_plan
from graphnet.backends import threads
from graphnet.backends.threads import Sample, others_busy, parse_stat, thread_count

STAT = """cpu  100 5 50 800 20 3 2 10 0 0
cpu0 50 2 25 400 10 1 1 5 0 0
cpu1 50 3 25 400 10 2 1 5 0 0
intr 12345
"""


def test_parse_stat_counts_busy_and_stolen_time():
    busy, total, cpus = parse_stat(STAT)
    assert (busy, total, cpus) == (100 + 5 + 50 + 3 + 2 + 10, 990, 2)


def test_others_busy_leaves_out_this_process():
    tick = threads._TICK
    before = Sample(0.0, busy=1000, total=4000, cpus=2, own=1.0)
    # over 200 ticks of both CPUs (100 each), 150 busy ticks, 50 of them this process's
    after = Sample(1.0, busy=1150, total=4200, cpus=2, own=1.0 + 50 / tick)
    assert others_busy(before, after) == pytest.approx(2 * 100 / 200)
    # this process's own time past the machine's (rounding of the counters) is no one else's
    assert others_busy(before, Sample(1.0, 1010, 4200, 2, 1.0 + 50 / tick)) == 0.0


def test_thread_count_rounds_the_free_cores_within_the_ceiling():
    assert thread_count(None, 2) == 2           # nothing measured yet: BLAS as it is
    assert thread_count(1.9, 2) == 2
    assert thread_count(1.2, 2) == 1
    assert thread_count(-0.5, 2) == 1           # a saturated machine still gets one thread
    assert thread_count(7.6, 4) == 4            # never above what the caller allows


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def _run_seeing_threads(monkeypatch, free: float) -> tuple[list[int], list[int]]:
    """The BLAS thread counts during a session's run with `free` cores measured, and after it."""
    net = gn.load("specs/mlp.yaml")
    session = net.session(net.init_weights(0))
    x = net.random_inputs({"B": 4})
    seen = []

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        return run_plan(*args, **kwargs)
    monkeypatch.setattr(threads.FreeCores, "__call__", lambda self: free)
    monkeypatch.setattr(network, "run_plan", spy)
    session.run(x)
    return seen[0], _blas_threads()


def test_a_busy_machine_runs_on_one_thread_and_the_callers_count_comes_back(monkeypatch):
    with threadpool_limits(2, user_api="blas"):
        during, after = _run_seeing_threads(monkeypatch, 0.3)
        assert set(during) == {1} and set(after) == {2}
        during, after = _run_seeing_threads(monkeypatch, 2.0)
        assert set(during) == {2} and set(after) == {2}


def test_never_more_threads_than_the_caller_allows(monkeypatch):
    with threadpool_limits(1, user_api="blas"):
        during, after = _run_seeing_threads(monkeypatch, 8.0)
        assert set(during) == {1} and set(after) == {1}
