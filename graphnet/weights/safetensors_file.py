""".safetensors files: an 8-byte little-endian header length, a JSON header giving each tensor's
dtype, shape and byte range, then the tensors' bytes. Read with the safetensors package's NumPy API,
which needs no torch and runs no code; the header is checked here first, against the file's size,
so that nothing is allocated for a file that lies about itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import Location, SpecError
from ..files import atomic_write
from .tensors import TensorInfo, WeightFile, regular_file

MAX_HEADER_BYTES = 100_000_000      # the safetensors library's own bound on the JSON header
MAX_RANK = 64                       # NumPy's

# The file's dtype names and NumPy's. F8 and the other exotic ones are refused by name.
DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
          "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool"}


def read_safetensors(path: str | Path) -> WeightFile:
    """The tensors of a .safetensors file, its header checked and nothing else read yet."""
    path = Path(path)
    where = Location(str(path))
    size = regular_file(path).stat().st_size
    with path.open("rb") as f:
        infos, spans, start = _header(f, size, where)

    def read(names: list[str]) -> dict[str, np.ndarray]:
        from safetensors import SafetensorError, safe_open
        out = {}
        try:
            with safe_open(str(path), framework="np") as tensors:
                for name in names:
                    if infos[name].dtype != "bfloat16":
                        out[name] = tensors.get_tensor(name)
            with regular_file(path).open("rb") as f:
                for name in names:
                    if infos[name].dtype == "bfloat16":
                        f.seek(start + spans[name][0])
                        out[name] = bfloat16_to_float32(f.read(spans[name][1] - spans[name][0]), infos[name].shape)
        except (SafetensorError, OSError, ValueError, TypeError) as e:
            raise SpecError.at(where, f"not a readable .safetensors file: {e}") from None
        except MemoryError:
            raise SpecError.at(where, "not a readable .safetensors file: its tensors do not fit in memory") from None
        return {name: out[name] for name in names}

    return WeightFile(str(path), infos, read)


def bfloat16_to_float32(raw: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """bfloat16 is the top half of a float32, so widening it is a shift, exact for every value."""
    bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
    return bits.view(np.float32).reshape(shape)


def _header(f, size: int, where: Location) -> tuple[dict[str, TensorInfo], dict[str, tuple[int, int]], int]:
    """The tensors' infos and byte ranges (within the data, which starts at the third value), after
    checking the header as the format requires: bounded, JSON, every entry a tensor of a known
    dtype whose shape fits its byte range, the ranges in the file, neither overlapping nor leaving
    gaps."""
    def bad(message: str) -> SpecError:
        return SpecError.at(where, f"not a readable .safetensors file: {message}")

    head = f.read(8)
    if len(head) < 8:
        raise bad(f"it has {len(head)} bytes, fewer than the 8 of its header's length")
    n = int.from_bytes(head, "little")
    if n > MAX_HEADER_BYTES:
        raise bad(f"its header claims {n} bytes, over the bound of {MAX_HEADER_BYTES}")
    if n > size - 8:
        raise bad(f"its header claims {n} bytes but only {size - 8} follow (a truncated file?)")
    try:
        header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad(f"its header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    infos, spans = {}, {}
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise bad("its '__metadata__' is not a map of strings to strings")
            continue
        info, span = _entry(entry)
        if isinstance(info, str):
            raise bad(f"'{name}' {info}")
        infos[name], spans[name] = info, span
    data = size - 8 - n
    end = 0
    for name, (b, e) in sorted(spans.items(), key=lambda kv: kv[1]):
        if e > data:
            raise bad(f"'{name}' is at bytes [{b}, {e}) of the data, which has {data} bytes (a truncated file?)")
        if b < end:
            raise bad(f"'{name}' at bytes [{b}, {e}) overlaps the tensor before it, which ends at {end}")
        if b > end:
            raise bad(f"no tensor holds bytes [{end}, {b}) of the data")
        end = e
    if end != data:
        raise bad(f"no tensor holds bytes [{end}, {data}) of the data")
    return infos, spans, 8 + n


def _entry(entry) -> tuple[TensorInfo | str, tuple[int, int] | None]:
    """A header entry's info and byte range, or what is wrong with it."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        return "is not a tensor (an entry with dtype, shape and data_offsets)", None
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPES:
        return f"has dtype {json.dumps(dtype)}, which graphnet does not read (it reads {', '.join(DTYPES)})", None
    if not (isinstance(shape, list) and len(shape) <= MAX_RANK and all(_natural(d) for d in shape)):
        return f"has shape {json.dumps(shape)[:80]}, not a list of at most {MAX_RANK} whole numbers", None
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_natural, offsets)) and offsets[0] <= offsets[1]):
        return f"has data_offsets {json.dumps(offsets)[:80]}, not [begin, end] with 0 <= begin <= end", None
    info = TensorInfo(DTYPES[dtype], tuple(shape))
    if offsets[1] - offsets[0] != info.nbytes:
        return (f"is {info} ({info.nbytes} bytes) but its data_offsets {offsets} hold "
                f"{offsets[1] - offsets[0]} bytes"), None
    return info, (offsets[0], offsets[1])


def _natural(x) -> bool:
    return type(x) is int and x >= 0


def _unique_keys(pairs: list) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key '{key}' is there twice")
        out[key] = value
    return out


def save_safetensors(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save
    data = save({name: np.asarray(a, order="C") for name, a in arrays.items()})   # keeps 0-d arrays 0-d
    with atomic_write(path) as f:
        f.write(data)
