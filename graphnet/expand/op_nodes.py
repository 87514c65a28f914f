"""Op nodes: a node's attributes validated into its op, its inputs matched to the op's declared
inputs, its shape rule applied, and the typed node added to the graph."""

from __future__ import annotations

from typing import Literal as TypingLiteral, get_args, get_origin

from pydantic import ValidationError

from .. import expr
from ..dims import MAX_RANK, DimTooLarge, dim_prod
from ..errors import did_you_mean
from ..graph import Frame, Node
from ..ops import OPS, Op, ShapeError, TensorType
from ..spec import NodeSpec
from .names import tensor_names
from .scope import eval_value, literal_hint, show, strip_literals, text_value
from .state import Absent, Body, Expansion, Failed, Result, Tensor


def expand_op(ex: Expansion, body: Body, node: NodeSpec, path: str, scope: dict, inputs, item_attrs: dict) -> Result:
    op_name = node.op
    cls = OPS[op_name]
    op = make_op(ex, node, cls, scope, path, item_attrs)
    args = bind_op_inputs(ex, node, cls, path, inputs)
    types = [a.type if a is not None else None for a in args]
    try:
        out_types = op.infer(*_trim_none(types))
    except (ShapeError, DimTooLarge) as e:
        shown = ", ".join(f"{n}: {t.type}" for n, t in zip(_input_names(cls, len(args)), args) if t is not None)
        ex.report_node(body, node.loc, path, op_name, f"{e}" + (f" (inputs: {shown})" if shown else ""))
    if isinstance(out_types, TensorType):
        out_types = (out_types,)
    try:    # the summary multiplies these out later: a formula past dims.MAX_TERMS fails here, located
        for t in out_types:
            dim_prod(t.shape)
        op.macs([t for t in types if t is not None], list(out_types))
    except DimTooLarge as e:
        ex.report_node(body, node.loc, path, op_name, f"its element count or MACs: {e}")
    for t in out_types:
        if len(t.shape) > MAX_RANK:
            ex.report_node(body, node.loc, path, op_name, f"output has rank {len(t.shape)}, "
                           f"over the limit of {MAX_RANK} dims (dims.MAX_RANK)")
        for i, d in enumerate(t.shape):
            if any(abs(c) > expr.MAX_INT for c in d.terms.values()):
                ex.report_node(body, node.loc, path, op_name, f"output dim {i} is {d}, beyond 2^62")
    return add_node(ex, body, node, path, op, args, out_types)


def add_node(ex: Expansion, body: Body, node: NodeSpec, path: str, op: Op, args: list,
             out_types) -> Result:
    """The typed node joins the graph; its outputs, by name, are what the body sees."""
    clash = ex.claim(path, "a node")
    if clash:
        ex.report_node(body, node.loc, path, node.op or f"scan {node.scan}", clash)
    names = op.output_names()
    tensors = tensor_names(path, names)
    ex.types.update(zip(tensors, out_types))
    trace = (Frame(node.loc, path, body.block_name),) + body.trace
    ex.nodes.append(Node(path, op, tuple(a.name if a is not None else None for a in args), tuple(tensors), trace))
    return Result({n: Tensor(t, ty) for n, t, ty in zip(names, tensors, out_types)}, "op")


def make_op(ex: Expansion, node: NodeSpec, cls: type[Op], scope: dict, path: str, item_attrs: dict) -> Op:
    attrs = {}
    literals = {}
    for key, raw in {**node.attrs, **item_attrs}.items():
        loc = node.loc_of("for_each") if key in item_attrs else node.loc_of("attrs", key)
        if isinstance(raw, str) and _is_text_field(cls, key):
            attrs[key] = text_value(raw, scope)
            continue
        value = eval_value(ex, raw, scope, loc, True, None if key in item_attrs else node.raw_at("attrs", key))
        value, lits = strip_literals(value)
        attrs[key] = value
        if lits:
            literals[key] = lits[0]
    try:
        return cls.model_validate(attrs)
    except ValidationError as e:
        fields = list(cls.model_fields)
        for err in _merge_union_errors(e.errors()):
            key = str(err["loc"][0]) if err["loc"] else ""
            if err["type"] == "extra_forbidden":
                ex.diags.add(node._raw["attrs"].key_locs.get(key, node.loc) if node._raw and "attrs" in node._raw else node.loc,
                             f"node '{path}' ({cls.name}): unknown attribute '{key}'{did_you_mean(key, fields)}"
                             f" (attributes: {', '.join(fields) or 'none'})")
            elif err["type"] == "missing":
                ex.diags.add(node.loc, f"node '{path}' ({cls.name}): missing attribute '{key}'")
            elif key in literals:
                lit = literals[key]
                ex.diags.add(lit.loc, f"node '{path}' ({cls.name}): attribute '{key}': "
                             f"{lit.error.message} in '{lit.text}'{literal_hint(lit, ex)}")
            else:
                value = attrs.get(key)
                hint = did_you_mean(value, _words(cls.model_fields[key].annotation)) if isinstance(value, str) \
                    and key in cls.model_fields else ""
                ex.diags.add(node.loc_of("attrs", key), f"node '{path}' ({cls.name}): attribute "
                             f"'{key}': {err['msg']} (got {show(value)}){hint}")
        raise Failed()


def bind_op_inputs(ex: Expansion, node: NodeSpec, cls: type[Op], path: str, inputs) -> list:
    """Match given inputs to the op's declared inputs; None marks an omitted optional one."""
    declared = cls.inputs
    shown = ", ".join(map(str, declared))
    if isinstance(inputs, dict):
        names = [port.name for port in declared]
        unknown = [k for k in inputs if k not in names]
        if unknown:
            ex.fail(node.loc_of("inputs", unknown[0]),
                    f"op '{cls.name}' has no input '{unknown[0]}'{did_you_mean(unknown[0], names)} "
                    f"(inputs: {', '.join(names)})")
        inputs = [inputs.get(n, Absent()) for n in names]
        while inputs and isinstance(inputs[-1], Absent):
            inputs.pop()
    variadic = any(port.variadic for port in declared)
    required = [port.name for port in declared if not port.optional and not port.variadic]
    if not variadic and len(inputs) > len(declared):
        ex.fail(node.loc_of("inputs"), f"op '{cls.name}' takes {len(declared)} input"
                f"{'s' if len(declared) != 1 else ''} ({shown}), got {len(inputs)}")
    out = []
    for i, value in enumerate(inputs):
        if isinstance(value, Absent):
            port = declared[min(i, len(declared) - 1)]
            if not port.optional:
                ex.fail(node.loc_of("inputs"), f"op '{cls.name}' input '{port}' is required but was not given")
            out.append(None)
        else:
            out.append(value)
    if len(out) < len(required) or (variadic and not out):
        missing = required[len(out):] or [declared[0].name]
        ex.fail(node.loc if node.inputs is None else node.loc_of("inputs"),
                f"node '{path}' ({cls.name}): missing input '{missing[0]}' "
                f"(the op takes {shown}; got {len(out)})")
    return out


def _merge_union_errors(errors: list[dict]) -> list[dict]:
    """One error per attribute: a value that fits no member of a union (pads: int | list | 'same')
    gets one pydantic error per member; say them once, joined with 'or'."""
    merged: dict[tuple, dict] = {}
    for err in errors:
        key = tuple(err["loc"][:1])
        if key in merged and err["type"] not in ("extra_forbidden", "missing"):
            merged[key] = {**merged[key], "msg": f"{merged[key]['msg']}; or {err['msg']}"}
        else:
            merged.setdefault(key, err)
    return list(merged.values())


def _words(annotation) -> list[str]:
    """The words an attribute's type allows, in its Literal members however nested (pads: int |
    list | Literal['same', ...]), for a did-you-mean on a misspelt one ('sme')."""
    if get_origin(annotation) is TypingLiteral:
        return [a for a in get_args(annotation) if isinstance(a, str)]
    return [w for a in get_args(annotation) for w in _words(a)]


def _is_text_field(cls: type[Op], key: str) -> bool:
    field = cls.model_fields.get(key)
    return field is not None and (field.annotation is str or get_origin(field.annotation) is TypingLiteral)


def _trim_none(types: list):
    while types and types[-1] is None:
        types = types[:-1]
    return types


def _input_names(cls: type[Op], n: int) -> list[str]:
    """The names of an op's first n inputs as messages show them: `xs[0]`, `xs[1]` for a variadic one."""
    fixed = [port.name for port in cls.inputs if not port.variadic]
    rest = [f"{port.name}[{i}]" for port in cls.inputs if port.variadic for i in range(n - len(fixed))]
    return (fixed + rest)[:n]
