"""A Triton Inference Server model repository for an export: REPO/NAME/1/model.onnx and
REPO/NAME/config.pbtxt, the config read from the exported model's own signature.

Triton batches requests along a leading batch axis that the config leaves out of `dims`. When the
free dim B is the first axis of every input and output, the config declares `max_batch_size` and
dynamic batching over it; otherwise it declares the full shapes (max_batch_size 0) and Triton
passes each request as it is. Other free dims are -1. graphnet writes the repository; running the
server, its instance groups and its ensembles are Triton's (docs/serving.md)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from ..files import atomic_write
from .onnx_meta import version

BATCH_DIM = "B"
TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16", onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16", onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT16: "TYPE_INT16", onnx.TensorProto.INT8: "TYPE_INT8", onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.UINT16: "TYPE_UINT16", onnx.TensorProto.UINT32: "TYPE_UINT32",
    onnx.TensorProto.UINT64: "TYPE_UINT64", onnx.TensorProto.BOOL: "TYPE_BOOL",
}


def _dims(v: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.dim_param or not d.HasField("dim_value") else d.dim_value
            for d in v.type.tensor_type.shape.dim]


def batched(model: onnx.ModelProto) -> bool:
    """Whether B leads every input and output, so that Triton may batch requests along it."""
    values = list(model.graph.input) + list(model.graph.output)
    return bool(values) and all(_dims(v)[:1] == [BATCH_DIM] for v in values)


def config_text(model: onnx.ModelProto, name: str, max_batch_size: int = 32) -> str:
    """config.pbtxt (protobuf text format of Triton's ModelConfig) for the exported model."""
    batching = batched(model)

    def tensors(values) -> list[str]:
        out = []
        for v in values:
            dims = _dims(v)[1:] if batching else _dims(v)
            shown = ", ".join(str(d) if isinstance(d, int) else "-1" for d in dims)
            out.append(f"  {{\n    name: {json.dumps(v.name)}\n    data_type: {TRITON_TYPES[v.type.tensor_type.elem_type]}\n"
                       f"    dims: [ {shown} ]\n  }}")
        return out

    lines = [f"# written by graphnet {version()} from {model.graph.name}: see docs/serving.md",
             f"name: {json.dumps(name)}", 'backend: "onnxruntime"',
             f"max_batch_size: {max_batch_size if batching else 0}",
             "input [\n" + ",\n".join(tensors(model.graph.input)) + "\n]",
             "output [\n" + ",\n".join(tensors(model.graph.output)) + "\n]"]
    if batching:
        lines.append("dynamic_batching { }")
    return "\n".join(lines) + "\n"


def export_triton(export, repo: str | Path, name: str, max_batch_size: int = 32) -> tuple[Path, Path]:
    """Write the repository: `export(path)` writes the model (onnx_export.export with its
    arguments bound) and returns it; then the config. Returns (model path, config path)."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be 1 or more, got {max_batch_size}")
    folder = Path(repo) / name
    model_path, config_path = folder / "1" / "model.onnx", folder / "config.pbtxt"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model = export(model_path)
    with atomic_write(config_path, "w") as f:
        f.write(config_text(model, name, max_batch_size))
    return model_path, config_path
