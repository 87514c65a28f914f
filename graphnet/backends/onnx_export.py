"""Lowering the Graph IR to ONNX. Free dims become dim_param; params become initializers; each op
lowers itself through the OnnxBuilder handed to its `to_onnx`. The lowered graph is then tidied
(onnx_tidy.py: the deployment rewrites), named for people (node paths, IR tensor names) and
annotated (value_info, docs, metadata: onnx_meta.py) before onnx_write.py writes it.

Initializers are held as NumPy arrays until they are written, never as TensorProtos: a weight is a
view of the caller's array (a transposed weight a transposed view), so an export does not copy the
weights, and onnx_write.py serializes each once, straight into the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..dims import Dim, _Atom, as_dim
from ..errors import Location, SpecError
from ..graph import Graph, Node
from ..transforms.derive import Known
from ..transforms.recurrent import fuse_recurrent_cells
from ..types import ONNX_DTYPES, TensorType, dtype_name
from . import onnx_meta, onnx_write
from .onnx_write import contiguous
from .onnx_fp16 import to_float16
from .onnx_tidy import tidy

MIN_OPSET, MAX_OPSET = 17, 21
DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class ExportOptions:
    """The deployment rewrites, each on by default and each tested for equal outputs
    (tests/backends/test_onnx_deploy.py), and the precision of the exported model."""

    fold_batch_norm: bool = True      # batch norm after a conv folded into the conv's weights and bias
    drop_zero_states: bool = True     # a recurrent op's all-zero initial states left out (ONNX's default)
    fold_constants: bool = True       # nodes of constants alone (shape arithmetic, weight splits) computed
    dtype: str = "float32"            # float16: float weights and compute in half precision
    io_dtype: str | None = None       # the float inputs' and outputs' dtype; None: the spec's own

    def __post_init__(self):
        for name in ("dtype", "io_dtype"):
            value = getattr(self, name)
            if value is not None and value not in DTYPES:
                raise ValueError(f"{name} must be one of {', '.join(DTYPES)}, got {value!r}")


class OnnxBuilder:
    """What an op's `to_onnx` may use: node creation, constants, shape tensors, tensor types, and
    the lowering of a body graph."""

    def __init__(self, opset: int, types: dict[str, TensorType], symbol_sources: dict[str, tuple[str, int]]):
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.arrays: dict[str, np.ndarray] = {}        # the constants ops made
        self.origin: dict[str, Node] = {}              # ONNX node name -> the IR node it lowers
        self.types = dict(types)
        self.symbol_sources = symbol_sources
        self.hint = "node"
        self.current: Node | None = None
        self._names: set[str] = set(types)
        self._consts: dict[tuple, str] = {}
        self._dims: dict[Dim, str] = {}
        self._shapes: dict[tuple[str, int], str] = {}

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
        name = self.fresh(f"{self.hint}#{op_type}")
        # an empty list says nothing of its element type, which onnx.helper must be told
        empty = [k for k, v in attrs.items() if isinstance(v, (list, tuple)) and not v]
        node = helper.make_node(op_type, inputs, outputs, name=name, **{k: v for k, v in attrs.items() if k not in empty})
        node.attribute.extend(helper.make_attribute(k, [], attr_type=onnx.AttributeProto.INTS) for k in empty)
        self.nodes.append(node)
        if self.current is not None:
            self.origin[name] = self.current
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

    @property
    def initializers(self) -> dict[str, onnx.TensorProto]:
        """The constants as TensorProtos, for a graph put together by hand (the op tests')."""
        return {k: numpy_helper.from_array(contiguous(a), k) for k, a in self.arrays.items()}

    def const(self, array: np.ndarray) -> str:
        array = np.asarray(array)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            name = self.fresh(f"{self.hint}/const")
            self.arrays[name] = contiguous(array)
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
                 self._shape_of(*self.symbol_sources[str(d)]) if d.is_symbol() else
                 self.node("Unsqueeze", [self.scalar_dim(d), self.ints([0])]) for d in dims]
        return parts[0] if len(parts) == 1 else self.node("Concat", parts, axis=0)

    def _shape_of(self, source: str, axis: int) -> str:
        """The 1-D tensor [size of `source` along `axis`], made once."""
        if (source, axis) not in self._shapes:
            self._shapes[source, axis] = self.node("Shape", [source], start=axis, end=axis + 1)
        return self._shapes[source, axis]

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
            return self.node("Squeeze", [self._shape_of(*self.symbol_sources[atom]), self.ints([0])])
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
    `onnx_name`. ONNX nodes are named by onnx_meta.name_nodes: a block call's path when the call
    lowered to one node ('fc'), else the node's path ('fc.add'), then '#<ONNX op>' and '/2'...
    where that is taken; a rewritten node's path extends its source's with '#...' ('enc#lstm')."""
    nodes: dict[str, tuple[Graph, Node]] = {}
    calls: dict[str, tuple[Graph, Node]] = {}
    owners = [graph]
    while owners:
        owner = owners.pop()
        for node in owner.nodes:
            nodes.setdefault(node.name, (owner, node))
            for frame in node.trace[1:]:     # a call lowered to one node: its last, which gives its output
                calls[frame.path] = (owner, node)
            body = getattr(node.op, "body", None)
            if isinstance(body, Graph):
                owners.append(body)
    name = onnx_name
    while name:
        found = nodes.get(name) or calls.get(name)
        if found is not None:
            return found
        name = name[:max(name.rfind("#"), name.rfind("/"), 0)]
    return None


def symbol_sources(inputs: dict[str, TensorType]) -> dict[str, tuple[str, int]]:
    """Where each free symbol can be read at run time: the first input axis that is exactly it."""
    sources: dict[str, tuple[str, int]] = {}
    for name, t in inputs.items():
        for axis, d in enumerate(t.shape):
            if d.is_symbol():
                sources.setdefault(str(d), (name, axis))
    return sources


@dataclass
class Lowered:
    """A lowered graph before it becomes a GraphProto: nodes, initializers as arrays (in order),
    the types graphnet knows of its tensors, and the IR node behind each ONNX node."""

    nodes: list[onnx.NodeProto]
    arrays: dict[str, np.ndarray]
    types: dict[str, TensorType]
    origin: dict[str, Node]


def lower(graph: Graph, opset: int, outputs: dict[str, str], params: dict[str, np.ndarray],
          options: ExportOptions | None, top: bool) -> Lowered:
    """The graph's nodes lowered and tidied, computing `outputs` (ONNX name -> graph tensor) from
    its inputs and `params`. At the top level, each node output is named after the IR tensor it
    holds; a body (top=False) keeps builder names, which cannot shadow the enclosing graph's."""
    b = OnnxBuilder(opset, graph.types, symbol_sources(graph.inputs))
    b.reserve(outputs)
    env: dict[str, str] = {n: n for n in list(graph.inputs) + list(graph.params)}
    # ONNX names every tensor once: an input cannot share an output's name, a param is renamed
    clash = sorted(set(outputs) & set(graph.inputs))
    if clash:
        raise SpecError.at(graph.output_locs.get(clash[0], Location(graph.source)),
                           f"output '{clash[0]}' has the name of an input; ONNX needs every tensor named once")
    arrays: dict[str, np.ndarray] = {}
    for name, array in params.items():
        if name in outputs:
            env[name] = b.fresh(f"{name}#param")
        arrays[env[name]] = array
    named: dict[str, str] = {}      # builder name -> IR tensor name, at the top level
    for node in graph.nodes:
        b.hint, b.current = node.name, node
        ins = [env[t] if t is not None else None for t in node.inputs]
        outs = node.op.to_onnx(b, *_trim(ins))
        outs = (outs,) if isinstance(outs, str) else tuple(outs)
        for t, o in zip(node.outputs, outs):
            env[t] = o
            b.types[o] = graph.types[t]
            if top and t not in outputs:
                named.setdefault(o, t)
    arrays.update(b.arrays)
    nodes = b.nodes
    produced = {o for n in nodes for o in n.output}
    renames: dict[str, str] = {}
    for out_name, tensor in outputs.items():
        src = env[tensor]
        # Name the producing node's output after the graph output, unless it is also read under
        # its own name elsewhere as another output; inputs and params need an Identity.
        if src in produced and src not in renames and src not in outputs:
            renames[src] = out_name
        else:
            nodes.append(helper.make_node("Identity", [src], [out_name], name=f"{out_name}#Identity"))
        b.types[out_name] = graph.types[tensor]
    for o, t in named.items():      # 'layer1.0.conv1.conv', not 'layer1.0.conv1.conv/1'
        if o in produced and o not in renames:
            renames[o] = t
    for n in nodes:
        n.input[:] = [renames.get(x, x) for x in n.input]
        n.output[:] = [renames.get(x, x) for x in n.output]
    types = dict(b.types)
    types.update({new: b.types[old] for old, new in renames.items() if old in b.types})
    nodes = tidy(nodes, arrays, types, set(outputs), opset, options or ExportOptions())
    return Lowered(nodes, arrays, types, b.origin)


def lower_graph(graph: Graph, opset: int, outputs: dict[str, str], name: str) -> onnx.GraphProto:
    """The GraphProto of a Scan's body: it reads the enclosing graph's params by name, and holds
    the few constants its own ops make."""
    low = lower(graph, opset, outputs, {}, ExportOptions(fold_batch_norm=False, drop_zero_states=False), top=False)
    onnx_meta.name_nodes(low.nodes, low.origin)
    inputs = [onnx_meta.value_info(n, t) for n, t in graph.inputs.items()]
    outs = [onnx_meta.value_info(n, graph.types[t]) for n, t in outputs.items()]
    return helper.make_graph(low.nodes, name, inputs, outs,
                             [numpy_helper.from_array(contiguous(a), k) for k, a in low.arrays.items()])


def lowered_model(graph: Graph, weights: dict[str, np.ndarray], opset: int = 17,
                  options: ExportOptions | None = None) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model without initializers, and its initializers as arrays (views of `weights` where
    they are the weights), in order."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset} is not supported; use {MIN_OPSET} to {MAX_OPSET}")
    options = options or ExportOptions()
    known = Known(weights)
    info, original = graph.info, graph
    graph = fuse_recurrent_cells(graph, known)    # ONNX has these cells as ops
    params = {p: np.asarray(known[p], dtype=graph.params[p].type.dtype) for p in graph.params}
    low = lower(graph, opset, graph.outputs, params, options, top=True)
    onnx_meta.name_nodes(low.nodes, low.origin)
    inputs = [onnx_meta.value_info(n, t, dict(info.input_docs).get(n, "")) for n, t in graph.inputs.items()]
    outputs = [onnx_meta.value_info(n, low.types[n]) for n in graph.outputs]
    g = helper.make_graph(low.nodes, graph.name, inputs, outputs, doc_string=info.doc)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)
    if options.dtype == "float16":
        to_float16(model, low.arrays, low.types, options.io_dtype or "float32")
    onnx_meta.annotate(model, original, low.arrays, low.types, options)
    return model, low.arrays


def to_onnx(graph: Graph, weights: dict[str, np.ndarray], opset: int = 17,
            options: ExportOptions | None = None) -> onnx.ModelProto:
    """The model in memory, its initializers holding the weights."""
    model, arrays = lowered_model(graph, weights, opset, options)
    model.graph.initializer.extend(numpy_helper.from_array(contiguous(a), k) for k, a in arrays.items())
    return model


# Protobuf cannot serialize a message of 2 GiB or more; above this many bytes of weights (128 MiB
# left for the graph itself) they go to a file of their own beside the model.
EXTERNAL_DATA_ABOVE = (1 << 31) - (1 << 27)


def export(graph: Graph, weights: dict[str, np.ndarray], path: str | Path, opset: int = 17,
           external_data: bool | None = None, options: ExportOptions | None = None,
           progress=None) -> onnx.ModelProto:
    """Write the model to `path` once onnx's full checker accepts it. The weights go to
    '<name>.data' beside it (ONNX external data) when they would pass protobuf's 2 GiB limit, or
    when `external_data` asks. Each file is written whole under a temporary name in the same folder
    and renamed into place, so a failure never leaves a partial or clobbered file (onnx_write.py).
    `progress(done, total)`, when given, is called with the bytes of weights written so far.
    Returns the model as written, less its weights: each initializer has its name, type and dims,
    and those of 1 KiB or more no data (read the file for them)."""
    model, arrays = lowered_model(graph, weights, opset, options)
    if external_data is None:
        external_data = sum(a.nbytes for a in arrays.values()) > EXTERNAL_DATA_ABOVE
    if external_data:
        _check_data_name(Path(path).name + ".data", Path(path))
    return onnx_write.write(model, arrays, Path(path), external_data, progress)


def _check_data_name(name: str, path: Path) -> None:
    """Refuse a model name whose data file's name ONNX cannot hold: the model stores it as UTF-8
    text, and onnx's checker reads a name starting with '..' as a path out of the model's folder."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError.at(Location(str(path)), "with external data the model names its data file in UTF-8, "
                           "and this file name is not UTF-8; choose another name") from None
    if name.startswith(".."):
        raise SpecError.at(Location(str(path)), f"with external data the data file would be '{name}', which "
                           "onnx's checker takes for a path outside the model's folder; choose a name that "
                           "does not start with '..'")


def _trim(values: list):
    while values and values[-1] is None:
        values = values[:-1]
    return values
