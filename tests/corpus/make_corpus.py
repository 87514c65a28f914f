"""Writes the corpus files that are not plain text: weight and input files, and the YAML files whose
bytes are the point (empty, not UTF-8, a control character). Run it from anywhere:

    python tests/corpus/make_corpus.py

Everything is built byte by byte (NumPy's .npy format, zip archives with fixed dates, safetensors
headers, PyTorch's pickles, all written here), so the output does not depend on the NumPy, PyTorch
or Python version or on the clock (the zip bomb's deflate stream comes from zlib, whose output for
a given level has not changed in its 1.2 and 1.3 releases), and
tests/test_corpus.py checks that the committed files are exactly what this script writes. What each
file holds is said next to it below; what graphnet must answer is in the EXPECTED.txt of its folder.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


# -- the .npy and .npz formats, by hand ------------------------------------------------------------

def npy(array: np.ndarray | None = None, *, descr: str | None = None, shape: tuple | None = None,
        payload: bytes | None = None) -> bytes:
    """A version 1.0 .npy file: magic, header dict padded to 64 bytes, then the raw data. `descr`,
    `shape` and `payload` override what the header says and what follows it (to make lying files)."""
    if array is not None:
        array = np.asarray(array)
        descr = descr or array.dtype.str
        shape = array.shape if shape is None else shape
        payload = array.tobytes() if payload is None else payload
    header = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    total = len(header) + 1 + 10
    header += " " * ((64 - total % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin-1") + payload


def zip_of(members: dict[str, bytes] | list[tuple[str, bytes]]) -> bytes:
    """A zip archive (what numpy.savez writes) with fixed dates and attributes, uncompressed. As a
    list, `members` may name a member twice, which zipfile allows with a warning."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name, data in (members.items() if isinstance(members, dict) else members):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return buf.getvalue()


def patched_zip(data: bytes, *, flags: int = 0, method: int | None = None) -> bytes:
    """`data`, a zip, with general-purpose `flags` or'ed into and the compression `method` written
    over every local and central header (bit 0 of the flags: encrypted; method 99: AES)."""
    out = bytearray(data)
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = out.find(signature)
        while at >= 0:
            old = struct.unpack_from("<H", out, at + flag_at)[0]
            struct.pack_into("<H", out, at + flag_at, old | flags)
            if method is not None:
                struct.pack_into("<H", out, at + method_at, method)
            at = out.find(signature, at + 4)
    return bytes(out)


def npz(arrays: dict[str, bytes]) -> bytes:
    return zip_of({f"{name}.npy": data for name, data in arrays.items()})


# -- weights: for weights/net.yaml, params fc.weight f32[3, 4], fc.bias f32[3], scale f32[3] --------

W = np.arange(12, dtype="<f4").reshape(3, 4) / 10
BIAS = np.array([0.1, -0.2, 0.3], "<f4")
SCALE = np.array([1.0, 2.0, 0.5], "<f4")
GOOD = {"fc.weight": npy(W), "fc.bias": npy(BIAS), "scale": npy(SCALE)}

# What numpy writes for an object array is a pickle. This one, if it were ever unpickled, would
# call builtins.open("PWNED", "w") and so leave an empty file PWNED in the working folder:
# PROTO 2, GLOBAL builtins.open, BINUNICODE "PWNED", BINUNICODE "w", TUPLE2, REDUCE, STOP.
EVIL_PICKLE = b"\x80\x02cbuiltins\nopen\nX\x05\x00\x00\x00PWNEDX\x01\x00\x00\x00w\x86R."


# -- the .safetensors format, by hand: header length, JSON header, the tensors' bytes ---------------

def safetensors(tensors: dict[str, np.ndarray], *, header: dict | None = None, length: int | None = None,
                data: bytes | None = None) -> bytes:
    """A .safetensors file of `tensors` in order, as the safetensors library lays one out (F32 and
    the like, the header padded with spaces to 8 bytes). `header` entries are merged over the
    computed ones, `length` replaces the header's length and `data` the tensors' bytes (to make
    lying files)."""
    names = {"float32": "F32", "int64": "I64"}
    entries, raw = {}, b""
    for name, a in tensors.items():
        a = np.asarray(a, order="C")
        entries[name] = {"dtype": names[a.dtype.name], "shape": list(a.shape), "data_offsets": [len(raw), len(raw) + a.nbytes]}
        raw += a.astype(a.dtype.newbyteorder("<")).tobytes()
    text = json.dumps({**entries, **(header or {})}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text) if length is None else length) + text + (raw if data is None else data)


# -- PyTorch's zip checkpoint format, by hand: archive/data.pkl, a pickle whose tensors are -------
# torch._utils._rebuild_tensor_v2 of storages kept as archive/data/N, plus archive/version

def _p_str(text: str) -> bytes:                 # BINUNICODE
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _p_int(n: int) -> bytes:                    # BININT
    return b"J" + struct.pack("<i", n)


def _p_tuple(items: list[bytes]) -> bytes:      # MARK ... TUPLE
    return b"(" + b"".join(items) + b"t"


def _p_tensor(key: str, a: np.ndarray) -> bytes:
    """What torch.save pickles for a contiguous float32 tensor whose storage is archive/data/KEY."""
    strides = [int(s) // a.itemsize for s in a.strides]
    storage = _p_tuple([_p_str("storage"), b"ctorch\nFloatStorage\n", _p_str(key), _p_str("cpu"), _p_int(a.size)]) + b"Q"
    args = [storage, _p_int(0), _p_tuple([_p_int(d) for d in a.shape]), _p_tuple([_p_int(s) for s in strides]),
            b"\x89", b"ccollections\nOrderedDict\n)R"]
    return b"ctorch._utils\n_rebuild_tensor_v2\n" + _p_tuple(args) + b"R"


# Unpickled, this calls os.system("touch PWNED"): GLOBAL posix.system, the command, TUPLE1, REDUCE
EVIL_CALL = b"cposix\nsystem\n" + _p_str("touch PWNED") + b"\x85R"


def torch_checkpoint(tensors: dict[str, np.ndarray], extra: dict[str, bytes] | None = None) -> bytes:
    """A checkpoint as torch.save writes one: a dict of the float32 `tensors`, and entries whose
    pickled values are given as bytes in `extra`."""
    values = [(name, _p_tensor(str(i), a)) for i, (name, a) in enumerate(tensors.items())] + list((extra or {}).items())
    pkl = b"\x80\x02}(" + b"".join(_p_str(k) + v for k, v in values) + b"u."
    storages = [(f"archive/data/{i}", np.asarray(a, "<f4", order="C").tobytes()) for i, a in enumerate(tensors.values())]
    return zip_of([("archive/data.pkl", pkl), ("archive/byteorder", b"little"), *storages, ("archive/version", b"3\n")])


def deflated_zeros_npy(name: str, count: int) -> bytes:
    """An .npz of one member, float32[count] of zeros, deflated: what a zip bomb is. A deflate
    stream fully flushed after each chunk compresses every later chunk of zeros to the same bytes,
    so the member is written without compressing all of it."""
    head = npy(descr="<f4", shape=(count,), payload=b"")
    chunk, n = 1 << 22, count * 4 >> 22
    assert count * 4 == n * chunk
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = z.compress(head) + z.flush(zlib.Z_FULL_FLUSH)
    zeros = z.compress(bytes(chunk)) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(bytes(chunk)) + z.flush(zlib.Z_FULL_FLUSH)
    assert zeros == again
    stream = first + zeros * n + z.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    block = bytes(chunk)
    for _ in range(n):
        crc = zlib.crc32(block, crc)
    size, fname = len(head) + n * chunk, name.encode()
    # local header, data, central directory, end of central directory (zip's layout, no zip64)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(stream), size, len(fname), 0) + fname
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x314, 20, 0, 8, 0, 0x21, crc, len(stream), size,
                          len(fname), 0, 0, 0, 0, 0o644 << 16, 0) + fname
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    return local + stream + central + end


def weights() -> dict[str, bytes]:
    good = npz(GOOD)
    arrays = {"fc.weight": W, "fc.bias": BIAS, "scale": SCALE}
    good_st = safetensors(arrays)
    # flip one byte inside the data of fc.weight: the zip's CRC no longer matches
    at = good.index(W.tobytes()) + 5
    crc = good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1:]
    return {
        "good.npz": good,                                            # right in every way
        # float64 values that float32 would round: casting them is refused (float32 ones would load)
        "wrong_dtype.npz": npz({**GOOD, "fc.bias": npy(np.array([0.1, -0.2, 0.3], "<f8"))}),
        "wrong_shape.npz": npz({**GOOD, "fc.weight": npy(W.T)}),     # [4, 3], transposed
        "missing_key.npz": npz({k: v for k, v in GOOD.items() if k != "scale"}),
        "extra_key.npz": npz({**GOOD, "fc.weights": npy(W)}),        # a misspelled extra copy
        "nan.npz": npz({**GOOD, "scale": npy(np.array([1.0, np.nan, 0.5], "<f4"))}),
        "inf.npz": npz({**GOOD, "fc.weight": npy(np.where(W > 0.5, -np.inf, W).astype("<f4"))}),
        "truncated.npz": good[: len(good) // 2],                     # cut off mid-archive
        "corrupt_crc.npz": crc,                                      # one data byte flipped
        "corrupt_header.npz": npz({**GOOD, "fc.bias": b"\x93NUMPX" + npy(BIAS)[6:]}),   # bad magic
        "lying_shape.npz": npz({**GOOD, "scale": npy(SCALE, shape=(2**40,))}),  # 12 bytes claiming 4 TiB
        "code_header.npz": npz({**GOOD, "scale": b"\x93NUMPY\x01\x00" + struct.pack("<H", 20)   # a call, not a dict
                                + b"__import__('os')   \n" + SCALE.tobytes()}),
        "pickled_object.npz": npz({**GOOD, "scale": npy(descr="|O", shape=(1,), payload=EVIL_PICKLE)}),
        "zip_of_text.npz": zip_of({"README.txt": b"weights are coming soon\n"}),  # a zip, no arrays
        "duplicate_member.npz": zip_of([*((f"{k}.npy", v) for k, v in GOOD.items()),   # scale.npy twice
                                        ("scale.npy", npy(SCALE * 0))]),
        "encrypted.npz": patched_zip(good, flags=0x1),                # members marked as encrypted
        "unknown_compression.npz": patched_zip(good, method=99),     # AES, which zipfile cannot read
        "array.npy": npy(W),                                         # a single .npy, not an archive
        "weights.txt": b"fc.weight: [[0.0, 0.1, 0.2, 0.3], ...]\n",  # a text file
        "empty.npz": b"",
        # a member that honestly claims float32[67108864] (256 MiB of zeros) in 255 KiB
        "zip_bomb.npz": deflated_zeros_npy("junk.npy", 1 << 26),

        "good.safetensors": good_st,                                 # good.npz, as .safetensors
        "huge_header.safetensors": safetensors(arrays, length=1 << 62),     # a header of 4 EiB
        "truncated.safetensors": good_st[:-20],                      # the last 20 bytes cut off
        "header_past_end.safetensors": good_st[:60],                 # cut inside the header
        "overlapping.safetensors": safetensors(arrays, header={"fc.bias": {"dtype": "F32", "shape": [3],
                                                                           "data_offsets": [40, 52]}}),
        "out_of_range.safetensors": safetensors(arrays, header={"scale": {"dtype": "F32", "shape": [3],
                                                                          "data_offsets": [72, 84]}}),
        # a tensor of 4 TiB whose bytes would lie past the end of the file
        "huge_tensor.safetensors": safetensors(arrays, header={"scale": {"dtype": "F32", "shape": [1 << 40],
                                                                         "data_offsets": [60, 60 + (4 << 40)]}}),
        "shape_past_offsets.safetensors": safetensors(arrays, header={"scale": {"dtype": "F32", "shape": [1 << 40],
                                                                                "data_offsets": [60, 72]}}),
        "non_tensor.safetensors": safetensors(arrays, header={"epoch": 3}),
        "unknown_dtype.safetensors": safetensors(arrays, header={"scale": {"dtype": "F8_E4M3", "shape": [3],
                                                                           "data_offsets": [60, 72]}}),
        "not_json.safetensors": struct.pack("<Q", 16) + b'{"fc.weight": [1' + W.tobytes(),
        # another network's checkpoint: two names of its own, a scale of another size, a head
        # net.yaml lacks and batch_norm's step count (ignored by rule)
        "another_network.safetensors": safetensors({"encoder.weight": W, "encoder.bias": BIAS, "scale": np.ones(4, "<f4"),
                                                    "head.weight": W[:2], "bn.num_batches_tracked": np.array(100, "<i8")}),
        # the good tensors inside a bigger model: every name starts with 'model.'
        "prefixed.safetensors": safetensors({f"model.{k}": v for k, v in arrays.items()}),
        # a shard index whose shard lies outside its folder
        "escape.safetensors.index.json": json.dumps({"metadata": {}, "weight_map": {
            "fc.weight": "../inputs/good.npz", "fc.bias": "../inputs/good.npz", "scale": "../inputs/good.npz"}}).encode(),

        "good.pt": torch_checkpoint(arrays),                         # good.npz, as torch.save writes it
        "evil_pickle.pt": torch_checkpoint({"fc.weight": W, "fc.bias": BIAS}, {"scale": EVIL_CALL}),
        "bare_pickle.pt": b"\x80\x02" + EVIL_CALL + b".",             # the pre-1.6 format: a bare pickle
        "non_tensor.pt": torch_checkpoint(arrays, {"epoch": _p_int(3)}),
    }


# -- inputs: for inputs/net.yaml, x f32[B, T, 8] and mask i64[B, T] --------------------------------

def inputs() -> dict[str, bytes]:
    x = np.zeros((2, 3, 8), "<f4")
    mask = np.ones((2, 3), "<i8")
    return {
        "good.npz": npz({"x": npy(x), "mask": npy(mask)}),
        "wrong_dtype.npz": npz({"x": npy(x.astype("<f8")), "mask": npy(mask)}),
        "wrong_rank.npz": npz({"x": npy(x.reshape(2, 3, 2, 4)), "mask": npy(mask)}),
        "fixed_dim.npz": npz({"x": npy(np.zeros((2, 3, 7), "<f4")), "mask": npy(mask)}),  # 7, not 8
        "symbol_bound_twice.npz": npz({"x": npy(x), "mask": npy(np.ones((2, 4), "<i8"))}),  # T = 3, then 4
        "zero_dim.npz": npz({"x": npy(np.zeros((0, 3, 8), "<f4")), "mask": npy(np.ones((0, 3), "<i8"))}),
        "missing_input.npz": npz({"x": npy(x)}),
        "extra_input.npz": npz({"x": npy(x), "mask": npy(mask), "masks": npy(mask)}),
        "int_mask_wrong_width.npz": npz({"x": npy(x), "mask": npy(mask.astype("<i4"))}),
        "pickled_object.npz": npz({"x": npy(x), "mask": npy(descr="|O", shape=(1,), payload=EVIL_PICKLE)}),
        "scalar.npz": npz({"x": npy(np.float32(1.0).reshape(())), "mask": npy(mask)}),
    }


# -- YAML files that must be exact bytes ------------------------------------------------------------

SPEC_BODY = b"inputs:\n  x: [2, 4]\nnodes:\n  - {name: r, op: relu}\noutputs: {y: r}\n"


def yaml_files() -> dict[str, bytes]:
    return {
        "empty.yaml": b"",
        # caf\xe9: 'e' with an acute accent in Latin-1, not UTF-8
        "not_utf8_latin1.yaml": b"# expect: 3:10: file is not valid UTF-8\ngraphnet: 1\nname: caf\xe9_net\n" + SPEC_BODY,
        "not_utf8_truncated_sequence.yaml":
            b"# expect: 5:11: file is not valid UTF-8\n"
            b"# A UTF-8 sequence cut short: the lead byte of a 3-byte character followed by one byte.\n"
            b"graphnet: 1\nname: t\ndoc: \"abc \xe2\x82\"\n" + SPEC_BODY,
        # a whole spec in UTF-16 with its byte order mark: not UTF-8 from the first byte
        "utf16.yaml": b"\xff\xfe" + (b"graphnet: 1\nname: t\n" + SPEC_BODY).decode().encode("utf-16-le"),
        # BEL (0x07) at the end of the name
        "control_character.yaml": b"# expect: 3:8: unacceptable character #x0007\ngraphnet: 1\nname: t\x07\n" + SPEC_BODY,
    }


def files() -> dict[str, bytes]:
    """Every generated file, by its path relative to this folder."""
    out = {}
    for folder, made in (("weights", weights()), ("inputs", inputs()), ("yaml", yaml_files())):
        out.update({f"{folder}/{name}": data for name, data in made.items()})
    return out


def main() -> int:
    for rel, data in files().items():
        (HERE / rel).write_bytes(data)
    print(f"wrote {len(files())} files under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
