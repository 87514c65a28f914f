"""Tidying the lowered ONNX graph into what a careful engineer writes by hand: a weight's Transpose
stored transposed, MatMul then a bias Add on matrices as one Gemm, no Identity between nodes.

It works on the lowered nodes because these are facts of ONNX, not of graphnet's ops: the NumPy
back end has its own rewrites (backends/rewrites.py). Every rewrite here keeps the values exactly:
tests/backends/test_onnx_export.py runs the specs through onnxruntime before and after.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ops import TensorType


def tidy(nodes: list[onnx.NodeProto], initializers: dict[str, onnx.TensorProto],
         types: dict[str, TensorType], keep: set[str]) -> list[onnx.NodeProto]:
    """The nodes after the rewrites; `initializers` (name -> tensor) is updated in place. Tensors in
    `keep` (graph outputs) keep their names and producers."""
    nodes = _fold_weight_transposes(nodes, initializers, keep)
    nodes = _drop_identities(nodes, keep)
    return _fuse_gemm(nodes, initializers, types, keep)


def _readers(nodes: list[onnx.NodeProto]) -> dict[str, int]:
    count: dict[str, int] = {}
    for n in nodes:
        for x in n.input:
            count[x] = count.get(x, 0) + 1
    return count


def _fold_weight_transposes(nodes, initializers, keep):
    readers = _readers(nodes)
    out = []
    for n in nodes:
        src = n.input[0] if n.input else ""
        if (n.op_type == "Transpose" and src in initializers and readers[src] == 1 and n.output[0] not in keep
                and initializers[src].data_location != onnx.TensorProto.EXTERNAL):   # those stay on disk
            perm = next((list(a.ints) for a in n.attribute if a.name == "perm"), None)
            array = np.transpose(numpy_helper.to_array(initializers.pop(src)), perm)
            initializers[n.output[0]] = numpy_helper.from_array(np.ascontiguousarray(array), n.output[0])
            continue
        out.append(n)
    return out


def _drop_identities(nodes, keep):
    rename: dict[str, str] = {}
    out = []
    for n in nodes:
        n.input[:] = [rename.get(x, x) for x in n.input]
        if n.op_type == "Identity" and n.output[0] not in keep:
            rename[n.output[0]] = n.input[0]
            continue
        out.append(n)
    return out


def _fuse_gemm(nodes, initializers, types, keep):
    readers = _readers(nodes)
    producer = {o: n for n in nodes for o in n.output}
    fused, out = {}, []
    for n in nodes:
        if n.op_type != "Add" or len(n.input) != 2:
            continue
        for product, bias in (n.input, reversed(n.input)):
            mm = producer.get(product)
            if (mm is None or mm.op_type != "MatMul" or readers.get(product) != 1 or product in keep
                    or mm.input[1] not in initializers or bias not in initializers):
                continue
            a, w = mm.input
            if (a not in types or types[a].rank != 2 or len(initializers[w].dims) != 2
                    or len(initializers[bias].dims) != 1):
                continue
            fused[mm.name] = None
            fused[n.name] = helper.make_node("Gemm", [a, w, bias], list(n.output), name=n.name)
            break
    for n in nodes:
        replacement = fused.get(n.name, n)
        if replacement is not None:
            out.append(replacement)
    return out
