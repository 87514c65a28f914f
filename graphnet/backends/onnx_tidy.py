"""Tidying the lowered ONNX graph into what a careful engineer deploys: no Identity between nodes,
MatMul then a bias Add on matrices as one Gemm (reading the weight as stored, transB), nodes of
constants alone computed (a weight's transpose or split, shape arithmetic on known dims), batch
norm after a conv folded into the conv, a recurrent op's all-zero initial states left out (they are
ONNX's default), no node computed twice, and none whose result nothing reads. After it, onnxslim
finds nothing to remove (tests/backends/test_onnx_deploy.py).

It works on the lowered nodes because these are facts of ONNX, not of graphnet's ops: the NumPy
back end has its own rewrites (backends/rewrites.py). Initializers are NumPy arrays here (name ->
array, updated in place); a folded transpose or split is a view, so no weight is copied. Every
rewrite keeps the values (the batch norm fold to float rounding): the tests run the specs through
onnxruntime with each rewrite on and off.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..types import TensorType, dtype_name

RECURRENT = {"RNN": (5,), "GRU": (5,), "LSTM": (5, 6)}    # op -> the indices of its initial states
# ops whose output is the zero of their input when that is zero: a zero state reshaped is zero
ZERO_PRESERVING = {"Unsqueeze", "Squeeze", "Transpose", "Reshape", "Expand", "Identity", "Cast", "Flatten"}
UNFOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


def tidy(nodes: list[onnx.NodeProto], arrays: dict[str, np.ndarray], types: dict[str, TensorType],
         keep: set[str], opset: int, options) -> list[onnx.NodeProto]:
    """The nodes after the rewrites `options` (an ExportOptions) asks for; `arrays` (the
    initializers) is updated in place. Tensors in `keep` (graph outputs) keep their names and
    producers; an initializer a body graph reads keeps its name."""
    nodes = _drop_identities(nodes, keep)
    nodes = _fuse_gemm(nodes, arrays, types, keep)
    nodes = _fold_constants(nodes, arrays, keep, opset, everything=options.fold_constants)
    if options.fold_batch_norm:
        nodes = _fold_batch_norms(nodes, arrays, types, keep)
    if options.drop_zero_states:
        nodes = _drop_zero_states(nodes, arrays)
    nodes = _merge_duplicates(nodes, keep)
    nodes = _flatten_concats(nodes, keep)
    return _drop_unread(nodes, arrays, keep)


def reads(node: onnx.NodeProto) -> list[str]:
    """The tensors a node reads: its inputs, and the enclosing graph's tensors its bodies read."""
    out = [x for x in node.input if x]
    for a in node.attribute:
        for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            inner = {x.name for x in g.input} | {t.name for t in g.initializer} | {o for n in g.node for o in n.output}
            out += [x for n in g.node for x in reads(n) if x not in inner]
    return out


def _has_body(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


def _readers(nodes: list[onnx.NodeProto]) -> dict[str, int]:
    count: dict[str, int] = {}
    for n in nodes:
        for x in reads(n):
            count[x] = count.get(x, 0) + 1
    return count


def _attr(node: onnx.NodeProto, name: str, default=None):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _renamed(nodes: list[onnx.NodeProto], rename: dict[str, str]) -> None:
    if rename:
        for n in nodes:
            n.input[:] = [rename.get(x, x) for x in n.input]


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


def _fuse_gemm(nodes, arrays, types, keep):
    """MatMul(a, w) + bias on a matrix a as Gemm; a weight read through a 2-D transpose is read
    as stored, with transB (std.linear's x @ weight.T is torch's Linear, weight as torch has it)."""
    readers = _readers(nodes)
    producer = {o: n for n in nodes for o in n.output}
    fused, out = {}, []
    for n in nodes:
        if n.op_type != "Add" or len(n.input) != 2:
            continue
        for product, bias in (n.input, reversed(n.input)):
            mm = producer.get(product)
            if (mm is None or mm.op_type != "MatMul" or readers.get(product) != 1 or product in keep
                    or bias not in arrays or arrays[bias].ndim != 1):
                continue
            a, w = mm.input
            trans = producer.get(w)
            transposed = (trans is not None and trans.op_type == "Transpose" and readers.get(w) == 1
                          and trans.input[0] in arrays and arrays[trans.input[0]].ndim == 2 and w not in keep)
            if transposed:
                w = trans.input[0]
            if a not in types or types[a].rank != 2 or w not in arrays or arrays[w].ndim != 2:
                continue
            if transposed:
                fused[trans.name] = None
            fused[mm.name] = None
            fused[n.name] = helper.make_node("Gemm", [a, w, bias], list(n.output), name=n.name,
                                             **({"transB": 1} if transposed else {}))
            break
    for n in nodes:
        replacement = fused.get(n.name, n)
        if replacement is not None:
            out.append(replacement)
    return out


def _fold_constants(nodes, arrays, keep, opset, everything: bool):
    """Each node that reads constants alone replaced by its result, computed by onnx.reference
    (a transpose, a split or a slice of a weight comes back as a view of it). Without
    `everything`, only a weight's transposes are (the export's layout, whatever the options)."""
    from onnx.reference import ReferenceEvaluator

    out = []
    for n in nodes:
        ins = [x for x in n.input if x]
        foldable = (ins and all(x in arrays for x in ins) and n.domain in ("", "ai.onnx") and not _has_body(n)
                    and n.op_type not in UNFOLDABLE and not keep.intersection(n.output)
                    and (everything or n.op_type == "Transpose"))
        if not foldable:
            out.append(n)
            continue
        infos = [helper.make_tensor_value_info(x, onnx.helper.np_dtype_to_tensor_dtype(arrays[x].dtype),
                                               arrays[x].shape) for x in ins]
        model = helper.make_model(helper.make_graph([n], "fold", infos,
                                                    [helper.make_empty_tensor_value_info(o) for o in n.output if o]),
                                  opset_imports=[helper.make_opsetid("", opset)])
        try:
            with np.errstate(all="ignore"):
                results = ReferenceEvaluator(model).run(None, {x: arrays[x] for x in ins})
        except Exception:    # it fails whatever the inputs (an index past its table): onnxruntime says so, located
            out.append(n)
            continue
        for o, value in zip([o for o in n.output if o], results):
            arrays[o] = np.asarray(value)
    return out


def _fold_batch_norms(nodes, arrays, types, keep):
    """Conv then BatchNormalization (inference) on its output alone, with constant weights and
    statistics: one Conv whose weight and bias are scaled and shifted (the scale and bias computed
    in float64). The weight
    keeps the conv's param name where nothing else reads it, the bias the conv's bias or the
    batch norm's bias name; the node's doc string names the batch norm folded in."""
    readers = _readers(nodes)
    producer = {o: n for n in nodes for o in n.output}
    replaced, dropped = {}, set()
    for bn in nodes:
        conv = producer.get(bn.input[0]) if bn.op_type == "BatchNormalization" else None
        if (conv is None or conv.op_type != "Conv" or readers.get(bn.input[0]) != 1 or bn.input[0] in keep
                or len(bn.output) != 1 or _attr(bn, "training_mode", 0) or conv.input[1] not in arrays
                or not all(x in arrays for x in bn.input[1:5])
                or (len(conv.input) > 2 and conv.input[2] and conv.input[2] not in arrays)):
            continue
        scale, beta, mean, var = (arrays[x].astype(np.float64) for x in bn.input[1:5])
        w = arrays[conv.input[1]]
        s = scale / np.sqrt(var + float(_attr(bn, "epsilon", 1e-5)))
        b0 = arrays[conv.input[2]].astype(np.float64) if len(conv.input) > 2 and conv.input[2] else 0.0
        # one rounding of each weight, as in float64 then cast, at float32's speed and memory
        folded_w = w * s.astype(w.dtype).reshape((-1,) + (1,) * (w.ndim - 1))
        folded_b = ((b0 - mean) * s + beta).astype(w.dtype)
        w_name = _own_name(conv.input[1], readers, arrays, f"{bn.name}#weight")
        b_candidates = ([conv.input[2]] if len(conv.input) > 2 and conv.input[2] else []) + [bn.input[2]]
        b_name = next((x for x in b_candidates if readers.get(x) == 1),
                      _own_name(bn.input[2], {}, arrays, f"{bn.name}#bias"))
        arrays[w_name], arrays[b_name] = folded_w, folded_b
        new = helper.make_node("Conv", [conv.input[0], w_name, b_name], list(bn.output), name=conv.name,
                               doc_string=f"batch norm '{bn.name}' folded into the weight and bias")
        new.attribute.extend(conv.attribute)
        replaced[conv.name] = new
        dropped.add(bn.name)
    return [replaced.get(n.name, n) for n in nodes if n.name not in dropped]


def _own_name(name: str, readers: dict[str, int], arrays: dict, fallback: str) -> str:
    """`name` when this node is its only reader, else a new name from `fallback`."""
    if readers.get(name) == 1:
        return name
    new, k = fallback, 1
    while new in arrays:
        new, k = f"{fallback}/{k}", k + 1
    return new


def _drop_zero_states(nodes, arrays):
    """A recurrent op's initial state that is zero whatever the inputs (zeros made to the batch's
    shape, or a zero initializer, reshaped) left out: ONNX starts from zero without it."""
    zero: set[str] = set()

    def is_zero(x: str) -> bool:
        return x in zero or (x in arrays and arrays[x].size > 0 and not arrays[x].any())

    for n in nodes:
        if n.op_type == "ConstantOfShape":
            value = _attr(n, "value")
            if value is None or not onnx.numpy_helper.to_array(value).any():
                zero.add(n.output[0])
        elif n.op_type in ZERO_PRESERVING and n.input and is_zero(n.input[0]):
            zero.add(n.output[0])
        elif n.op_type in RECURRENT:
            ins = list(n.input)
            for i in RECURRENT[n.op_type]:
                if i < len(ins) and ins[i] and is_zero(ins[i]):
                    ins[i] = ""
            while ins and not ins[-1]:
                ins.pop()
            n.input[:] = ins
    return nodes


def _merge_duplicates(nodes, keep):
    """A node computing what an earlier one does (the same op, attributes and inputs) dropped,
    its readers reading the earlier one's outputs."""
    seen: dict[tuple, onnx.NodeProto] = {}
    rename: dict[str, str] = {}
    out = []
    for n in nodes:
        n.input[:] = [rename.get(x, x) for x in n.input]
        if not _has_body(n) and not keep.intersection(n.output) and n.op_type not in UNFOLDABLE:
            key = (n.domain, n.op_type, tuple(n.input), tuple(a.SerializeToString() for a in n.attribute))
            first = seen.setdefault(key, n)
            if first is not n and len(first.output) == len(n.output):
                rename.update(zip(n.output, first.output))
                continue
        out.append(n)
    return out


def _flatten_concats(nodes, keep):
    """A Concat of a Concat along the same axis, read by it alone, as one Concat of all the parts
    (a stacked bidirectional RNN's final states)."""
    readers = _readers(nodes)
    producer = {o: n for n in nodes for o in n.output}
    for n in nodes:
        if n.op_type != "Concat":
            continue
        parts = []
        for x in n.input:
            inner = producer.get(x)
            if (inner is not None and inner.op_type == "Concat" and readers.get(x) == 1 and x not in keep
                    and _attr(inner, "axis") == _attr(n, "axis")):
                parts += list(inner.input)
            else:
                parts.append(x)
        n.input[:] = parts
    return nodes


def _drop_unread(nodes, arrays, keep):
    """The nodes whose results something reads, and the initializers read."""
    live = set(keep)
    out = []
    for n in reversed(nodes):
        if live.intersection(n.output):
            live.update(reads(n))
            out.append(n)
    for name in [k for k in arrays if k not in live]:
        del arrays[name]
    return out[::-1]


def array_type(array: np.ndarray) -> TensorType:
    return TensorType(dtype_name(array.dtype), array.shape)
