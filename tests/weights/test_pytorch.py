"""PyTorch checkpoints written by torch.save itself: a module's state_dict and the usual wrappers
load by name and give torch's outputs; half-precision ones are cast as torch casts them; a pickle
that asks for anything but tensors is refused and nothing in it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from graphnet.weights import load_weights

torch = pytest.importorskip("torch")
CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "weights"


def _outputs(cli, spec, weights, x, tmp_path, *extra) -> np.ndarray:
    np.savez(tmp_path / "x.npz", x=x)
    out = tmp_path / "y.npz"
    code, _, err = cli("run", spec, "--weights", weights, "--inputs", tmp_path / "x.npz", "-o", out, *extra)
    assert code == 0, err
    return np.load(out)["y"]


@pytest.mark.parametrize("wrap", ["state_dict", "under state_dict", "under model", "ordered dict", ".pth", ".bin"])
def test_a_torch_save_of_a_state_dict_gives_torchs_outputs(tiny_module, wrap, tiny_spec, tmp_path, cli):
    m = tiny_module()
    sd = m.state_dict()
    saved = {"state_dict": sd, "under state_dict": {"state_dict": sd, "epoch": 3, "best": 0.5},
             "under model": {"model": sd, "optimizer": {"lr": 0.1}}, "ordered dict": OrderedDict(sd)}.get(wrap, sd)
    path = tmp_path / ("w" + (wrap if wrap.startswith(".") else ".pt"))
    torch.save(saved, path)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    got = _outputs(cli, tiny_spec, path, x, tmp_path)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_num_batches_tracked_is_ignored_by_rule(tiny_module, tiny_spec, tmp_path, cli):
    path = tmp_path / "w.pt"
    torch.save(tiny_module().state_dict(), path)
    assert "bn.num_batches_tracked" in load_weights(path)
    code, out, _ = cli("weights", tiny_spec, path)
    assert code == 0
    assert "ignored 1 names ending in num_batches_tracked, by rule" in " ".join(out.split())
    assert out.rstrip().endswith("ok: every param has its weight")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_checkpoints_are_cast_as_torch_casts_them(tiny_module, dtype, tiny_spec, tmp_path, cli):
    m = tiny_module().to(getattr(torch, dtype))
    path = tmp_path / "w.pt"
    torch.save(m.state_dict(), path)
    loaded = load_weights(path).read()
    for name, t in m.state_dict().items():
        if t.is_floating_point():
            assert loaded[name].dtype == (np.float16 if dtype == "float16" else np.float32)
            np.testing.assert_array_equal(loaded[name].astype(np.float32), t.float().numpy())   # torch's own conversion
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    with torch.no_grad():
        want = m.float()(torch.from_numpy(x)).numpy()
    np.savez(tmp_path / "x.npz", x=x)
    code, _, err = cli("run", tiny_spec, "--weights", path, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.npz")
    assert code == 0, err
    assert err.splitlines() == [f"{path}: cast 8 weights to the spec's dtypes, changing no value: {dtype} -> float32 (8)"]
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["y"], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


class _Pwn:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["a value", "the whole file", "in a wrapper"])
def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tiny_module, where, tiny_spec, tmp_path, cli):
    marker = tmp_path / "PWNED"
    evil = _Pwn(marker)
    saved = {"a value": {**tiny_module().state_dict(), "fc2.bias": evil}, "the whole file": evil,
             "in a wrapper": {"state_dict": tiny_module().state_dict(), "extra": evil}}[where]
    path = tmp_path / "evil.pt"
    torch.save(saved, path)
    assert not marker.exists()
    for command in (["run", tiny_spec, "--weights", path], ["weights", tiny_spec, path],
                    ["export", tiny_spec, "--weights", path, "-o", tmp_path / "m.onnx"]):
        code, _, err = cli(*command)
        assert code == 1
        assert err.startswith(f"{path}:1:1: error: refused: its pickle asks for more than tensors (")
        assert "posix.system" in err and "weights_only set to False" not in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "m.onnx").exists()


def test_the_corpus_pickle_would_run_code_if_loaded_unsafely(tmp_path):
    # the proof that evil_pickle.pt is a real attack: unpickled without weights_only, it runs
    code = f"import torch; torch.load({str(CORPUS / 'evil_pickle.pt')!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, timeout=300)
    assert (tmp_path / "PWNED").exists()


def test_the_pre_zip_format_is_refused_before_any_unpickling(tiny_module, tiny_spec, tmp_path, cli):
    path = tmp_path / "old.pt"
    torch.save(tiny_module().state_dict(), path, _use_new_zipfile_serialization=False)
    code, _, err = cli("run", tiny_spec, "--weights", path)
    assert code == 1 and err.startswith(f"{path}:1:1: error: not a PyTorch checkpoint in the zip format")


@pytest.mark.parametrize("value,message", [
    (3, "'x' is of type int, not a tensor"),
    ("text", "'x' is of type str, not a tensor"),
    (lambda: torch.zeros(2, dtype=torch.complex64), "'x' is torch.complex64, which graphnet does not read"),
    (lambda: torch.zeros(2).to_sparse(), "'x' is a torch.sparse_coo tensor, not a dense one"),
])
def test_a_state_dict_entry_that_is_no_dense_tensor(tiny_module, value, message, tiny_spec, tmp_path, cli):
    path = tmp_path / "w.pt"
    torch.save({**tiny_module().state_dict(), "x": value() if callable(value) else value}, path)
    code, _, err = cli("run", tiny_spec, "--weights", path)
    assert code == 1
    assert err.strip() == f"{path}:1:1: error: not a state_dict of tensors: {message}"


def test_a_checkpoint_that_is_no_dict(tmp_path, cli, tiny_spec):
    path = tmp_path / "w.pt"
    torch.save([torch.zeros(2)], path)
    code, _, err = cli("run", tiny_spec, "--weights", path)
    assert code == 1 and "the checkpoint holds a list, not a state_dict" in err


def test_a_lying_storage_is_refused_without_allocating(tmp_path, cli, tiny_spec):
    # a tensor of shape [2**30] over a storage of 3 floats: the mapped storage cannot grow
    path = tmp_path / "w.pt"
    torch.save({"fc2.bias": torch.zeros(3)}, path)
    import zipfile
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    pkl = next(k for k in members if k.endswith("data.pkl"))
    assert b"K\x03\x85" in members[pkl]                                      # the size tuple (3,)
    members[pkl] = members[pkl].replace(b"K\x03\x85", b"J\x00\x00\x00\x40\x85", 1)
    with zipfile.ZipFile(path, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    code, _, err = cli("weights", tiny_spec, path)
    assert code == 1 and err.startswith(f"{path}:1:1: error: not a readable PyTorch checkpoint: ")
