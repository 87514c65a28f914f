"""Reading an ONNX file that nobody vouched for: refused with a located error, never a traceback,
before it can hang or exhaust memory.

- the file's size is checked before a byte is parsed (protobuf holds the whole message in memory);
- graphs nested in attributes (If, Loop, Scan bodies) are bounded in depth;
- external data files are confined to the model's folder: no absolute path, no `..`, no symlink
  out of it, regular files only; every tensor's claimed size (its dims times its dtype's width)
  must equal the bytes it holds, inline or in its external file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from ..errors import Location, SpecError
from ..files import note_input

MAX_MODEL_BYTES = 2 << 30          # protobuf's own limit for one message
MAX_TENSOR_BYTES = 8 << 30         # one initializer, external data included
MAX_GRAPH_DEPTH = 8                # graphs inside attributes inside graphs
MAX_NODES = 200_000

# bytes per element of each ONNX dtype graphnet can read; the others are named in the error
ONNX_ITEMSIZE = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.DOUBLE: 8, onnx.TensorProto.FLOAT16: 2,
                 onnx.TensorProto.INT64: 8, onnx.TensorProto.INT32: 4, onnx.TensorProto.INT8: 1,
                 onnx.TensorProto.UINT8: 1, onnx.TensorProto.BOOL: 1}
# the repeated field a tensor without raw_data keeps its values in, per dtype
_FIELD = {onnx.TensorProto.FLOAT: "float_data", onnx.TensorProto.DOUBLE: "double_data",
          onnx.TensorProto.FLOAT16: "int32_data", onnx.TensorProto.INT64: "int64_data",
          onnx.TensorProto.INT32: "int32_data", onnx.TensorProto.INT8: "int32_data",
          onnx.TensorProto.UINT8: "int32_data", onnx.TensorProto.BOOL: "int32_data"}


def read_model(path: str | Path) -> onnx.ModelProto:
    """The model in the file at `path`, its external data read in and checked."""
    path = Path(path)
    where = Location(str(path))
    try:
        st = path.stat()
        if not path.is_file():
            raise SpecError.at(where, "not a regular file")
        if st.st_size > MAX_MODEL_BYTES:
            raise SpecError.at(where, f"file is {st.st_size} bytes; an ONNX model is at most {MAX_MODEL_BYTES} "
                                      "(larger weights belong in external data)")
        data = path.read_bytes()
        note_input(path)
    except OSError as e:
        raise SpecError.at(where, f"cannot read file: {e.strerror or e}") from None
    model = parse_model(data, str(path))
    check_model(model, str(path), path.parent)
    return model


def parse_model(data: bytes, display: str) -> onnx.ModelProto:
    if len(data) > MAX_MODEL_BYTES:
        raise SpecError.at(Location(display), f"model is {len(data)} bytes; at most {MAX_MODEL_BYTES}")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as e:
        # upb refuses messages nested past its recursion limit with a DecodeError too
        raise SpecError.at(Location(display), f"not an ONNX model: the protobuf cannot be read ({e})") from None
    if not model.HasField("graph"):
        raise SpecError.at(Location(display), "not an ONNX model: it has no graph")
    return model


def check_model(model: onnx.ModelProto, display: str, folder: Path | None) -> None:
    """Bound the nesting and node count, and check (and read in) every tensor's data. `folder` is
    where external data may be read from; None (a model given in memory) allows none."""
    count = 0
    todo = [(model.graph, 1)]
    while todo:
        graph, depth = todo.pop()
        if depth > MAX_GRAPH_DEPTH:
            raise SpecError.at(Location(display), f"graphs nested more than {MAX_GRAPH_DEPTH} deep in attributes")
        count += len(graph.node)
        if count > MAX_NODES:
            raise SpecError.at(Location(display), f"more than {MAX_NODES} nodes")
        for t in graph.initializer:
            _check_tensor(t, f"initializer '{t.name}'", display, folder)
        for node in graph.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    _check_tensor(a.t, f"node '{node.name or node.op_type}' attribute '{a.name}'", display, folder)
                todo += [(g, depth + 1) for g in ([a.g] if a.HasField("g") else []) + list(a.graphs)]


def _check_tensor(t: onnx.TensorProto, what: str, display: str, folder: Path | None) -> None:
    where = Location(display)
    if any(d < 0 for d in t.dims):
        raise SpecError.at(where, f"{what}: negative dim in {list(t.dims)}")
    count = int(np.prod([int(d) for d in t.dims], dtype=object)) if t.dims else 1
    size = ONNX_ITEMSIZE.get(t.data_type)
    if size is None:
        return          # the converter names the dtype when the tensor is used
    claimed = count * size
    if claimed > MAX_TENSOR_BYTES:
        raise SpecError.at(where, f"{what}: {list(t.dims)} is {claimed} bytes; at most {MAX_TENSOR_BYTES}")
    if t.data_location == onnx.TensorProto.EXTERNAL:
        t.raw_data = _external_bytes(t, what, claimed, display, folder)
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT
        return
    if t.HasField("raw_data"):
        if len(t.raw_data) != claimed:
            raise SpecError.at(where, f"{what}: dims {list(t.dims)} claim {claimed} bytes but it holds "
                                      f"{len(t.raw_data)}")
        return
    held = len(getattr(t, _FIELD[t.data_type]))
    if held != count:
        raise SpecError.at(where, f"{what}: dims {list(t.dims)} claim {count} values but it holds {held}")


def _external_bytes(t: onnx.TensorProto, what: str, claimed: int, display: str, folder: Path | None) -> bytes:
    where = Location(display)
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    if folder is None:
        raise SpecError.at(where, f"{what}: external data '{location}' cannot be read for a model given in memory")
    rel = Path(location)
    if not location or "\0" in location or rel.is_absolute() or ".." in rel.parts:
        raise SpecError.at(where, f"{what}: external data location '{location}' must be a relative path "
                                  "inside the model's folder (no '..', not absolute)")
    target = folder / rel
    try:
        resolved, root = target.resolve(), folder.resolve()
        if root not in resolved.parents:
            raise SpecError.at(where, f"{what}: external data '{location}' leaves the model's folder")
        if not resolved.is_file():
            raise SpecError.at(where, f"{what}: external data '{location}' is not a regular file")
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", claimed))
        except ValueError:
            raise SpecError.at(where, f"{what}: external data offset/length are not whole numbers") from None
        file_size = resolved.stat().st_size
        if offset < 0 or length != claimed:
            raise SpecError.at(where, f"{what}: dims {list(t.dims)} claim {claimed} bytes but the external "
                                      f"data says {length}")
        if offset + length > file_size:
            raise SpecError.at(where, f"{what}: external data '{location}' holds {file_size} bytes, fewer than "
                                      f"offset {offset} + length {length}")
        with open(resolved, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        note_input(resolved)
    except OSError as e:
        raise SpecError.at(where, f"{what}: cannot read external data '{location}': {e.strerror or e}") from None
    if len(data) != claimed:
        raise SpecError.at(where, f"{what}: external data '{location}' ended early")
    return data
