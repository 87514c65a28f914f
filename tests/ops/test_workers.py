"""Blocks of a kernel's work spread over threads (ops/workers.py): every block done once, each
thread with its own scratch, the caller's NumPy error state in every thread, a block's failure
raised to the caller, and one thread (the caller's) unless a run allows more."""

import threading
import warnings

import numpy as np
import pytest

from graphnet.ops import workers


def _spread(blocks: int, threads: int):
    done, scratches = [], []

    def scratch():
        held = {"thread": threading.get_ident()}
        scratches.append(held)
        return held

    def work(i, held):
        assert held["thread"] == threading.get_ident()
        done.append((i, threading.get_ident()))
    with workers.using(threads):
        workers.each_block(blocks, scratch, work)
    return done, scratches


def test_every_block_is_done_once_with_a_scratch_per_thread():
    done, scratches = _spread(40, 2)
    assert sorted(i for i, _ in done) == list(range(40))
    assert len(scratches) == min(2, workers.most()) == len({t for _, t in done} | {s["thread"] for s in scratches})


def test_one_thread_is_the_callers_own_and_the_default():
    assert workers.count() == 1
    done, scratches = _spread(5, 1)
    assert [i for i, _ in done] == list(range(5)) and {t for _, t in done} == {threading.get_ident()}
    assert len(scratches) == 1


def test_the_callers_error_state_holds_in_every_thread():
    out = np.zeros(16, np.float32)

    def work(i, _):
        out[i] = (np.ones(1, np.float32) / np.zeros(1, np.float32))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="ignore"), workers.using(2):
            workers.each_block(16, lambda: None, work)
    assert np.all(np.isinf(out))


def test_a_failing_block_raises_in_the_caller():
    def work(i, _):
        if i == 7:
            raise IndexError("block 7")
    with workers.using(2), pytest.raises(IndexError, match="block 7"):
        workers.each_block(12, lambda: None, work)
    assert workers.count() == 1
