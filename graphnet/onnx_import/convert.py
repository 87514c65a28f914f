"""ONNX graph -> a flat list of graphnet op nodes, typed as they are made.

Every ONNX value becomes one of three things: a graphnet tensor (`Tensor`, made by an input, a param
or a node), a constant known at import time (`Const`: an initializer, a Constant node, or anything
computed from those alone, folded by the graphnet op's own kernel), or a vector of dims known
symbolically (`Dims`: what Shape gives, and the integer arithmetic on it that exporters write
before a Reshape). Consts and Dims become attributes where an op takes them as attributes (Reshape's
shape, Slice's bounds, Clip's bounds); used as data, a small const becomes a `constant` node, a
large one or an initializer a param. A dim that is only known at run time from values (not shapes)
cannot be written in a spec: that is an error naming the node.

The per-op rules are in ops_map.py; this module holds the values, the naming and the node loop.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper
from pydantic import ValidationError

from ..dims import Dim
from ..errors import Diagnostic, Location, SpecError
from ..ops import OPS, Op, ShapeError, TensorType
from ..types import DTYPE_TABLE

FOLD_LIMIT = 1 << 16          # a folded constant larger than this many elements stays a node
LITERAL_LIMIT = 16            # constants up to this many elements are written as literals
ONNX_TO_DTYPE = {t.onnx: name for name, t in DTYPE_TABLE.items()}


class ImportFailure(Exception):
    """One node cannot be imported; the message says why (node and op are added where caught)."""


@dataclass
class Tensor:
    ref: str                   # how the spec refers to it: an input, a param key, `node` or `node.out`
    type: TensorType


@dataclass
class Const:
    array: np.ndarray
    name: str | None = None    # an initializer's ONNX name: it becomes a param of that name


@dataclass
class Dims:
    dims: list[Dim]
    scalar: bool = False


Value = Tensor | Const | Dims


@dataclass
class INode:
    name: str                  # the spec's node name (an identifier)
    op: Op
    inputs: list[str | None]   # refs
    outputs: list[str]         # refs
    types: list[TensorType]
    onnx_name: str
    module: str                # the module path it belongs to ('layer1.0.conv1'), from names


@dataclass
class IParam:
    key: str                   # the spec's param key (an identifier)
    path: str                  # its qualified name (the weights' key)
    array: np.ndarray
    onnx_name: str
    trainable: bool = True


@dataclass
class Imported:
    """The flat import: what emit.py writes as a spec and blocks.py folds into blocks."""

    name: str
    doc: str
    dims: list[str]
    inputs: dict[str, TensorType]
    params: dict[str, IParam]
    nodes: list[INode]
    outputs: dict[str, str]
    names: dict[str, str] = field(default_factory=dict)    # graphnet name -> ONNX name, where they differ


def identifier(text: str, fallback: str = "t") -> str:
    out = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    if not out:
        out = fallback
    return out if re.match(r"[A-Za-z_]", out) else f"{fallback}_{out}"


def path_name(text: str) -> str:
    """A qualified name as the spec's `path` allows: dot-separated segments of [A-Za-z0-9_-]."""
    segments = [re.sub(r"[^A-Za-z0-9_-]+", "_", s) for s in text.split(".")]
    segments = [s for s in segments if s]
    return ".".join(segments) or "param"


def module_of(onnx_node_name: str) -> str:
    """The module path in a PyTorch export's node name: '/layer1/layer1.0/conv1/Conv' ->
    'layer1.0.conv1' (a scope repeats its parent's qualified name, or adds a segment)."""
    parts = [p for p in onnx_node_name.split("/") if p][:-1]
    current, previous = "", ""
    for p in parts:
        # a scope names its module relative to its parent's ('layer1', then 'layer1.0')
        current = current + p[len(previous):] if previous and p.startswith(previous + ".") else \
            (f"{current}.{p}" if current else p)
        previous = p
    return path_name(current) if current else ""


class Converter:
    def __init__(self, model: onnx.ModelProto, display: str):
        self.model = model
        self.display = display
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.original_opset = self.opset     # before onnx's version converter brought it up
        self.values: dict[str, Value] = {}
        self.nodes: list[INode] = []
        self.params: dict[str, IParam] = {}
        self.inputs: dict[str, TensorType] = {}
        self.dims: dict[str, None] = {}
        self.taken: set[str] = set()
        self.paths: set[str] = set()
        self.literals: dict[tuple, Tensor] = {}
        self.param_of: dict[int, Tensor] = {}
        self.names: dict[str, str] = {}
        self.node: onnx.NodeProto | None = None
        self.frozen: set[str] = set()      # initializers that are buffers (batch norm statistics)
        self._types: dict[str, TensorType] = {}
        self.scoped: dict[str, str] = {}   # ONNX name -> the name its node's module gives it
        self._suffixes: dict[str, int] = {}        # base -> the next suffix to try, for fresh
        self._path_suffixes: dict[str, int] = {}   # and for fresh_path
        self.read: set[str] = set()        # the values some node or the graph's outputs read

    # -- errors ------------------------------------------------------------------------------
    def error(self, message: str) -> SpecError:
        return SpecError.at(Location(self.display), message)

    # -- names -------------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        return _unused(identifier(base, "n"), self.taken, self._suffixes)

    def fresh_path(self, base: str) -> str:
        return _unused(path_name(base), self.paths, self._path_suffixes)

    # -- inputs ------------------------------------------------------------------------------
    def add_input(self, vi: onnx.ValueInfoProto) -> None:
        t = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise self.error(f"input '{vi.name}' is not a tensor (sequences and maps are not supported)")
        dtype = ONNX_TO_DTYPE.get(t.elem_type)
        if dtype is None:
            raise self.error(f"input '{vi.name}' has dtype {onnx.TensorProto.DataType.Name(t.elem_type)}, "
                             f"which graphnet has not (it has {', '.join(DTYPE_TABLE)})")
        if not t.HasField("shape"):
            raise self.error(f"input '{vi.name}' has no shape; graphnet needs its rank")
        shape = []
        for axis, d in enumerate(t.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(Dim(d.dim_value))
            else:
                sym = identifier(d.dim_param, "d") if d.dim_param else identifier(f"{vi.name}_{axis}", "d")
                self.dims[sym] = None
                shape.append(Dim(sym))
        key = self.fresh(vi.name)
        if key != vi.name:
            self.names[key] = vi.name
        tt = TensorType(dtype, tuple(shape))
        self.inputs[key] = tt
        self.values[vi.name] = Tensor(key, tt)

    # -- values as the converters need them --------------------------------------------------
    def value(self, name: str) -> Value | None:
        if not name:
            return None
        if name not in self.values:
            raise ImportFailure(f"input '{name}' is not produced by any node, input or initializer")
        return self.values[name]

    def tensor(self, v: Value | None) -> str | None:
        """The ref of `v` as data: a const becomes a literal node or a param."""
        if v is None:
            return None
        if isinstance(v, Tensor):
            return v.ref
        if isinstance(v, Dims):
            if not all(d.is_const() for d in v.dims):
                raise ImportFailure("a shape computed from free dims is used as data; graphnet can only use "
                                    f"it as a size ({[str(d) for d in v.dims]})")
            v = Const(np.asarray([d.value for d in v.dims], dtype=np.int64).reshape(() if v.scalar else (-1,)))
        return self.materialize(v).ref

    def type_of(self, v: Value) -> TensorType:
        if isinstance(v, Tensor):
            return v.type
        if isinstance(v, Const):
            return TensorType(self.dtype_of(v.array), v.array.shape)
        return TensorType("int64", () if v.scalar else (len(v.dims),))

    def dtype_of(self, array: np.ndarray) -> str:
        name = array.dtype.name
        if name not in DTYPE_TABLE:
            raise ImportFailure(f"a tensor of dtype {name}, which graphnet has not")
        return name

    def materialize(self, c: Const) -> Tensor:
        array = c.array
        dtype = self.dtype_of(array)
        # a non-finite literal (an attention mask's -inf) is written .inf / .nan: the spec holds it
        literal_dtypes = OPS["constant"].model_fields["dtype"].annotation.__args__
        if c.name is None and array.size <= LITERAL_LIMIT and dtype in literal_dtypes:
            # one literal per module (per scope of the node that reads it): shared across layers,
            # a literal would wire them together and keep block recovery from folding them
            scope = module_of(self.node.name) if self.node is not None and self.node.name.startswith("/") else ""
            key = (scope, dtype, array.shape, array.tobytes())
            if key not in self.literals:
                op = OPS["constant"](value=array.tolist(), dtype=dtype)
                self.literals[key] = self.add_node(op, [], self.hint("const"))[0]
            return self.literals[key]
        if id(c) in self.param_of:
            return self.param_of[id(c)]
        onnx_name = c.name or (f"{self.node.name or self.node.op_type}.value" if self.node else "value")
        path = self.fresh_path(self.scoped.get(onnx_name, onnx_name))
        key = self.fresh(path.replace(".", "_"))
        if path != onnx_name:
            self.names[path] = onnx_name
        self.params[key] = IParam(key, path, np.ascontiguousarray(array), onnx_name,
                                  trainable=c.name not in self.frozen)
        t = Tensor(key, TensorType(dtype, array.shape))
        self._types[key] = t.type
        self.param_of[id(c)] = t
        return t

    def hint(self, suffix: str) -> str:
        node = self.node
        base = (node.name or node.op_type) if node is not None else "node"
        return f"{base.strip('/')}_{suffix}"

    # -- making nodes ------------------------------------------------------------------------
    def make_op(self, op_name: str, attrs: dict) -> Op:
        try:
            return OPS[op_name](**attrs)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ImportFailure(f"graphnet's {op_name} cannot take {where}={attrs.get(err['loc'][0])!r}: "
                                f"{err['msg']}") from None

    def emit(self, op_name: str, inputs: list[Value | None], attrs: dict | None = None,
             name: str | None = None) -> list[Value]:
        """The values the graphnet op gives on these inputs: folded to consts when all inputs are
        consts and the result is small, else a node."""
        op = self.make_op(op_name, attrs or {})
        types = [self.type_of(v) if v is not None else None for v in inputs]
        while types and types[-1] is None:
            types.pop()
        try:
            out = op.infer(*types)
        except ShapeError as e:
            raise ImportFailure(f"graphnet's {op_name}: {e}") from None
        outs = (out,) if isinstance(out, TensorType) else tuple(out)
        foldable = self._foldable(inputs, outs)
        if foldable:
            arrays = [self._array(v) for v in inputs]
            while arrays and arrays[-1] is None:
                arrays.pop()
            result = op.compute(*arrays)
            results = (result,) if isinstance(result, np.ndarray) or np.isscalar(result) else tuple(result)
            return [Const(np.asarray(r, dtype=t.dtype)) for r, t in zip(results, outs)]
        refs = [self.tensor(v) for v in inputs]
        return self.add_node(op, refs, name or self.hint(op_name), outs)

    @staticmethod
    def _foldable(inputs, outs) -> bool:
        for v in inputs:
            if isinstance(v, Tensor) or (isinstance(v, Dims) and not all(d.is_const() for d in v.dims)):
                return False
            # a float initializer is a weight: kept as the param of its name (Gemm's transB reads
            # it transposed), not folded into an anonymous constant
            if isinstance(v, Const) and v.name and v.array.dtype.kind == "f" and v.array.size > 1:
                return False
        if not all(d.is_const() for t in outs for d in t.shape):
            return False
        return sum(int(np.prod([d.value for d in t.shape])) for t in outs) <= FOLD_LIMIT

    def _array(self, v):
        if v is None:
            return None
        if isinstance(v, Const):
            return v.array
        return np.asarray([d.value for d in v.dims], dtype=np.int64).reshape(() if v.scalar else (-1,))

    def add_node(self, op: Op, refs: list[str | None], base: str, outs=None) -> list[Tensor]:
        if outs is None:
            out = op.infer(*[self.lookup_type(r) for r in refs])
            outs = (out,) if isinstance(out, TensorType) else tuple(out)
        name = self.fresh(base)
        names = op.output_names()
        if len(outs) == 1:
            out_refs = [name]
        else:
            out_refs = [f"{name}.{n}" for n in names]
        onnx_name = self.node.name if self.node is not None else ""
        module = module_of(onnx_name) if onnx_name.startswith("/") else ""
        while refs and refs[-1] is None:
            refs = refs[:-1]
        node = INode(name, op, list(refs), out_refs, list(outs), onnx_name, module)
        self.nodes.append(node)
        self._types.update(zip(out_refs, outs))
        return [Tensor(r, t) for r, t in zip(out_refs, outs)]

    def lookup_type(self, ref):
        return self._types[ref] if ref is not None else None

    # -- the loop ----------------------------------------------------------------------------
    def run(self, converters: dict, check_supported) -> Imported:
        """The import, with `converters` (ONNX op type -> converter) and `check_supported`, which
        refuses a graph with ops none converts before any is converted."""
        graph = self.model.graph
        check_supported(self, graph)
        self.read = {i for n in graph.node for i in n.input if i} | {o.name for o in graph.output}
        for node in graph.node:
            if node.op_type == "BatchNormalization":
                self.frozen.update(node.input[3:5])
        initialized = {t.name for t in graph.initializer}
        ours = self.model.producer_name == "graphnet"
        for t in graph.initializer:
            # graphnet's exporter names the literals it writes '<node>/const'; they stay literals
            literal = ours and re.search(r"/const(/\d+)?$", t.name) is not None
            self.values[t.name] = Const(numpy_helper.to_array(t), None if literal else t.name)
        if ours:
            self._untidy_transposes()
        self._scope_names(graph)
        for vi in graph.input:
            if vi.name not in initialized:
                self.add_input(vi)
        self._types.update({t.ref: t.type for t in self.values.values() if isinstance(t, Tensor)})
        diags = []
        for i, node in enumerate(graph.node):
            self.node = node
            try:
                outs = converters[node.op_type](self, node, _attrs(node))
            except (ImportFailure, ShapeError) as e:
                diags.append(Diagnostic(Location(self.display), f"node '{node.name or '#' + str(i)}' ({node.op_type}): {e}"))
                break
            except (ValueError, TypeError, KeyError, IndexError, ArithmeticError) as e:
                # an attribute or input of a shape this converter did not foresee: said, not a traceback
                diags.append(Diagnostic(Location(self.display), f"node '{node.name or '#' + str(i)}' ({node.op_type}): "
                                        f"cannot be imported ({type(e).__name__}: {e})"))
                break
            for name, v in zip(node.output, outs):
                if name:
                    self.values[name] = v
        if diags:
            raise SpecError(diags)
        self.node = None
        outputs = {}
        for vi in graph.output:
            v = self.values.get(vi.name)
            if v is None:
                raise self.error(f"output '{vi.name}' is not produced by any node")
            key = identifier(vi.name, "out")
            if key in outputs:
                key = self.fresh(key)
            if key != vi.name:
                self.names[key] = vi.name
            try:
                ref = self.tensor(v)
            except ImportFailure as e:
                raise self.error(f"output '{vi.name}': {e}") from None
            outputs[key] = ref
        name = identifier(graph.name or "imported", "model")
        doc = f"Imported from an ONNX model ({self.model.producer_name or 'unknown producer'}, opset {self.opset})."
        return Imported(name, doc, list(self.dims), self.inputs, self.params, self.nodes, outputs, self.names)


    def _scope_names(self, graph) -> None:
        """An initializer the exporter named for itself ('onnx::Conv_193': PyTorch's name for a
        conv weight with its batch norm folded in) is named by the module of the node that reads
        it and its role there: 'layer1.0.conv1.weight'."""
        uses = Counter(i for n in graph.node if n.op_type != "Identity" for i in n.input)
        constant = {t.name for t in graph.initializer}
        constant.update(n.output[0] for n in graph.node if n.op_type == "Identity" and n.input[0] in constant)
        for node in graph.node:
            roles = _ROLES.get(node.op_type, ())
            module = module_of(node.name) if node.name.startswith("/") else ""
            for name, role in zip(node.input, roles):
                if role and module and name in constant and uses[name] == 1 and re.match(r"onnx::|_v_|\d+$", name):
                    self.scoped[name] = f"{module}.{role}"

    def _untidy_transposes(self) -> None:
        """graphnet's exporter stores a weight read only through a Transpose transposed, under the
        Transpose's name ('fc1.weight_t/1', onnx_tidy.py); its own files import back to the param
        ('fc1.weight') and the transpose, as the spec that wrote them had it."""
        for name, v in list(self.values.items()):
            m = re.fullmatch(r"(.+)_t(/\d+)?", name)
            if isinstance(v, Const) and m and v.array.ndim == 2:
                param = self.materialize(Const(np.ascontiguousarray(v.array.T), m.group(1)))
                self.values[name] = self.add_node(OPS["transpose"](), [param.ref], f"{m.group(1)}_t")[0]


_ROLES = {"Conv": (None, "weight", "bias"), "ConvTranspose": (None, "weight", "bias"),
          "Gemm": (None, "weight", "bias"), "MatMul": (None, "weight"),
          "BatchNormalization": (None, "weight", "bias", "running_mean", "running_var"),
          "LayerNormalization": (None, "weight", "bias"),
          # ONNX's own names for a recurrent layer's stacked weights: their layout (gates iofc) is
          # not torch's weight_ih_l0 (ifgo), so they are not given torch's names
          "LSTM": (None, "W", "R", "B"), "GRU": (None, "W", "R", "B"), "RNN": (None, "W", "R", "B")}


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        if a.ref_attr_name:
            raise ImportFailure(f"attribute '{a.name}' refers to a function attribute")
        out[a.name] = helper.get_attribute_value(a)
    return out


def _unused(base: str, taken: set[str], suffixes: dict) -> str:
    """`base`, else `base_2`, `base_3`... the first not in `taken`, which takes it. Where the next
    suffix to try is kept per base, so that thousands of nodes of one op type cost linear time."""
    name, k = base, suffixes.get(base, 2)
    while name in taken:
        name = f"{base}_{k}"
        k += 1
    suffixes[base] = k
    taken.add(name)
    return name
