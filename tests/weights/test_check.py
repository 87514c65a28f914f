"""The check every run makes and the report `graphnet weights` prints: every mismatch at once, with
did-you-mean; lossless casts made and said; num_batches_tracked ignored; a prefix selecting a
sub-module; only the tensors that fit read from a file."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file

import graphnet as gn
from graphnet.errors import SpecError
from graphnet.weights import check_weights, load_weights, weights_report


@pytest.fixture
def net(tiny_spec):
    return gn.load(tiny_spec)


def _error(net, weights, **kw) -> SpecError:
    with pytest.raises(SpecError) as e:
        check_weights(net.graph, weights, "w.safetensors", **kw)
    return e.value


def test_a_good_file_fits_and_a_network_given_it_computes_with_it(net, tiny_weights, tmp_path):
    w = tiny_weights()
    save_file(w, tmp_path / "w.safetensors")
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    got = net.run({"x": x}, weights=gn.load_weights(tmp_path / "w.safetensors"))["y"]
    h = x @ w["fc1.weight"].T + w["fc1.bias"]
    h = (h - w["bn.running_mean"]) / np.sqrt(w["bn.running_var"] + 1e-5) * w["bn.weight"] + w["bn.bias"]
    np.testing.assert_allclose(got, np.maximum(h, 0) @ w["fc2.weight"].T + w["fc2.bias"], rtol=1e-5, atol=1e-5)


def test_every_mismatch_is_listed_in_one_error(net, tiny_weights):
    w = tiny_weights()
    w["fc1.weights"] = w.pop("fc1.weight")                  # misspelled
    w["bn.running_var"] = w["bn.running_var"][:4]           # mis-shaped
    w["fc2.bias"] = w["fc2.bias"].astype(np.float64) + 1e-9  # changed by a cast
    w["bn.bias"] = np.arange(8)                             # exact integers: cast, fine
    w["bn.weight"][3] = np.nan                              # non-finite
    w["head.weight"] = np.zeros((2, 3), np.float32)         # not a param
    w["bn.num_batches_tracked"] = np.array(3)               # ignored by rule
    err = _error(net, w)
    assert len(err.diagnostics) == 1
    d = err.diagnostics[0]
    assert d.message == "the weights do not fit 'tiny': 1 missing, 2 unexpected, 1 mis-shaped, 1 mis-typed, 1 non-finite (each one below)"
    notes = [n.message for n in d.notes]
    assert notes[0].startswith("weight 'fc1.weight' is missing (declared at <std>/layers.yaml:15:15); did you mean 'fc1.weights'?")
    assert "weight 'bn.weight' has 1 NaN or infinite value" in notes[1]
    assert notes[2].startswith("weight 'bn.running_var' has shape [4] but the spec declares [8]")
    assert notes[3].endswith("; as float32, 3 of its 3 values would change") and notes[3].startswith("weight 'fc2.bias'")
    assert notes[4:] == ["weight 'fc1.weights' is not a param of 'tiny'; did you mean 'fc1.weight'?",
                         "weight 'head.weight' is not a param of 'tiny'; did you mean 'fc1.weight'?"]
    assert all(n.loc == d.loc for n in d.notes) and str(d.loc) == "w.safetensors:1:1"
    assert "nan" not in str(_error(net, w, allow_nonfinite=True).diagnostics[0].message).lower()


def test_one_mismatch_is_one_plain_error(net, tiny_weights):
    w = tiny_weights()
    del w["fc2.bias"]
    err = _error(net, w)
    assert [d.message for d in err.diagnostics] == ["weight 'fc2.bias' is missing (declared at <std>/layers.yaml:16:13)"]
    assert err.diagnostics[0].notes == ()


def test_lossless_casts_are_made_and_counted(net, tiny_weights):
    w = tiny_weights(dtype=np.float16)
    w["fc1.bias"] = w["fc1.bias"].astype(np.float64)
    w["bn.running_mean"] = np.arange(8, dtype=np.int64)
    report = weights_report(net.graph, w, "w.npz")
    assert report.ok and report.casts_line() == (
        "w.npz: cast 8 weights to the spec's dtypes, changing no value: "
        "float16 -> float32 (6), float64 -> float32 (1), int64 -> float32 (1)")
    for name, a in report.weights.items():
        assert a.dtype == np.float32 and np.array_equal(a, w[name].astype(np.float32)), name


def test_num_batches_tracked_is_ignored_and_never_read(net, tiny_weights, tmp_path):
    save_file({**tiny_weights(), "bn.num_batches_tracked": np.array(7), "x.num_batches_tracked": np.zeros(3)},
              tmp_path / "w.safetensors")
    found = load_weights(tmp_path / "w.safetensors")
    read = []
    reader = found._reader
    found._reader = lambda names: (read.extend(names), reader(names))[1]
    report = weights_report(net.graph, found, "w")
    assert report.ok and report.ignored == ["bn.num_batches_tracked", "x.num_batches_tracked"]
    assert sorted(read) == sorted(net.graph.params)


def test_only_the_tensors_that_fit_are_read(net, tiny_weights, tmp_path):
    w = tiny_weights()
    save_file({**w, "fc1.weight": np.zeros((4, 8), np.float32), "big": np.zeros(1 << 20, np.float32)},
              tmp_path / "w.safetensors")
    found = load_weights(tmp_path / "w.safetensors")
    read = []
    reader = found._reader
    found._reader = lambda names: (read.extend(names), reader(names))[1]
    report = weights_report(net.graph, found, "w")
    assert [m.kind for m in report.mismatches] == ["mis-shaped", "unexpected"]
    assert "big" not in read and "fc1.weight" not in read and len(read) == len(w) - 1


def test_a_prefix_selects_a_sub_module_and_strips_it(net, tiny_weights, tmp_path):
    # as a BertForSequenceClassification checkpoint holds a BertModel under 'bert.'
    w = tiny_weights()
    save_file({**{f"bert.{k}": v for k, v in w.items()}, "classifier.weight": np.zeros((2, 3), np.float32)},
              tmp_path / "w.safetensors")
    for prefix in ("bert.", "bert"):
        found = gn.load_weights(tmp_path / "w.safetensors", prefix=prefix)
        assert sorted(found) == sorted(w) and found.outside == 1 and found.prefix == "bert."
        report = weights_report(net.graph, found, "w")
        assert report.ok and all(np.array_equal(report.weights[k], w[k]) for k in w)


def test_without_the_prefix_the_error_says_which_one_would_match(net, tiny_weights, tmp_path):
    save_file({f"bert.{k}": v for k, v in tiny_weights().items()}, tmp_path / "w.safetensors")
    err = _error(net, load_weights(tmp_path / "w.safetensors"))
    assert "; --weights-prefix bert. would match 8 of the 8 missing (each one below)" in err.diagnostics[0].message


def test_a_prefix_no_name_has(tiny_weights, tmp_path):
    save_file({f"bert.{k}": v for k, v in tiny_weights().items()} | {"cls.bias": np.zeros(2)}, tmp_path / "w.safetensors")
    with pytest.raises(SpecError) as e:
        load_weights(tmp_path / "w.safetensors", prefix="model.")
    assert e.value.render() == (f"{tmp_path / 'w.safetensors'}:1:1: error: no tensor's name starts with 'model.' "
                                "(--weights-prefix); the names start with 'bert.', 'cls.'")
