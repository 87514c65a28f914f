"""Hostile and unsupported ONNX files: each is refused by `graphnet import` with one located error
(`MODEL:1:1: error: ...`), exit status 1, no traceback, and no spec or weights written. The files
are built here, byte by byte where the point is a lie protobuf would not let onnx.helper tell."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphnet.cli import main
from graphnet.onnx_import import reader


def _relu_model(inits=(), nodes=None, opset=17, inputs=None):
    nodes = nodes or [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "g", inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _add_model(tensor):
    node = helper.make_node("Add", ["x", tensor.name], ["y"], name="add")
    return _relu_model([tensor], [node])


def _external(name, location, offset=0, length=8):
    t = TensorProto(name=name, dims=[2], data_type=TensorProto.FLOAT, data_location=TensorProto.EXTERNAL)
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        t.external_data.add(key=k, value=v)
    return t


def _nested(depth):
    body = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "b", [],
                             [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])])
    for _ in range(depth):
        node = helper.make_node("If", ["c"], ["z"], then_branch=body, else_branch=body)
        body = helper.make_graph([node], "b", [], [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])])
    top = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body, name="if")
    return _relu_model([numpy_helper.from_array(np.array(True), "c")], [top])


def _case_files(tmp_path):
    """name -> (bytes of the model, expected message)."""
    outside = tmp_path.parent / f"{tmp_path.name}_secret.bin"
    outside.write_bytes(b"\0" * 8)
    (tmp_path / "short.bin").write_bytes(b"\0" * 4)
    (tmp_path / "ok.bin").write_bytes(b"\0" * 8)
    os.symlink(outside, tmp_path / "link.bin")
    raw_short = numpy_helper.from_array(np.ones(2, np.float32), "w")
    raw_short.raw_data = b"\0" * 4
    few_floats = TensorProto(name="w", dims=[4], data_type=TensorProto.FLOAT, float_data=[1.0])
    huge = TensorProto(name="w", dims=[1 << 20, 1 << 20], data_type=TensorProto.FLOAT, raw_data=b"")
    unsupported = [helper.make_node("Relu", ["x"], ["a"], name="relu"),
                   helper.make_node("NonZero", ["a"], ["b"], name="nz1"),
                   helper.make_node("NonZero", ["b"], ["c"], name="nz2"),
                   helper.make_node("FusedConv", ["c"], ["y"], domain="com.microsoft", name="fc")]
    dynamic = [helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape")]
    deep = b""
    for _ in range(150):      # graph -> node -> attribute -> graph ..., 450 messages deep (upb stops at 100)
        deep = _field(1, _field(5, _field(6, deep)))
    return {
        "garbage.onnx": (b"\xff\xfe not a protobuf \x00\x01", "not an ONNX model"),
        "deep_protobuf.onnx": (_field(7, deep), "not an ONNX model"),
        "nested_graphs.onnx": (_nested(12).SerializeToString(), "graphs nested more than"),
        "dotdot.onnx": (_add_model(_external("w", "../secret.bin")).SerializeToString(),
                        "must be a relative path inside the model's folder"),
        "absolute.onnx": (_add_model(_external("w", str(outside))).SerializeToString(),
                          "must be a relative path inside the model's folder"),
        "symlink_out.onnx": (_add_model(_external("w", "link.bin")).SerializeToString(), "leaves the model's folder"),
        "missing_data.onnx": (_add_model(_external("w", "nowhere.bin")).SerializeToString(), "not a regular file"),
        "data_short.onnx": (_add_model(_external("w", "short.bin")).SerializeToString(), "holds 4 bytes, fewer"),
        "data_length_lies.onnx": (_add_model(_external("w", "ok.bin", length=4)).SerializeToString(),
                                  "claim 8 bytes but the external data says 4"),
        "raw_short.onnx": (_add_model(raw_short).SerializeToString(), "claim 8 bytes but it holds 4"),
        "few_floats.onnx": (_add_model(few_floats).SerializeToString(), "claim 4 values but it holds 1"),
        "huge_claim.onnx": (_add_model(huge).SerializeToString(), "bytes; at most"),
        "unsupported.onnx": (_relu_model([numpy_helper.from_array(np.ones(1, np.float32), "sc")], unsupported,
                                         ).SerializeToString(),
                             "unsupported op 'NonZero': 2 nodes, the first 'nz1'"),
        "dynamic_shape.onnx": (_relu_model(nodes=dynamic, inputs=[
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("s", TensorProto.INT64, [1])]).SerializeToString(),
                               "node 'reshape' (Reshape): the target shape is computed from data"),
        "bad_dtype.onnx": (_relu_model(inputs=[helper.make_tensor_value_info("x", TensorProto.STRING, [2])]
                                       ).SerializeToString(), "which graphnet has not"),
    }


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


CASES = ["garbage.onnx", "deep_protobuf.onnx", "nested_graphs.onnx", "dotdot.onnx", "absolute.onnx",
         "symlink_out.onnx", "missing_data.onnx", "data_short.onnx", "data_length_lies.onnx", "raw_short.onnx",
         "few_floats.onnx", "huge_claim.onnx", "unsupported.onnx", "dynamic_shape.onnx", "bad_dtype.onnx"]


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_file_gets_one_located_error(tmp_path, capsys, case):
    data, message = _case_files(tmp_path)[case]
    path = tmp_path / case
    path.write_bytes(data)
    out = tmp_path / "out.yaml"
    assert main(["import", str(path), "-o", str(out), "--weights-out", str(tmp_path / "w.npz")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"{path}:1:1: error: "), err
    assert message in err, err
    assert not out.exists() and not (tmp_path / "w.npz").exists()


def test_every_unsupported_op_is_listed_once(tmp_path, capsys):
    data, _ = _case_files(tmp_path)["unsupported.onnx"]
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert main(["import", str(path), "-o", str(tmp_path / "o.yaml")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"{path}:1:1: error: unsupported op 'NonZero': 2 nodes, the first 'nz1'",
                     f"{path}:1:1: error: op 'FusedConv' of domain 'com.microsoft' (unknown domain): 1 node, the first 'fc'"]


def test_the_size_limit_comes_before_parsing(tmp_path, capsys, monkeypatch):
    path = tmp_path / "big.onnx"
    onnx.save(_relu_model(), path)
    monkeypatch.setattr(reader, "MAX_MODEL_BYTES", 8)
    parsed = []
    monkeypatch.setattr(reader, "parse_model", lambda *a: parsed.append(a))
    assert main(["import", str(path), "-o", str(tmp_path / "o.yaml")]) == 1
    assert "an ONNX model is at most 8" in capsys.readouterr().err
    assert parsed == []


def test_external_data_inside_the_folder_is_read(tmp_path):
    (tmp_path / "w.bin").write_bytes(np.asarray([1.5, -2.0], np.float32).tobytes())
    path = tmp_path / "m.onnx"
    path.write_bytes(_add_model(_external("w", "w.bin")).SerializeToString())
    import graphnet as gn
    net, weights = gn.import_onnx(path)
    np.testing.assert_array_equal(weights["w"], [1.5, -2.0])
    y = net.run({"x": np.ones(2, np.float32)}, weights=weights)["y"]
    np.testing.assert_array_equal(y, [2.5, -1.0])
