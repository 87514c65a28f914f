"""The JSON Schema (draft 2020-12) of spec and library files, for editors: `graphnet schema`.

It is generated from the pydantic models in spec.py and the op registry, then made to say what the
loader accepts: the shorthand forms (`x: [B, 784]` for an input, `out: int` for an arg, `init:
zeros` or `{normal: {std: 0.02}}`), `op:` one of the registry's ops with that op's `attrs`, every
value that may be an expression also accepting a string, the one-kind and scan rules of a node, and
unknown keys refused wherever the loader refuses them. docs/graphnet.schema.json and
docs/graphnet-library.schema.json are this module's output (tests/test_schema.py keeps them current):

    graphnet schema > docs/graphnet.schema.json
    graphnet schema --library > docs/graphnet-library.schema.json

Editors (VS Code's YAML extension, yaml-language-server) validate with a draft-07 engine, so only
keywords that mean the same in draft-07 and 2020-12 are used: no prefixItems, dependentSchemas or
unevaluatedProperties, and nothing that constrains beside a `$ref`. `errorMessage` and
`patternErrorMessage` are VS Code's own annotations (other validators ignore them). What needs the
scope of a spec (names, shapes, expressions) is left to `graphnet validate`; see docs/editor.md.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from .init import SCHEMES, bare_option, scheme_options
from .ops import OPS, Op
from .spec import (NAME_PATTERN, ArgSpec, ArgType, BlockSpec, FusionSpec, InputSpec, LibraryFile, NodeSpec, ParamSpec,
                   SpecFile)

DRAFT = "https://json-schema.org/draft/2020-12/schema"
EXPRESSION = "an expression over the names in scope (dims, args, index, item, bound symbols)"
NAME_MESSAGE = "a name: letters, digits and _, not starting with a digit"

# Hover help for every key, from docs/spec.md. A `Field(description=...)` in spec.py wins over these.
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "SpecFile": {
        "": "A graphnet spec: one network as a dataflow graph of primitive ops and block calls "
            "(docs/spec.md). `graphnet validate` checks what this schema cannot: names, shapes, expressions.",
        "graphnet": "Format version: required, always 1.",
        "name": "The network's name: letters, digits and _, not starting with a digit.",
        "doc": "Free text.",
        "use": "Block libraries: `std` and/or .yaml files relative to this file's folder. A library's "
               "blocks are called as LIB.block (`std.linear`).",
        "dims": "Named sizes: a whole number, an expression over the dims above it, or ~ (null) for a "
                "free dim bound when the network runs. `--dim NAME=VALUE` overrides one.",
        "require": "Boolean expressions over the dims that must hold.",
        "inputs": "The graph's inputs: name -> shape (`x: [B, 784]`), or name -> {shape, dtype, optional, doc}.",
        "params": "Top-level weights: name -> {shape, init, dtype, trainable, if, doc}.",
        "blocks": "Blocks defined in this file, called by their bare name: name -> block.",
        "nodes": "The dataflow graph: a list of op nodes (`op:`), block nodes (`block:`) and scan nodes "
                 "(`scan:`). A node without `inputs` takes the previous node's output.",
        "outputs": "Output name -> a node, input or param reference (`node` or `node.output`).",
        "fuses_to": "Accepted as in a block, but a spec is never scanned, so it is unused.",
    },
    "LibraryFile": {
        "": "A graphnet block library (`use: [lib.yaml]` in a spec): blocks and the dims they share, no "
            "graph of its own (docs/spec.md#libraries-use).",
        "graphnet": "Format version: required, always 1.",
        "name": "The library's name, used as LIB in LIB.block; default: the file name without .yaml.",
        "doc": "Free text.",
        "use": "Other libraries this one calls: `std` and/or .yaml files relative to this file's folder.",
        "dims": "Whole numbers or expressions over the dims before them, visible to every block in the file.",
        "blocks": "The library's blocks: name -> block.",
    },
    "BlockSpec": {
        "": "A block: a subgraph with typed args, shape-checked inputs, its own params and named outputs.",
        "doc": "Free text.",
        "args": "The block's arguments: name -> {type, default, doc}, or name -> type (`out: int`). "
                "An arg without a default is required.",
        "dims": "Derived values, evaluated in order after the inputs are bound: name -> expression "
                "(`d_head: D // heads`). A free dim (~) is not allowed in a block.",
        "require": "Boolean expressions checked at every call, after the block dims.",
        "inputs": "name -> shape pattern (`x: [\"...\", D]`), or name -> {shape, dtype, optional, doc}. "
                  "A name not yet in scope binds to the actual dim; anything else must equal it.",
        "params": "The block's weights, named after the call (`fc1.weight`): name -> {shape, init, ...}.",
        "nodes": "The block's graph: op, block and scan nodes, as at the top level.",
        "outputs": "Output name -> a reference inside the block. Callers use `node.output`.",
        "fuses_to": "Recurrent cells: the fused op (rnn, lstm, gru) a scan of this block is, and what that "
                    "relies on; checked when the block is scanned (docs/spec.md#fused-recurrent-cells).",
    },
    "FusionSpec": {
        "": "A recurrent cell's declaration that a scan of it is one fused op: which inputs are its states, "
            "which output is stacked, which params are the op's weights and the order of their gate blocks.",
        "op": "The fused op: rnn, lstm or gru.",
        "states": "The carried inputs, each also an output of the same name, in the op's order (lstm: h, c).",
        "output": "The output stacked over the steps: the op's y, equal to the next first state.",
        "weights": "The op's weights -> the block's params: w (input weights), r (recurrent weights), "
                   "wb and rb (their biases).",
        "gates": "The gate blocks of every weight, in their order, by the op's gate names (rnn: i; "
                 "lstm: i, o, f, c; gru: z, r, h).",
        "attrs": "The op's other attributes (gru: linear_before_reset).",
    },
    "InputSpec": {
        "": "An input: its shape and dtype. `x: [B, 784]` is short for `x: {shape: [B, 784]}`.",
        "shape": "List of dims: numbers, dim names, expressions; in a block, a pattern (names bind, "
                 "\"...\" matches any number of axes).",
        "dtype": "The exact dtype the tensor must have.",
        "optional": "Block inputs: the caller may leave it out (it is then absent).",
        "doc": "Free text.",
    },
    "ArgSpec": {
        "": "A block argument. `name: int` is short for `name: {type: int}`.",
        "type": "int (a whole number or a symbolic dim), float, bool, str, list or any (the default).",
        "default": "Used as written when the caller does not give the arg; without it the arg is required.",
        "doc": "Free text.",
    },
    "ParamSpec": {
        "": "A weight: shape, init scheme, dtype; named after the block call that makes it.",
        "shape": "List of dims; after expansion every dim must be a known number.",
        "init": "An init scheme: a name (`zeros`) or a one-key mapping `{scheme: {option: value}}` "
                "(`{normal: {std: 0.02}}`; `{constant: 0.5}`).",
        "dtype": "The param's dtype.",
        "trainable": "false for buffers such as batch-norm running statistics.",
        "if": "A boolean expression; when false the param does not exist.",
        "path": "A name template, the param's name below the call instead of its key: segments "
                "separated by '.', each of letters, digits, '_' and '-', with {expr} parts "
                "(`weight_ih{suffix}`).",
        "doc": "Free text.",
    },
    "NodeSpec": {
        "": "A node: exactly one of `op` (a primitive op with `attrs`), `block` (a block call with "
            "`args`) or `scan` (a block stepped through a sequence).",
        "name": "The node's name; default: its index in the list, \"0\", \"1\", ... (quote it when referenced).",
        "op": "A primitive op, configured by `attrs` (docs/spec.md#ops).",
        "block": "A block: `name` for this file's blocks, `lib.name` for a library's (`std.linear`).",
        "scan": "A block applied once per step along `axis` of the `over` inputs, carrying the other "
                "inputs as state.",
        "over": "Scan nodes: the block inputs that are sequences, sliced one step at a time.",
        "axis": "Scan nodes: the sequence axis of the `over` inputs and of the stacked outputs (1: batch first).",
        "reverse": "Scan nodes: run from the last step to the first.",
        "inputs": "A reference (`x`, `fc1`, `halves.y1`), a list in the op's or block's input order "
                  "(null leaves out an optional input), or a mapping input name -> reference. "
                  "Default: the previous node's output.",
        "attrs": "Op nodes: the op's attributes; values are expressions or literals.",
        "args": "Block and scan nodes: the block's arguments; values are expressions or literals.",
        "repeat": "A whole number (or expression) of chained copies, named name.0, name.1, ...; "
                  "`index` is the copy's number.",
        "for_each": "A list (taken as written) or an expression giving one: one chained copy per item, "
                    "with `index` and `item` in scope. A mapping item gives that copy's args or attrs.",
        "if": "true, false or a boolean expression; when false the node is skipped and forwards its first input.",
        "path": "A name template, what the node's op, nodes and params are named under instead of its "
                "name (per copy for repeat/for_each): segments separated by '.', each of letters, "
                "digits, '_' and '-', with {expr} parts (`features.{index + 1}`); \"\" on a block "
                "or scan node adds no segment.",
        "doc": "Free text.",
    },
}


def spec_schema(library: bool = False) -> dict[str, Any]:
    """The JSON Schema of spec files, or with `library` of block library files."""
    root = LibraryFile if library else SpecFile
    raw = root.model_json_schema(ref_template="#/$defs/{model}")
    defs = raw.pop("$defs")
    for name, schema in [(root.__name__, raw), *defs.items()]:
        if name in _MODELS:
            _describe(schema, _MODELS[name])
    defs.pop("JsonValue", None)
    raw, defs = _inline_json_value(raw), _inline_json_value(defs)

    _top_level(raw, library)
    _block_fields(defs["BlockSpec"], top=None if library else raw)
    defs["InputSpec"]["properties"]["shape"] = {**_SHAPE_REF, "description": _describe_key(InputSpec, "shape")}
    defs["ParamSpec"]["properties"]["shape"] = {**_SHAPE_REF, "description": _describe_key(ParamSpec, "shape")}
    defs["ParamSpec"]["properties"]["init"] = {**_init_schema(), "description": _describe_key(ParamSpec, "init")}
    blocks = _std_blocks()
    _node(defs["NodeSpec"], blocks)

    defs["expression"] = {"type": "string", "description": EXPRESSION + "; a plain word that is not a "
                          "known name stays a literal string (same, gelu)"}
    defs["shape"] = {"type": "array", "items": {"anyOf": [
        {"type": "integer"}, {"type": "string", "description": "a dim name, \"...\" (in a block input "
                                                               "pattern) or " + EXPRESSION}]}}
    for cls in _init_classes():
        defs[f"init.{cls.model_fields['kind'].default}"] = _init_options(cls)
    for name, cls in OPS.items():
        if _writable(cls):
            defs[f"attrs.{name}"] = _op_attrs(cls)
    for name, spec in blocks.items():
        defs[f"args.std.{name}"] = _block_args(f"std.{name}", spec)

    title = "graphnet library file" if library else "graphnet spec"
    out = {"$schema": DRAFT, "title": title, **_strip_titles(raw)}
    out["$defs"] = {k: _strip_titles(v) for k, v in defs.items()}
    return out


def _std_blocks() -> dict[str, BlockSpec]:
    """std's blocks by name, in name order (the schema's bytes must not follow file order)."""
    from .load import load_std
    return dict(sorted(load_std().blocks.items()))


def schema_json(library: bool = False) -> str:
    """The schema as `graphnet schema` prints it and docs/graphnet*.schema.json hold it."""
    return json.dumps(spec_schema(library), indent=2) + "\n"


def print_schema(library: bool = False) -> int:
    """`graphnet schema [--library]`."""
    print(schema_json(library), end="")
    return 0


_MODELS: dict[str, type[BaseModel]] = {
    m.__name__: m for m in (SpecFile, LibraryFile, BlockSpec, InputSpec, ArgSpec, ParamSpec, NodeSpec, FusionSpec)}
_EXPR = {"$ref": "#/$defs/expression"}
_SHAPE_REF = {"$ref": "#/$defs/shape"}


# -- the spec models ---------------------------------------------------------------------------

def _describe_key(model: type[BaseModel], key: str) -> str:
    field = next((f for n, f in model.model_fields.items() if (f.alias or n) == key), None)
    return (field.description if field is not None and field.description else None) \
        or DESCRIPTIONS.get(model.__name__, {}).get(key, "")


def _describe(schema: dict, model: type[BaseModel]) -> None:
    if DESCRIPTIONS.get(model.__name__, {}).get(""):
        schema["description"] = DESCRIPTIONS[model.__name__][""]
    for key, prop in schema.get("properties", {}).items():
        text = _describe_key(model, key)
        if text:
            prop["description"] = text


def _inline_json_value(schema: Any) -> Any:
    """pydantic's JsonValue placeholder is any JSON value: `{}` in place."""
    if isinstance(schema, dict):
        if schema.get("$ref") == "#/$defs/JsonValue":
            return {k: v for k, v in schema.items() if k != "$ref"}
        return {k: _inline_json_value(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline_json_value(v) for v in schema]
    return schema


def _top_level(raw: dict, library: bool) -> None:
    props = raw["properties"]
    props["graphnet"] = {"const": 1, "description": props["graphnet"]["description"],
                         "errorMessage": "unsupported format version; this graphnet reads 'graphnet: 1'"}
    props["use"]["items"] = {"type": "string", "pattern": r"^(std|[^/].*\.ya?ml)$",
                             "patternErrorMessage": "std, or a .yaml file relative to this file's folder"}
    if library:
        props["dims"]["additionalProperties"] = {"anyOf": [{"type": "integer"}, _EXPR]}
    else:
        props["name"]["patternErrorMessage"] = NAME_MESSAGE
    # In the order docs/spec.md lays a file out (pydantic puts the inherited BlockSpec keys first).
    order = ["graphnet", "name", "doc", "use", "dims", "require", "inputs", "params", "blocks", "nodes", "outputs"]
    raw["properties"] = {k: props[k] for k in sorted(props, key=lambda k: order.index(k) if k in order else len(order))}


def _block_fields(block: dict, top: dict | None) -> None:
    """A block's (and a spec's) args, dims, inputs, params and outputs: valid names, shorthands."""
    for schema in (s for s in (block, top) if s is not None):
        props = schema["properties"]
        props["inputs"]["additionalProperties"] = {"anyOf": [
            {"$ref": "#/$defs/InputSpec"},
            {**_SHAPE_REF, "description": "The input's shape; short for {shape: [...]}."}]}
        props["args"]["additionalProperties"] = {"anyOf": [
            {"$ref": "#/$defs/ArgSpec"},
            {"enum": list(get_args(ArgType)), "description": "The arg's type; short for {type: ...}."}]}
        for key in ("args", "dims", "inputs", "params", "outputs"):
            props[key]["propertyNames"] = {"pattern": NAME_PATTERN, "patternErrorMessage": NAME_MESSAGE}
    # A block's dims are derived values; a free dim (~) belongs to the spec.
    block["properties"]["dims"]["additionalProperties"] = {"anyOf": [{"type": "integer"}, _EXPR]}
    if top is not None:
        top["properties"]["dims"]["additionalProperties"] = {"anyOf": [
            {"type": "integer", "description": "A fixed dim."}, _EXPR,
            {"type": "null", "description": "A free dim (~), bound when the network runs."}]}
        top["properties"]["args"]["description"] = (
            "Accepted as in a block, but a spec is never called, so its args are unused; use dims.")


# -- init schemes ------------------------------------------------------------------------------

def _init_classes() -> list[type[BaseModel]]:
    return list(dict.fromkeys(SCHEMES.values()))


def _init_schema() -> dict:
    """A scheme name, or one key `scheme` -> its options (or null; a value for `constant`)."""
    bare = [kind for kind, cls in SCHEMES.items() if not _required(cls)]
    schemes = {}
    for kind, cls in SCHEMES.items():
        ref = {"$ref": f"#/$defs/init.{cls.model_fields['kind'].default}"}
        options = ", ".join(scheme_options(kind)) or "none"
        if bare_option(kind):   # {constant: 0.5} is short for {constant: {value: 0.5}}, {values: [...]} alike
            bare_type = "array" if cls.model_fields[bare_option(kind)].annotation != float else "number"
            schemes[kind] = {"anyOf": [{"type": bare_type}, _EXPR, ref],
                             "description": f"{kind}: a {'list' if bare_type == 'array' else 'value'}, or {{{bare_option(kind)}: ...}}."}
        else:
            schemes[kind] = {"anyOf": [{"type": "null"}, ref], "description": f"{kind}; options: {options}."}
    return {"anyOf": [
        {"enum": bare, "errorMessage": "unknown init scheme, or one that needs options (constant)"},
        {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
         "properties": schemes}]}


def _init_options(cls: type[BaseModel]) -> dict:
    schema = cls.model_json_schema()
    props = {name: _expressible(prop) for name, prop in schema.get("properties", {}).items() if name != "kind"}
    out = {"type": "object", "additionalProperties": False, "properties": props,
           "description": f"Options of the {cls.model_fields['kind'].default} init scheme."}
    if _required(cls):
        out["required"] = _required(cls)
    return out


def _required(cls: type[BaseModel]) -> list[str]:
    return [n for n, f in cls.model_fields.items() if f.is_required() and n != "kind"]


# -- nodes and ops -----------------------------------------------------------------------------

def _writable(cls: type[Op]) -> bool:
    """Ops a spec can write as `op:`; `scan` is made by scan nodes, with a block's graph as its body."""
    return not getattr(cls, "takes_body", False)


def _node(node: dict, blocks: dict) -> None:
    props = node["properties"]
    names = [name for name, cls in OPS.items() if _writable(cls)]
    # One `const` per op, each with its own description, and no description on `op` itself: an
    # editor's hover shows the first description it meets and lists an `enum`'s every value, so
    # this way hovering `op: conv` shows conv alone. The consts still complete as an enum would.
    props["op"] = {"anyOf": [{"const": n, "description": _op_summary(OPS[n])} for n in names],
                   "errorMessage": "unknown op; the ops are listed in docs/spec.md#ops"}
    for key in ("block", "scan"):
        # std's blocks complete and show their doc; any other name is this file's or a library's
        props[key] = {"anyOf": [*({"const": f"std.{b}", "description": _block_summary(f"std.{b}", spec)}
                                  for b, spec in blocks.items()),
                                {"type": "string", "pattern": r"^(?!std\.)",
                                 "description": props[key]["description"]}],
                      "errorMessage": "unknown std block; std's blocks are listed in docs/std.md"}
    props["over"]["items"] = {"type": "string", "pattern": NAME_PATTERN, "patternErrorMessage": NAME_MESSAGE}
    props["name"]["anyOf"][0]["patternErrorMessage"] = NAME_MESSAGE

    one_kind = "a node needs exactly one of 'op', 'block' or 'scan'"

    def forbid(when: str, keys: list[str], message: str, nonempty: bool = False) -> dict:
        # `properties: {key: false}`: VS Code marks the key itself, with the message.
        cond: dict = {"required": [when]}
        if nonempty:   # the loader allows an empty `args: {}` on an op node, `attrs: {}` on a block node
            cond = {"required": [when, *keys], "properties": {k: {"minProperties": 1} for k in keys}}
        return {"if": cond, "then": {"properties": {k: False for k in keys}, "errorMessage": message}}

    rules = [
        {"anyOf": [{"required": ["op"]}, {"required": ["block"]}, {"required": ["scan"]}],
         "errorMessage": one_kind},
        forbid("op", ["block", "scan"], one_kind),
        forbid("block", ["scan"], one_kind),
        forbid("op", ["args"], "'args' is for block and scan nodes; an op node takes 'attrs'", nonempty=True),
        forbid("block", ["attrs"], "'attrs' is for op nodes; a block or scan node takes 'args'", nonempty=True),
        forbid("scan", ["attrs"], "'attrs' is for op nodes; a block or scan node takes 'args'", nonempty=True),
        {"if": {"not": {"required": ["scan"]}},
         "then": {"properties": {k: False for k in ("over", "axis", "reverse")},
                  "errorMessage": "'over', 'axis' and 'reverse' are for scan nodes"}},
        {"if": {"required": ["scan"]},
         "then": {"required": ["over"], "properties": {"over": {"minItems": 1}},
                  "errorMessage": "a scan node needs 'over': the block inputs to step through"}},
        forbid("repeat", ["for_each"], "a node takes 'repeat' or 'for_each', not both"),
    ]
    for name in names:
        cls = OPS[name]
        then: dict = {"properties": {"op": {"description": _op_summary(cls)},
                                     "attrs": {"$ref": f"#/$defs/attrs.{name}"}}}
        if _required(cls):
            # Required attributes, unless for_each mapping items may give them (one copy each).
            then["if"] = {"required": ["for_each"]}
            then["else"] = {"required": ["attrs"], "properties": {"attrs": {"required": _required(cls)}}}
        rules.append({"if": {"required": ["op"], "properties": {"op": {"const": name}}}, "then": then})
    for key in ("block", "scan"):
        for name, spec in blocks.items():
            then = {"properties": {"args": {"$ref": f"#/$defs/args.std.{name}"}}}
            required = [a for a, decl in spec.args.items() if decl.required]
            if required:   # unless for_each mapping items may give them, as for op attributes
                then["if"] = {"required": ["for_each"]}
                then["else"] = {"required": ["args"], "properties": {"args": {"required": required}}}
            rules.append({"if": {"required": [key], "properties": {key: {"const": f"std.{name}"}}}, "then": then})
    node["allOf"] = rules


# A block arg's declared type, as the loader checks it (expand/blocks.py): numbers and bools may be
# expressions, so a string is accepted for them too; `str` is any string; `any` anything.
_ARG_SCHEMAS: dict[str, dict] = {
    "int": {"anyOf": [{"type": "integer"}, _EXPR]},
    "float": {"anyOf": [{"type": "number"}, _EXPR]},
    "bool": {"anyOf": [{"type": "boolean"}, _EXPR]},
    "str": {"type": "string"},
    "list": {"anyOf": [{"type": "array"}, _EXPR]},
    "any": {},
}


def _block_args(label: str, spec: BlockSpec) -> dict:
    """A std block's args: each with its type, its default and its doc; no other key."""
    props = {}
    for name, decl in spec.args.items():
        note = "required" if decl.required else f"default {json.dumps(decl.default)}"
        doc = f" {decl.doc}" if decl.doc else ""
        props[name] = {**_ARG_SCHEMAS[decl.type], "description": f"{label}.{name}: {decl.type} ({note}).{doc}"}
    return {"type": "object", "additionalProperties": False, "properties": props,
            "description": f"Arguments of {label}: {', '.join(props) or 'none'}."}


def _block_summary(label: str, spec: BlockSpec) -> str:
    args = ", ".join(f"{a} ({d.type}{'' if d.required else ', default ' + json.dumps(d.default)})"
                     for a, d in spec.args.items())
    doc = " ".join((spec.doc or "").split())
    return f"{label}: inputs ({', '.join(spec.inputs) or 'none'}) -> ({', '.join(spec.outputs) or 'none'}); " \
           f"arguments: {args or 'none'}." + (f" {doc}" if doc else "")


def _op_summary(cls: type[Op]) -> str:
    doc = " ".join((cls.__doc__ or "").split())
    onnx = f" ONNX: {cls.onnx}." if cls.onnx else ""
    return (f"{cls.name}: inputs ({', '.join(map(str, cls.inputs)) or 'none'}) -> ({', '.join(cls.outputs)}); "
            f"attributes: {', '.join(cls.model_fields) or 'none'}.{onnx}" + (f" {doc}" if doc else ""))


def _op_attrs(cls: type[Op]) -> dict:
    """An op's attributes: its fields, each value also an expression."""
    schema = cls.model_json_schema(schema_generator=_OpSchema)
    props = {}
    for name, prop in schema.get("properties", {}).items():
        out = _expressible(prop)
        note = "required" if name in schema.get("required", []) else f"default {json.dumps(prop.get('default'))}"
        props[name] = {**out, "description": f"{cls.name}.{name} ({note})."}
    return {"type": "object", "additionalProperties": False, "properties": props,
            "description": f"Attributes of {cls.name}: {', '.join(props) or 'none'}."}


class _OpSchema(GenerateJsonSchema):
    """A symbolic dim (graphnet.dims.Dim) in an attribute is written as a number or an expression."""

    def handle_invalid_for_json_schema(self, schema, error_info):
        return {"type": "integer"}


def _expressible(prop: dict) -> dict:
    """A value's schema that also takes an expression, as do a list's items. Enums stay as
    alternatives (editors offer their values); a bool also takes 0 and 1, as pydantic does."""
    keep = {k: prop[k] for k in ("default",) if k in prop}
    alternatives: list[dict] = []
    for alt in _flatten(prop):
        alt = {k: v for k, v in alt.items() if k not in ("title", "default", "description")}
        if not alt:
            return keep     # any value
        if alt.get("type") == "array":
            alt = {**alt, "items": _expressible(alt.get("items", {}))}
        if alt.get("type") == "string" and "enum" not in alt:
            continue        # the expression alternative covers it
        extra = [{"enum": [0, 1]}] if alt.get("type") == "boolean" else []
        for a in (alt, *extra):
            if a not in alternatives:
                alternatives.append(a)
    return {**keep, "anyOf": [*alternatives, _EXPR]}


def _flatten(prop: dict) -> list[dict]:
    if "anyOf" in prop:
        return [a for alt in prop["anyOf"] for a in _flatten(alt)]
    return [prop]


def _strip_titles(schema: Any) -> Any:
    """pydantic's generated titles ("For Each") would crowd the hover; the descriptions say more."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "title" and isinstance(value, str):
                continue
            if key in ("properties", "$defs"):
                out[key] = {k: _strip_titles(v) for k, v in value.items()}
            else:
                out[key] = _strip_titles(value)
        return out
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema
