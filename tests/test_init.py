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


# -- made in the param's dtype, a chunk at a time, bounded --------------------------------------------

from pathlib import Path  # noqa: E402

import graphnet as gn  # noqa: E402
from graphnet import init as init_module  # noqa: E402
from graphnet.cli import main  # noqa: E402
from graphnet.errors import SpecError  # noqa: E402
from graphnet.init import Normal, Uniform  # noqa: E402


@pytest.mark.parametrize("scheme", [Normal(mean=0.5, std=2.0), Uniform(low=-1.0, high=3.0), XavierUniform()])
def test_chunked_draws_are_one_draw_of_the_whole_array(scheme):
    # the oracle is numpy itself: one float64 draw of every value, cast to float32
    shape = (3, init_module._CHUNK // 2 + 7)         # more than two chunks
    got = scheme.sample(shape, param_rng(0, "w"), "float32")
    rng = param_rng(0, "w")
    if isinstance(scheme, Normal):
        want = rng.normal(0.5, 2.0, shape)
    elif isinstance(scheme, Uniform):
        want = rng.uniform(-1.0, 3.0, shape)
    else:
        bound = math.sqrt(6 / (shape[0] + shape[1]))
        want = rng.uniform(-bound, bound, shape)
    assert got.dtype == np.float32 and np.array_equal(got, want.astype(np.float32))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_params_are_made_in_their_own_dtype(tmp_path, dtype):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"graphnet: 1\nname: t\ninputs:\n  x: {{shape: [2, 8], dtype: {dtype}}}\nparams:\n"
                    f"  w: {{shape: [8, 4], init: {{normal: {{std: 0.02}}}}, dtype: {dtype}}}\n"
                    "nodes:\n  - {name: m, op: matmul, inputs: [x, w]}\noutputs: {y: m}\n")
    w = gn.load(spec).init_weights(3)["w"]
    assert w.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(w, param_rng(3, "w").normal(0.0, 0.02, (8, 4)).astype(dtype))


def _one_param(tmp_path: Path, shape: str, init: str, dtype: str = "float32") -> Path:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"graphnet: 1\nname: t\ninputs:\n  x: {{shape: [1, {shape.split(',')[0].strip('[ ')}], "
                    f"dtype: {dtype}}}\nparams:\n  w:\n    shape: {shape}\n    init: {init}\n    dtype: {dtype}\n"
                    "nodes:\n  - {name: m, op: matmul, inputs: [x, w]}\noutputs: {y: m}\n")
    return spec


def test_a_param_past_the_byte_bound_is_refused_before_anything_is_allocated(tmp_path, capsys):
    # issue 13: [50000, 50000] asked for 18.6 GiB; its 9.3 GiB are over init.MAX_PARAM_BYTES
    spec = _one_param(tmp_path, "[50000, 50000]", "{normal: {std: 0.01}}")
    for argv in (["run", spec], ["export", spec, "-o", tmp_path / "m.onnx"], ["init-weights", spec, "-o", tmp_path / "w.npz"]):
        capsys.readouterr()
        assert main([str(a) for a in argv]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"{spec}:8:11: error: param 'w' (float32[50000, 50000]) is 9.3 GiB, over the 4.0 GiB"), err
        assert "init.MAX_PARAM_BYTES" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_all_the_random_weights_together_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(init_module, "MAX_INIT_BYTES", 500)   # a is 400 bytes, b 400 more
    spec = tmp_path / "s.yaml"
    spec.write_text("graphnet: 1\nname: t\ninputs:\n  x: [1, 10]\nparams:\n  a: {shape: [10, 10], init: ones}\n"
                    "  b: {shape: [10, 10], init: ones}\nnodes:\n  - {name: m, op: matmul, inputs: [x, a]}\n"
                    "  - {name: n, op: matmul, inputs: [m, b]}\noutputs: {y: n}\n")
    with pytest.raises(SpecError, match=r"param 'b' takes the random weights to .* \(init.MAX_INIT_BYTES\)") as info:
        gn.load(spec).init_weights()
    assert info.value.diagnostics[0].loc.line == 7


@pytest.mark.parametrize("init,dtype", [("{constant: 1.0e300}", "float32"), ("{normal: {std: 1.0e300}}", "float32"),
                                        ("{xavier_uniform: {gain: 1.0e300}}", "float32"),
                                        ("{constant: 70000}", "float16")])
def test_an_init_that_overflows_the_dtype_is_reported_at_the_init(tmp_path, capsys, init, dtype):
    # issue 13: reported at '<weights>:1:1' with no weights file given
    spec = _one_param(tmp_path, "[4, 3]", init, dtype)
    assert main(["run", str(spec)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:8:11: error: param 'w': its init gives 12 values that {dtype} cannot hold"), err
    assert "<weights>" not in err


@pytest.mark.parametrize("kind", sorted(init_module.SCHEMES))
def test_every_scheme_refuses_infinite_and_nan_options(kind):
    from pydantic import ValidationError
    fields = [f for f, info in init_module.SCHEMES[kind].model_fields.items() if info.annotation is float]
    for field in fields:
        for bad in (float("inf"), float("nan")):
            with pytest.raises(ValidationError):
                init_module.make_init(kind, {field: bad})


@pytest.mark.parametrize("kind,options", [
    ("normal", {"std": -1}), ("uniform", {"low": 1, "high": 0}), ("uniform", {"low": 5}),
    ("uniform", {"low": -1e308, "high": 1e308}), ("xavier_uniform", {"gain": -0.5}), ("xavier_normal", {"fan_in": 0}),
    ("kaiming_uniform", {"fan_in": 0}), ("kaiming_normal", {"fan_out": 0, "mode": "fan_out"}),
    ("he_uniform", {"fan_in": -3}), ("glorot_normal", {"gain": -1}),
])
def test_options_that_cannot_be_sampled_are_refused_when_made(kind, options):
    # the oracle: numpy refuses to sample these (or divides by zero), so the scheme must refuse first
    from pydantic import ValidationError
    with pytest.raises(ValidationError):
        init_module.make_init(kind, options)


def test_check_finds_a_std_that_overflows():
    with pytest.raises(ValueError, match="overflows a float"):
        KaimingNormal(a=1e300).check((4, 4))
    KaimingNormal(a=5.0).check((4, 4))
