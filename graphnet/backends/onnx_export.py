"""Lowering the Graph IR to an ONNX ModelProto. Free dims become dim_param; params become
initializers; each op lowers itself through the OnnxBuilder handed to its `to_onnx`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..dims import Dim, _Atom, as_dim
from ..errors import Location, SpecError
from ..files import atomic_pair, atomic_write
from ..graph import Graph, Node
from ..transforms.derive import Known
from ..transforms.recurrent import fuse_recurrent_cells
from ..types import ONNX_DTYPES, TensorType, dtype_name
from .onnx_tidy import tidy

MIN_OPSET, MAX_OPSET = 17, 21


class OnnxBuilder:
    """What an op's `to_onnx` may use: node creation, constants, shape tensors, tensor types, and
    the lowering of a body graph."""

    def __init__(self, opset: int, types: dict[str, TensorType], symbol_sources: dict[str, tuple[str, int]]):
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.types = dict(types)
        self.symbol_sources = symbol_sources
        self.hint = "node"
        self._names: set[str] = set(types)
        self._consts: dict[tuple, str] = {}
        self._dims: dict[Dim, str] = {}

    # -- naming and types ------------------------------------------------------------------
    def reserve(self, names) -> None:
        """Names fresh() must not give (the graph's outputs)."""
        self._names.update(names)

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self._names:
            name = f"{base}/{k}"
            k += 1
        self._names.add(name)
        return name

    def type_of(self, name: str) -> TensorType:
        return self.types[name]

    def dtype_of(self, name: str) -> str:
        return self.types[name].dtype

    @staticmethod
    def onnx_dtype(dtype: str) -> int:
        return ONNX_DTYPES[dtype]

    # -- nodes -----------------------------------------------------------------------------
    def node(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs):
        outputs = [self.fresh(self.hint) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(f"{self.hint}#{op_type}"),
                                           **attrs))
        return outputs[0] if n_out == 1 else outputs

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: bool) -> str:
        # ReduceSum took axes as an input from opset 13, the others from opset 18.
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.node(op_type, [x, self.ints(axes)], keepdims=int(keepdims))
        return self.node(op_type, [x], axes=axes, keepdims=int(keepdims))

    # -- constants -------------------------------------------------------------------------
    @staticmethod
    def tensor_proto(array: np.ndarray, name: str = "") -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(array, order="C"), name)

    def const(self, array: np.ndarray) -> str:
        array = np.asarray(array)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            name = self.fresh(f"{self.hint}/const")
            self.initializers[name] = self.tensor_proto(array, name)
            self.types[name] = TensorType(dtype_name(array.dtype), array.shape)
            self._consts[key] = name
        return self._consts[key]

    def scalar(self, value: float, dtype: str) -> str:
        return self.const(np.asarray(value, dtype=dtype))

    def ints(self, values, scalar: bool = False) -> str:
        return self.const(np.asarray(values[0] if scalar else list(values), dtype=np.int64))

    # -- symbolic dims ---------------------------------------------------------------------
    def dims_tensor(self, dims) -> str:
        """A 1-D int64 tensor of dims: a constant when all are known, else computed from input shapes."""
        dims = [as_dim(d) for d in dims]
        if all(d.is_const() for d in dims):
            return self.ints([d.value for d in dims])
        parts = [self.ints([d.value]) if d.is_const() else
                 self.node("Unsqueeze", [self.scalar_dim(d), self.ints([0])]) for d in dims]
        return parts[0] if len(parts) == 1 else self.node("Concat", parts, axis=0)

    def scalar_dim(self, d: Dim) -> str:
        """A 0-d int64 tensor holding the value of a dim expression at run time."""
        d = as_dim(d)
        if d.is_const():
            return self.ints([d.value], scalar=True)
        if d in self._dims:
            return self._dims[d]
        total = None
        for mono, coeff in sorted(d.terms.items(), key=lambda mc: str(mc)):
            term = self.ints([coeff], scalar=True) if coeff != 1 or not mono else None
            for atom, power in mono:
                base = self._atom(atom)
                for _ in range(power):
                    term = base if term is None else self.node("Mul", [term, base])
            total = term if total is None else self.node("Add", [total, term])
        self._dims[d] = total
        return total

    def _atom(self, atom) -> str:
        if isinstance(atom, str):
            source, axis = self.symbol_sources[atom]
            shape = self.node("Shape", [source], start=axis, end=axis + 1)
            return self.node("Squeeze", [shape, self.ints([0])])
        assert isinstance(atom, _Atom)
        if atom.kind == "floordiv":
            # Integer Div truncates; dims are non-negative, where truncation is the floor.
            return self.node("Div", [self.scalar_dim(atom.args[0]), self.ints([atom.args[1]], scalar=True)])
        op = "Min" if atom.kind == "min" else "Max"
        return self.node(op, [self.scalar_dim(atom.args[0]), self.scalar_dim(atom.args[1])])

    # -- body graphs -----------------------------------------------------------------------
    def subgraph(self, graph: Graph, outputs: dict[str, str], name: str) -> onnx.GraphProto:
        """A body graph (a scan's) lowered at this builder's opset: a GraphProto computing `outputs`
        (ONNX name -> body tensor); its params are read from the enclosing graph's initializers."""
        return lower_graph(graph, self.opset, outputs, name)


def source_node(graph: Graph, onnx_name: str) -> tuple[Graph, Node] | None:
    """The node (and the graph or scan body holding it) whose lowering made the ONNX node named
    `onnx_name`. OnnxBuilder.node names each '<node path>#<ONNX op>', '/2'... added when taken,
    and a rewritten node's path extends its source's with '#...' (a fused cell's 'enc#lstm')."""
    nodes: dict[str, tuple[Graph, Node]] = {}
    owners = [graph]
    while owners:
        owner = owners.pop()
        for node in owner.nodes:
            nodes.setdefault(node.name, (owner, node))
            body = getattr(node.op, "body", None)
            if isinstance(body, Graph):
                owners.append(body)
    name = onnx_name.rpartition("#")[0]
    while name and name not in nodes:
        name = name.rpartition("#")[0]
    return nodes.get(name)


def _value_info(name: str, t: TensorType) -> onnx.ValueInfoProto:
    shape = [d.value if d.is_const() else (str(d) if d.is_symbol() else None) for d in t.shape]
    return helper.make_tensor_value_info(name, ONNX_DTYPES[t.dtype], shape)


def symbol_sources(inputs: dict[str, TensorType]) -> dict[str, tuple[str, int]]:
    """Where each free symbol can be read at run time: the first input axis that is exactly it."""
    sources: dict[str, tuple[str, int]] = {}
    for name, t in inputs.items():
        for axis, d in enumerate(t.shape):
            if d.is_symbol():
                sources.setdefault(str(d), (name, axis))
    return sources


def lower_graph(graph: Graph, opset: int, outputs: dict[str, str], name: str,
                initializers: list[onnx.TensorProto] = ()) -> onnx.GraphProto:
    """A GraphProto computing `outputs` (ONNX name -> graph tensor) from the graph's inputs; also
    the body of a Scan, whose params are read from the enclosing graph's initializers."""
    b = OnnxBuilder(opset, graph.types, symbol_sources(graph.inputs))
    b.reserve(outputs)
    env: dict[str, str] = {n: n for n in list(graph.inputs) + list(graph.params)}
    # ONNX names every tensor once: an input cannot share an output's name, a param is renamed
    clash = sorted(set(outputs) & set(graph.inputs))
    if clash:
        raise SpecError.at(graph.output_locs.get(clash[0], Location(graph.source)),
                           f"output '{clash[0]}' has the name of an input; ONNX needs every tensor named once")
    initializers = list(initializers)
    for t in initializers:
        if t.name in outputs:
            env[t.name] = t.name = b.fresh(f"{t.name}#param")
    for node in graph.nodes:
        b.hint = node.name
        ins = [env[t] if t is not None else None for t in node.inputs]
        outs = node.op.to_onnx(b, *_trim(ins))
        outs = (outs,) if isinstance(outs, str) else tuple(outs)
        for t, o in zip(node.outputs, outs):
            env[t] = o
            b.types[o] = graph.types[t]
    nodes = b.nodes
    infos = []
    renames: dict[str, str] = {}
    produced = {o for n in nodes for o in n.output}
    for out_name, tensor in outputs.items():
        src = env[tensor]
        # Name the producing node's output after the graph output, unless it is also read under
        # its own name elsewhere as another output; inputs and params need an Identity.
        if src in produced and src not in renames and src not in outputs:
            renames[src] = out_name
        else:
            nodes.append(helper.make_node("Identity", [src], [out_name], name=f"{out_name}#Identity"))
        infos.append(_value_info(out_name, graph.types[tensor]))
    if renames:
        for n in nodes:
            n.input[:] = [renames.get(x, x) for x in n.input]
            n.output[:] = [renames.get(x, x) for x in n.output]
        b.types.update({new: b.types[old] for old, new in renames.items() if old in b.types})
    tensors = {t.name: t for t in list(initializers) + list(b.initializers.values())}
    nodes = tidy(nodes, tensors, b.types, set(outputs))
    return helper.make_graph(nodes, name, [_value_info(n, t) for n, t in graph.inputs.items()], infos,
                             list(tensors.values()))


def to_onnx(graph: Graph, weights: dict[str, np.ndarray], opset: int = 17, external=None) -> onnx.ModelProto:
    """The model; with `external`, (an open binary file, the name the model refers to it by),
    params of 1 KiB or more are written to that file and the model holds ONNX external-data
    references to them, so that it stays far below protobuf's 2 GiB limit."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset} is not supported; use {MIN_OPSET} to {MAX_OPSET}")
    known = Known(weights)
    graph = fuse_recurrent_cells(graph, known)    # ONNX has these cells as ops
    params = [_initializer(p, np.asarray(known[p], dtype=graph.params[p].type.dtype, order="C"), external)
              for p in graph.params]
    g = lower_graph(graph, opset, graph.outputs, graph.name, params)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="graphnet")
    model.ir_version = min(model.ir_version, 10)
    if graph.metadata:   # what made the graph (train mode's mask inputs and state outputs), for its readers
        helper.set_model_props(model, graph.metadata)
    return model


def _initializer(name: str, array: np.ndarray, external) -> onnx.TensorProto:
    if external is None or array.nbytes < 1024:
        return numpy_helper.from_array(array, name)
    f, location = external
    offset = f.tell()
    f.write(array.tobytes())
    tensor = onnx.TensorProto(name=name, dims=array.shape, data_type=ONNX_DTYPES[dtype_name(array.dtype)],
                              data_location=onnx.TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(array.nbytes))):
        tensor.external_data.add(key=key, value=value)
    return tensor


# Protobuf cannot serialize a message of 2 GiB or more; above this many bytes of weights (128 MiB
# left for the graph itself) they go to a file of their own beside the model.
EXTERNAL_DATA_ABOVE = (1 << 31) - (1 << 27)


def export(graph: Graph, weights: dict[str, np.ndarray], path: str | Path, opset: int = 17,
           external_data: bool | None = None) -> onnx.ModelProto:
    """Write the model to `path` once onnx's full checker accepts it. The weights go to
    '<name>.data' beside it (ONNX external data) when they would pass protobuf's 2 GiB limit, or
    when `external_data` asks. Each file is written whole under a temporary name in the same folder
    and renamed into place, so a failure never leaves a partial or clobbered file; with external
    data, files.atomic_pair commits the two so that the model never refers to another's data
    (the data file is '<name>.data', or '<name>.<random>.data' while that name is in use)."""
    path = Path(path)
    if external_data is None:
        external_data = sum(np.asarray(w).nbytes for w in weights.values()) > EXTERNAL_DATA_ABOVE
    if not external_data:
        model = to_onnx(graph, weights, opset)
        onnx.checker.check_model(model, full_check=True)
        with atomic_write(path) as f:
            f.write(model.SerializeToString())
        return model
    with atomic_pair(path, ".data") as (staged_model, staged_data):
        with open(staged_data, "wb") as f:
            model = to_onnx(graph, weights, opset, external=(f, staged_data.name))
        with open(staged_model, "wb") as f:
            f.write(model.SerializeToString())
        onnx.checker.check_model(str(staged_model), full_check=True)
    return model


def _trim(values: list):
    while values and values[-1] is None:
        values = values[:-1]
    return values
