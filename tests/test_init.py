"""Init schemes: the distributions the formulas promise (Glorot & Bengio 2010, He et al. 2015),
and one stream per param name so a seed always gives the same weights."""

import math

import numpy as np
import pytest

from graphnet.init import KaimingNormal, KaimingUniform, XavierNormal, XavierUniform, param_rng


def test_xavier_uniform_bound():
    w = XavierUniform().sample((300, 200), param_rng(0, "w"))
    bound = math.sqrt(6 / (300 + 200))
    assert w.max() <= bound and w.min() >= -bound
    assert w.max() > 0.99 * bound


def test_normal_schemes_std():
    w = XavierNormal(gain=2.0).sample((400, 300), param_rng(0, "w"))
    assert w.std() == pytest.approx(2.0 * math.sqrt(2 / 700), rel=0.02)
    k = KaimingNormal(mode="fan_out").sample((64, 32, 3, 3), param_rng(0, "k"))
    assert k.std() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)


def test_kaiming_uniform_matches_pytorch_linear_default():
    # torch.nn.Linear: kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w = KaimingUniform(a=math.sqrt(5)).sample((50, 400), param_rng(0, "w"))
    assert np.abs(w).max() <= 1 / math.sqrt(400) and np.abs(w).max() > 0.99 / math.sqrt(400)


def test_streams_depend_on_seed_and_name_only():
    a = param_rng(3, "fc1.weight").standard_normal(4)
    assert np.array_equal(a, param_rng(3, "fc1.weight").standard_normal(4))
    assert not np.array_equal(a, param_rng(3, "fc2.weight").standard_normal(4))
    assert not np.array_equal(a, param_rng(4, "fc1.weight").standard_normal(4))


def test_fans_needed_for_rank_one():
    with pytest.raises(ValueError, match="needs fan_in/fan_out"):
        XavierUniform().sample((10,), param_rng(0, "b"))
