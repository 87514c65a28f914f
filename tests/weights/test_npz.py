""".npz: written member by member (a name is never a keyword argument), read back by NumPy, and an
archive that would inflate past its bound refused from its headers alone."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from graphnet.errors import SpecError
from graphnet.weights import load_npz, load_weights, save_npz, save_weights
from graphnet.weights import npz as npz_module


def test_names_numpy_savez_takes_as_its_own_arguments_are_written_like_any_other(tmp_path):
    arrays = {"file": np.arange(3.0), "allow_pickle": np.ones(2, np.int64), "args": np.zeros((2, 2), np.float16),
              "fc.weight": np.eye(2, dtype=np.float32), "flag": np.array(True)}
    save_npz(tmp_path / "w.npz", arrays)
    with np.load(tmp_path / "w.npz", allow_pickle=False) as data:     # NumPy as the reader
        assert sorted(data.files) == sorted(arrays)
        for k, a in arrays.items():
            assert data[k].dtype == a.dtype and np.array_equal(data[k], a)
    assert load_npz(tmp_path / "w.npz").keys() == arrays.keys()


def test_an_npz_numpy_writes_reads_back_the_same(tmp_path):
    arrays = {"a": np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32), "b": np.arange(4)}
    np.savez_compressed(tmp_path / "w.npz", **arrays)
    got = load_weights(tmp_path / "w.npz")
    assert {k: (i.dtype, i.shape) for k, i in got.infos.items()} == {"a": ("float32", (3, 5)), "b": ("int64", (4,))}
    for k, a in got.read().items():
        np.testing.assert_array_equal(a, arrays[k])


def test_save_weights_picks_the_format_by_extension(tmp_path):
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    save_weights(tmp_path / "w.npz", arrays)
    save_weights(tmp_path / "w.safetensors", arrays)
    assert zipfile.is_zipfile(tmp_path / "w.npz") and not zipfile.is_zipfile(tmp_path / "w.safetensors")
    with pytest.raises(SpecError) as e:
        save_weights(tmp_path / "w.pt", arrays)
    assert e.value.render() == (f"{tmp_path / 'w.pt'}:1:1: error: '{tmp_path / 'w.pt'}': weights are written as .npz "
                                "or .safetensors, chosen by the name's extension, and '.pt' is neither")
    assert not (tmp_path / "w.pt").exists()


def _deflated(tmp_path, name: str, data: bytes):
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(f"{name}.npy", "w") as member:
            np.lib.format.write_array(member, np.frombuffer(data, np.float32))
    return path


def test_an_archive_inflating_past_its_bound_is_refused_from_its_headers(tmp_path, monkeypatch):
    # with the floor lowered to 1 MiB: 4 MiB of zeros deflate to about 4 KiB, a thousandfold
    monkeypatch.setattr(npz_module, "INFLATION_FLOOR", 1 << 20)
    path = _deflated(tmp_path, "junk", bytes(4 << 20))
    reads = []
    monkeypatch.setattr(np, "load", lambda *a, **k: reads.append(a))
    with pytest.raises(SpecError) as e:
        load_weights(path)
    assert "not a readable .npz file: its members inflate to 4.0 MiB, over 100 times the file's" in e.value.render()
    assert reads == []


def test_weights_that_barely_compress_are_within_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(npz_module, "INFLATION_FLOOR", 1 << 20)
    values = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    got = load_weights(_deflated(tmp_path, "w", values.tobytes()))["w"]
    np.testing.assert_array_equal(got, values)
