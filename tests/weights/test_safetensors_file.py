""".safetensors: what graphnet writes the safetensors library reads and the other way round; bfloat16
widened as torch and ml_dtypes widen it; a header checked against the file before anything is
read; and no torch needed at any point."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from graphnet.errors import SpecError
from graphnet.weights import load_weights, save_weights
from graphnet.weights.safetensors_file import MAX_RANK, read_safetensors

ROOT = Path(__file__).resolve().parents[2]
ARRAYS = {"f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7, "f64": np.array([np.pi, -1e300]),
          "f16": np.array([1.5, -2.25, 65504], np.float16), "i64": np.array([-(2 ** 62), 5]),
          "i32": np.arange(3, dtype=np.int32), "u8": np.array([0, 255], np.uint8), "i8": np.array([-128, 7], np.int8),
          "bool": np.array([True, False, True]), "scalar": np.array(2.5, np.float32),
          "empty": np.zeros((0, 4), np.float32)}


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k])


def test_what_graphnet_writes_the_safetensors_library_reads(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, {**ARRAYS, "strided": np.arange(12.0).reshape(3, 4)[:, ::2]})
    _same(load_file(path), {**ARRAYS, "strided": np.arange(12.0).reshape(3, 4)[:, ::2].copy()})


def test_what_the_safetensors_library_writes_graphnet_reads(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(ARRAYS, path, metadata={"format": "np"})
    weights = load_weights(path)
    assert {k: (i.dtype, i.shape) for k, i in weights.infos.items()} == {k: (a.dtype.name, a.shape) for k, a in ARRAYS.items()}
    _same(weights.read(), ARRAYS)


def _bf16_file(path: Path, bits: np.ndarray) -> None:
    """A file of one BF16 tensor, laid out by hand (NumPy has no bfloat16 to hand the library)."""
    header = json.dumps({"w": {"dtype": "BF16", "shape": list(bits.shape), "data_offsets": [0, bits.nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + bits.astype("<u2").tobytes())


def test_bfloat16_is_widened_exactly_as_ml_dtypes_does(tmp_path):
    import ml_dtypes   # onnx depends on it
    # every 16-bit pattern: normals, subnormals, zeros, infinities and NaNs of both signs
    bits = np.arange(1 << 16, dtype=np.uint16).reshape(256, 256)
    _bf16_file(tmp_path / "w.safetensors", bits)
    got = load_weights(tmp_path / "w.safetensors")["w"]
    want = bits.view(ml_dtypes.bfloat16).astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_bfloat16_is_widened_exactly_as_torch_does(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as torch_save_file
    t = (torch.randn(64, 33) * 1e3).to(torch.bfloat16)
    torch_save_file({"w": t}, tmp_path / "w.safetensors")
    np.testing.assert_array_equal(load_weights(tmp_path / "w.safetensors")["w"], t.float().numpy())


def test_safetensors_need_no_torch(tmp_path):
    # torch made unimportable before graphnet is imported: a .safetensors file (bfloat16 too) still
    # loads and runs, and a .pt says how to get torch
    spec = tmp_path / "net.yaml"
    spec.write_text((ROOT / "tests" / "corpus" / "weights" / "net.yaml").read_text())
    _bf16_file(tmp_path / "scale.safetensors", np.array([0x3F80, 0x4000, 0x3F00], np.uint16))    # 1, 2, 0.5
    code = f"""
import sys
sys.modules["torch"] = None
import numpy as np
from graphnet.cli import main
from graphnet.weights import load_weights, save_weights
w = {{"fc.weight": np.eye(3, 4, dtype=np.float32), "fc.bias": np.zeros(3, np.float32),
     "scale": load_weights("scale.safetensors")["w"]}}
save_weights("w.safetensors", w)
np.savez("x.npz", x=np.ones((1, 4), np.float32))
assert main(["run", "net.yaml", "--weights", "w.safetensors", "--inputs", "x.npz", "-o", "y.npz"]) == 0
print(np.load("y.npz")["y"].tolist())
open("w.pt", "wb").write(open("{ROOT / 'tests' / 'corpus' / 'weights' / 'good.pt'}", "rb").read())
assert main(["run", "net.yaml", "--weights", "w.pt"]) == 1
assert sys.modules["torch"] is None
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[[1.0, 2.0, 0.5]]"
    assert f"w.pt:1:1: error: reading a PyTorch checkpoint needs PyTorch, which is not installed: pip install 'graphnet[torch]'" in done.stderr


def _file(tmp_path: Path, header: bytes, data: bytes = b"", length: int | None = None) -> Path:
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)
    return path


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)) -> dict:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize("header,data,message", [
    (b'{"a": ' + json.dumps(_entry()).encode() + b', "a": ' + json.dumps(_entry()).encode() + b"}", bytes(8),
     "its header is not JSON (the key 'a' is there twice)"),
    (b"[1, 2]", b"", "its header is not a JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, b"", "its header is not JSON"),
    (b"\xff{}", b"", "its header is not JSON"),
    (json.dumps({"a": _entry(offsets=(0, 8)), "b": _entry(offsets=(16, 24))}).encode(), bytes(24),
     "no tensor holds bytes [8, 16) of the data"),
    (json.dumps({"a": _entry()}).encode(), bytes(12), "no tensor holds bytes [8, 12) of the data"),
    (json.dumps({"a": _entry(shape=(2, True))}).encode(), bytes(8), "has shape [2, true], not a list"),
    (json.dumps({"a": _entry(shape=(-2,))}).encode(), bytes(8), "has shape [-2], not a list"),
    (json.dumps({"a": _entry(shape=(1,) * (MAX_RANK + 1), offsets=(0, 4))}).encode(), bytes(4),
     f"not a list of at most {MAX_RANK} whole numbers"),
    (json.dumps({"a": _entry(offsets=(8, 0))}).encode(), bytes(8), "has data_offsets [8, 0], not [begin, end]"),
    (json.dumps({"a": _entry(offsets=(0, 8.0))}).encode(), bytes(8), "has data_offsets [0, 8.0], not [begin, end]"),
    (json.dumps({"a": _entry(), "__metadata__": {"n": 3}}).encode(), bytes(8), "'__metadata__' is not a map of strings"),
    (json.dumps({"a": {"dtype": "F32", "shape": [2]}}).encode(), bytes(8), "'a' is not a tensor"),
    (json.dumps({"a": _entry(dtype="C64")}).encode(), bytes(8), "'a' has dtype \"C64\", which graphnet does not read"),
])
def test_a_header_is_checked_before_anything_is_read(header, data, message, tmp_path):
    path = _file(tmp_path, header, data)
    with pytest.raises(SpecError) as e:
        read_safetensors(path)
    assert e.value.render().startswith(f"{path}:1:1: error: not a readable .safetensors file: ")
    assert message in e.value.render()


def test_metadata_and_zero_sized_tensors_at_one_offset_are_fine(tmp_path):
    header = json.dumps({"__metadata__": {"format": "pt"}, "e": _entry(shape=(0, 3), offsets=(0, 0)),
                         "a": _entry(), "z": _entry(shape=(0,), offsets=(8, 8))}).encode()
    got = read_safetensors(_file(tmp_path, header, np.array([1, 2], "<f4").tobytes())).read()
    assert got["a"].tolist() == [1.0, 2.0] and got["e"].shape == (0, 3) and got["z"].shape == (0,)
