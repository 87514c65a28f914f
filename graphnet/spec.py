"""The spec file format as pydantic models. Unknown keys are errors; every model keeps its YAML.

These models hold what the user wrote, unevaluated: expressions stay strings until expansion,
where they meet the scope (dims, args, bound symbols) they are evaluated in.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, JsonValue, PrivateAttr, Strict, ValidationError, field_validator,
                      model_validator)

from .errors import Diagnostic, Location, SpecError, did_you_mean
from .names import check_template
from .source import LocDict, key_location, location_of
from .types import DTYPES

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
Dtype = Literal[DTYPES]
ArgType = Literal["int", "float", "bool", "str", "list", "any"]
Int = Annotated[int, Strict()]   # a size or count: `true` and `4.0` are not read as 1 and 4
DimExpr = Int | str


class Located(BaseModel):
    """Base of every spec model: unknown keys are errors, and the raw YAML mapping is kept."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)
    _raw: Any = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data, handler):
        model = handler(data)
        if isinstance(data, LocDict):
            model._raw = data
        return model

    @property
    def loc(self) -> Location:
        return getattr(_raw_of(self), "loc", None) or Location("<unknown>")

    def loc_of(self, *path) -> Location:
        """Where the value at `path` (keys/indices below this model) was written."""
        return location_of(_raw_of(self), path, self.loc)

    def raw_at(self, *path) -> Any:
        """The YAML value at `path` below this model as read, with its locations; None if absent."""
        current = _raw_of(self)
        for step in path:
            try:
                current = current[step]
            except (KeyError, IndexError, TypeError):
                return None
        return current

    def key_loc(self, key: str) -> Location:
        return key_location(_raw_of(self), key) or self.loc


def _raw_of(model: Located) -> Any:
    # What `model._raw` gives, without pydantic's attribute fallback, which is slow; locations are
    # looked up for every copy of every node an expansion makes.
    return (model.__pydantic_private__ or {}).get("_raw")


def _number_as_name(value):
    # `path: 0` names a layer as PyTorch's Sequential numbers it; YAML reads the 0 as a number.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class InputSpec(Located):
    shape: list[DimExpr]
    dtype: Dtype = "float32"
    optional: bool = False
    doc: str | None = None


class ArgSpec(Located):
    type: ArgType = "any"
    default: JsonValue = None
    doc: str | None = None

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set


class ParamSpec(Located):
    shape: list[DimExpr]
    init: str | dict[str, JsonValue]
    dtype: Dtype = "float32"
    trainable: bool = True
    if_: bool | str | None = Field(default=None, alias="if")
    path: str | Int | None = None         # a name template: the param's name below the call
    doc: str | None = None

    _path_number = field_validator("path", mode="before")(lambda v: _number_as_name(v))
    _path = field_validator("path")(lambda v: v if v is None else check_template(v))


class NodeSpec(Located):
    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    path: str | Int | None = None         # a name template: what the node's ops and params are named under
    op: str | None = None
    block: str | None = None
    scan: str | None = None               # a block applied step by step along `axis`
    over: list[str] = []                  # with scan: the block inputs that are sequences
    axis: int = 1                         # with scan: the sequence axis (batch-first by default)
    reverse: bool = False                 # with scan: run from the last step to the first
    inputs: str | list[str | None] | dict[str, str] | None = None
    attrs: dict[str, JsonValue] = {}
    args: dict[str, JsonValue] = {}
    repeat: Int | str | None = None
    for_each: list[JsonValue] | str | None = None
    if_: bool | str | None = Field(default=None, alias="if")
    binds: list[DimExpr] | None = None    # a shape pattern over the node's output: names for the nodes after it
    doc: str | None = None

    _path_number = field_validator("path", mode="before")(lambda v: _number_as_name(v))
    _path = field_validator("path")(lambda v: v if v is None else check_template(v))

    @model_validator(mode="after")
    def _one_kind(self):
        kinds = [k for k in ("op", "block", "scan") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a node needs exactly one of 'op', 'block' or 'scan'")
        if self.op is not None and self.args:
            raise ValueError("'args' is for block and scan nodes; an op node takes 'attrs'")
        if self.op is None and self.attrs:
            raise ValueError("'attrs' is for op nodes; a block or scan node takes 'args'")
        if self.op is not None and self.path == "":
            raise ValueError("an op node's 'path' cannot be empty: it names the op")
        scan_keys = [k for k in ("over", "axis", "reverse") if k in self.model_fields_set]
        if self.scan is None and scan_keys:
            raise ValueError(f"'{scan_keys[0]}' is for scan nodes")
        if self.scan is not None and not self.over:
            raise ValueError("a scan node needs 'over': the block inputs to step through")
        if self.repeat is not None and self.for_each is not None:
            raise ValueError("a node takes 'repeat' or 'for_each', not both")
        return self


def _shorthand(value, key: str):
    # `x: [B, 784]` is short for `x: {shape: [B, 784]}`; `k: int` for `k: {type: int}`.
    if isinstance(value, dict):
        out = LocDict()
        out.loc = getattr(value, "loc", None)
        out.key_locs = getattr(value, "key_locs", {})
        out.value_locs = getattr(value, "value_locs", {})
        for k, v in value.items():
            if isinstance(v, list):
                v = _wrap(v, key, out.value_locs.get(k))
            elif isinstance(v, str) and key == "type":
                v = _wrap(v, key, out.value_locs.get(k))
            out[k] = v
        return out
    return value


def _wrap(value, key, loc):
    wrapped = LocDict({key: value})
    wrapped.loc = loc
    wrapped.key_locs = {key: loc}
    wrapped.value_locs = {key: loc}
    return wrapped


class FusionSpec(Located):
    """`fuses_to:` on a recurrent cell: a scan of the block is this fused op (ops/recurrent.py)."""

    op: str
    states: list[str]
    output: str
    weights: dict[str, str]
    gates: list[str]
    attrs: dict[str, JsonValue] = {}


class DimFacts(Located):
    """A free dim with what is known of it (torch.export's Dim(min=, max=)): checked where it is
    bound, by `--dim` or the inputs, and recorded in the ONNX export."""

    min: Int = Field(default=1, ge=1)
    max: Int | None = Field(default=None, ge=1)
    multiple_of: Int = Field(default=1, ge=1)

    def least(self) -> int:
        """The least value the facts allow but for the max: the least multiple from the min."""
        return -(-self.min // self.multiple_of) * self.multiple_of

    def broken_by(self, value: int) -> str | None:
        """What `value` breaks of these facts, or None."""
        if value < self.min:
            return f"at least {self.min}"
        if self.max is not None and value > self.max:
            return f"at most {self.max}"
        if value % self.multiple_of:
            return f"a multiple of {self.multiple_of}"
        return None

    def text(self) -> str:
        parts = ([f"min {self.min}"] if self.min > 1 else []) + ([f"max {self.max}"] if self.max else []) + \
            ([f"multiple_of {self.multiple_of}"] if self.multiple_of > 1 else [])
        return ", ".join(parts) or "free"


class BlockSpec(Located):
    doc: str | None = None
    args: dict[str, ArgSpec] = {}
    dims: dict[str, DimExpr | DimFacts | None] = {}
    require: list[str] = []
    inputs: dict[str, InputSpec] = {}
    params: dict[str, ParamSpec] = {}
    nodes: list[NodeSpec]
    outputs: dict[str, str] = Field(min_length=1)
    fuses_to: FusionSpec | None = None

    _inputs_short = field_validator("inputs", mode="before")(lambda v: _shorthand(v, "shape"))
    _args_short = field_validator("args", mode="before")(lambda v: _shorthand(v, "type"))

    @field_validator("args", "dims", "inputs", "params", "outputs")
    @classmethod
    def _names(cls, value: dict):
        import re

        for name in value:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"'{name}' is not a valid name (letters, digits and _, not starting with a digit)")
        return value


class SpecFile(BlockSpec):
    graphnet: Literal[1]
    name: str = Field(pattern=NAME_PATTERN)
    use: list[str] = []
    blocks: dict[str, BlockSpec] = {}


class LibraryFile(Located):
    graphnet: Literal[1]
    name: str | None = None
    doc: str | None = None
    use: list[str] = []
    dims: dict[str, DimExpr] = {}
    blocks: dict[str, BlockSpec]


def validate_model(model: type[Located], raw: Any, file: str) -> Located:
    """Validate raw YAML data into `model`, turning pydantic errors into located diagnostics."""
    if not isinstance(raw, dict):
        loc = getattr(raw, "loc", Location(file))
        raise SpecError.at(loc, "a spec file must be a YAML mapping at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise SpecError([_diagnostic(err, raw, file, model) for err in _best_errors(e.errors(), raw)]) from None


def _best_errors(errors: list[dict], raw: Any) -> list[dict]:
    # A union reports one error per alternative at the same place; keep the first per place.
    seen, out = set(), []
    for err in errors:
        key = data_path(err, raw)
        if key not in seen:
            seen.add(key)
            out.append(err)
    return out


def data_path(err: dict, raw: Any) -> tuple:
    """The error's location as keys and indices into the YAML data. Pydantic puts union branch
    tags ('list[...]', 'function-after[...]') between them; a step that names nothing in the data is
    such a tag, whatever it looks like (a user's key may well be '[]'). The last step of an unknown
    or missing key names nothing yet, so it is kept."""
    steps = list(err["loc"])
    path, current = [], raw
    for i, step in enumerate(steps):
        if isinstance(current, dict) and step in current:
            path.append(step)
            current = current[step]
        elif isinstance(current, list) and isinstance(step, int) and 0 <= step < len(current):
            path.append(step)
            current = current[step]
        elif i == len(steps) - 1 and err["type"] in ("extra_forbidden", "missing"):
            path.append(step)
    return tuple(path)


def _diagnostic(err: dict, raw: Any, file: str, model: type[Located]) -> Diagnostic:
    path = data_path(err, raw)
    where = ".".join(str(p) for p in path) or "top level"
    if err["type"] == "extra_forbidden":
        parent = location_of(raw, path[:-1], Location(file))
        container = raw
        for step in path[:-1]:
            try:
                container = container[step]
            except (KeyError, IndexError, TypeError):
                break
        key = str(path[-1]) if path else "?"
        loc = key_location(container, key) or parent
        allowed = _allowed_keys(model, path[:-1])
        hint = did_you_mean(key, allowed) if allowed else ""
        listing = f" (allowed: {', '.join(sorted(allowed))})" if allowed and not hint else ""
        return Diagnostic(loc, f"unknown key '{key}' in {_context(path[:-1])}{hint}{listing}")
    loc = location_of(raw, path, Location(file))
    msg = err["msg"]
    if err["type"] == "missing":
        return Diagnostic(loc, f"missing key '{path[-1]}' in {_context(path[:-1])}")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "literal_error" and path and path[-1] == "graphnet":
        msg = "unsupported format version; this graphnet reads 'graphnet: 1'"
    if err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NAME_PATTERN:
        msg = (f"{err['input']!r} is not a valid name: a name is letters, digits and _, and does not start "
               "with a digit")
    return Diagnostic(loc, f"{where}: {msg}")


def _context(path: tuple) -> str:
    if not path:
        return "the spec"
    return "'" + ".".join(str(p) for p in path) + "'"


_CONTAINERS = {
    "blocks": BlockSpec, "nodes": NodeSpec, "params": ParamSpec, "inputs": InputSpec, "args": ArgSpec,
}


def _allowed_keys(model: type[Located], path: tuple) -> set[str]:
    # Walk the model tree along the path to find which keys the offending mapping allows.
    current: type[BaseModel] | None = model
    i = 0
    while i < len(path) and current is not None:
        step = path[i]
        if isinstance(step, str) and step in _CONTAINERS:
            current = _CONTAINERS[step]
            i += 2  # skip the key or index inside the container
            continue
        return set()
    if current is None or i > len(path):
        return set()
    return {f.alias or name for name, f in current.model_fields.items()}
