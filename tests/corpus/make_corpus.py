"""Writes the corpus files that are not plain text: weight and input files, and the YAML files whose
bytes are the point (empty, not UTF-8, a control character). Run it from anywhere:

    python tests/corpus/make_corpus.py

Everything is built byte by byte (NumPy's .npy format and zip archives written here with fixed
dates), so the output does not depend on the NumPy or Python version or on the clock, and
tests/test_corpus.py checks that the committed files are exactly what this script writes. What each
file holds is said next to it below; what graphnet must answer is in the EXPECTED.txt of its folder.
"""

from __future__ import annotations

import io
import struct
import sys
import warnings
import zipfile
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


def weights() -> dict[str, bytes]:
    good = npz(GOOD)
    # flip one byte inside the data of fc.weight: the zip's CRC no longer matches
    at = good.index(W.tobytes()) + 5
    crc = good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1:]
    return {
        "good.npz": good,                                            # right in every way
        "wrong_dtype.npz": npz({**GOOD, "fc.bias": npy(BIAS.astype("<f8"))}),
        "wrong_shape.npz": npz({**GOOD, "fc.weight": npy(W.T)}),     # [4, 3], transposed
        "missing_key.npz": npz({k: v for k, v in GOOD.items() if k != "scale"}),
        "extra_key.npz": npz({**GOOD, "fc.weights": npy(W)}),        # a misspelled extra copy
        "nan.npz": npz({**GOOD, "scale": npy(np.array([1.0, np.nan, 0.5], "<f4"))}),
        "inf.npz": npz({**GOOD, "fc.weight": npy(np.where(W > 0.5, -np.inf, W).astype("<f4"))}),
        "truncated.npz": good[: len(good) // 2],                     # cut off mid-archive
        "corrupt_crc.npz": crc,                                      # one data byte flipped
        "corrupt_header.npz": npz({**GOOD, "fc.bias": b"\x93NUMPX" + npy(BIAS)[6:]}),   # bad magic
        "lying_shape.npz": npz({**GOOD, "scale": npy(SCALE, shape=(2**40,))}),  # 12 bytes claiming 4 TiB
        "pickled_object.npz": npz({**GOOD, "scale": npy(descr="|O", shape=(1,), payload=EVIL_PICKLE)}),
        "zip_of_text.npz": zip_of({"README.txt": b"weights are coming soon\n"}),  # a zip, no arrays
        "duplicate_member.npz": zip_of([*((f"{k}.npy", v) for k, v in GOOD.items()),   # scale.npy twice
                                        ("scale.npy", npy(SCALE * 0))]),
        "encrypted.npz": patched_zip(good, flags=0x1),                # members marked as encrypted
        "unknown_compression.npz": patched_zip(good, method=99),     # AES, which zipfile cannot read
        "array.npy": npy(W),                                         # a single .npy, not an archive
        "weights.txt": b"fc.weight: [[0.0, 0.1, 0.2, 0.3], ...]\n",  # a text file
        "empty.npz": b"",
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
