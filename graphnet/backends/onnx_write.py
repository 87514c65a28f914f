"""Writing a lowered model to disk with its weights serialized once, straight from their arrays.

A ModelProto holding the weights would copy them (numpy_helper.from_array), and serializing it
would copy them again, twice with the checker's own serialization: about four times the weights'
bytes at the peak. Here the model's structure is checked and serialized without them, and each
initializer's protobuf record (a small header, then its raw bytes from the array's own memory) is
written after the graph's other fields, inside the one `graph` field of the model, whose length
is worked out first. Protobuf allows a message's fields in any order, so the file is the same
message onnx.save would write, less nothing (tests/backends/test_onnx_export.py reads it back).

The check runs before anything is written: on the structure, with the large initializers as
external data in a sparse placeholder file (onnx's checker needs a file to point at, not its
bytes), so a model the checker refuses leaves no file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..files import atomic_pair, atomic_write

EMBED_BELOW = 1024        # initializers smaller than this are ordinary TensorProtos in the structure
CHUNK = 64 << 20          # bytes per write, between progress reports


def contiguous(a: np.ndarray) -> np.ndarray:
    """The array C-contiguous, 0-d kept 0-d (np.ascontiguousarray makes it 1-d)."""
    return np.asarray(a, order="C")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, length: int) -> bytes:
    """The key and length of a length-delimited field."""
    return _varint(number << 3 | 2) + _varint(length)


MODEL_GRAPH, GRAPH_INITIALIZER, TENSOR_RAW_DATA = 7, 5, 9


def _raw(array: np.ndarray) -> memoryview:
    a = contiguous(array)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return memoryview(a.reshape(-1)).cast("B")


def _header(name: str, array: np.ndarray) -> onnx.TensorProto:
    return onnx.TensorProto(name=name, dims=array.shape, data_type=onnx.helper.np_dtype_to_tensor_dtype(array.dtype))


def _external(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> onnx.TensorProto:
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)
    return tensor


def _structure(model: onnx.ModelProto, arrays: dict[str, np.ndarray], location: str) -> onnx.ModelProto:
    """The model with small initializers embedded and large ones as external data in `location`,
    laid out one after another from offset 0."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    offset = 0
    for name, a in arrays.items():
        if a.nbytes < EMBED_BELOW:
            out.graph.initializer.append(numpy_helper.from_array(contiguous(a), name))
        else:
            out.graph.initializer.append(_external(_header(name, a), location, offset, a.nbytes))
            offset += a.nbytes
    return out


def _check(model: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> None:
    with tempfile.TemporaryDirectory(prefix="graphnet-check-") as folder:
        with open(os.path.join(folder, "weights"), "wb") as f:
            f.truncate(sum(a.nbytes for a in arrays.values() if a.nbytes >= EMBED_BELOW))   # sparse: no bytes
        skeleton = os.path.join(folder, "model.onnx")
        with open(skeleton, "wb") as f:
            f.write(_structure(model, arrays, "weights").SerializeToString())
        onnx.checker.check_model(skeleton, full_check=True)


def _write_raw(f, array: np.ndarray, done: int, total: int, progress) -> int:
    data = _raw(array)
    for start in range(0, len(data), CHUNK):
        f.write(data[start:start + CHUNK])
        done += min(CHUNK, len(data) - start)
        if progress is not None:
            progress(done, total)
    return done


def _write_embedded(f, model: onnx.ModelProto, arrays: dict[str, np.ndarray], progress) -> onnx.ModelProto:
    top = onnx.ModelProto()
    top.CopyFrom(model)
    top.ClearField("graph")
    graph = model.graph.SerializeToString()
    records = []
    for name, a in arrays.items():
        if a.nbytes < EMBED_BELOW:
            body = numpy_helper.from_array(contiguous(a), name).SerializeToString()
            records.append((_field(GRAPH_INITIALIZER, len(body)) + body, None))
        else:
            header = _header(name, a).SerializeToString() + _field(TENSOR_RAW_DATA, a.nbytes)
            records.append((_field(GRAPH_INITIALIZER, len(header) + a.nbytes) + header, a))
    length = len(graph) + sum(len(head) + (a.nbytes if a is not None else 0) for head, a in records)
    f.write(top.SerializeToString())
    f.write(_field(MODEL_GRAPH, length))
    f.write(graph)
    done, total = 0, sum(a.nbytes for _, a in records if a is not None)
    for head, a in records:
        f.write(head)
        if a is not None:
            done = _write_raw(f, a, done, total, progress)
    returned = onnx.ModelProto()
    returned.CopyFrom(model)
    returned.graph.initializer.extend(
        numpy_helper.from_array(contiguous(a), k) if a.nbytes < EMBED_BELOW else _header(k, a)
        for k, a in arrays.items())
    return returned


def write(model: onnx.ModelProto, arrays: dict[str, np.ndarray], path: Path, external_data: bool,
          progress=None) -> onnx.ModelProto:
    """Write the model (no initializers) with `arrays` as its initializers, after the full check;
    with `external_data`, those of 1 KiB and more to '<name>.data' beside it (files.atomic_pair).
    Returns the model as written, less the weights' bytes."""
    if not external_data:
        _check(model, arrays)
        with atomic_write(path) as f:
            return _write_embedded(f, model, arrays, progress)
    with atomic_pair(path, ".data") as (staged_model, staged_data):
        done, total = 0, sum(a.nbytes for a in arrays.values() if a.nbytes >= EMBED_BELOW)
        with open(staged_data, "wb") as f:
            for a in arrays.values():
                if a.nbytes >= EMBED_BELOW:
                    done = _write_raw(f, a, done, total, progress)
        written = _structure(model, arrays, staged_data.name)
        with open(staged_model, "wb") as f:
            f.write(written.SerializeToString())
        onnx.checker.check_model(str(staged_model), full_check=True)
    return written
