"""Values in scope: expressions, dims, shapes and conditions evaluated against a scope, and the
scopes themselves (the spec's dims, a library's dims, what each copy of a node adds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import expr
from ..dims import MAX_RANK, Dim, as_dim
from ..errors import Location, did_you_mean
from ..load import Library
from ..source import LocDict, LocList
from ..spec import DimFacts, NodeSpec, SpecFile
from .state import Body, Expansion, Failed

MAX_COPIES = 10_000


@dataclass
class Literal:
    """A string kept as a literal because it is not an expression over known names."""

    text: str
    error: expr.ExprError
    loc: Location


def eval_value(ex: Expansion, raw: Any, scope: dict, loc: Location, keep_strings: bool = True, src: Any = None):
    """Evaluate expressions inside a YAML value. A string that is not a valid expression over
    known names stays a string (a literal such as 'same'); its problem is returned for later.
    `src` is the value as read from the YAML, whose items know where each was written."""
    if isinstance(raw, str):
        try:
            return expr.evaluate_text(raw, scope)
        except expr.UnknownName as e:
            if keep_strings:
                return Literal(raw, e, loc)
            ex.fail(loc.shifted(e.column), f"{e.message}{unknown_hint(ex, e)}")
        except expr.ExprError as e:
            if keep_strings and not _looks_like_expression(raw):
                return Literal(raw, e, loc)
            ex.fail(loc.shifted(e.column), f"in expression '{_clip(raw)}': {e.message}")
        except (ZeroDivisionError, OverflowError, ValueError) as e:
            ex.fail(loc, f"in expression '{_clip(raw)}': {e}")
    if isinstance(raw, int) and not isinstance(raw, bool) and not -expr.MAX_INT64 - 1 <= raw <= expr.MAX_INT64:
        ex.fail(loc, f"integer overflow: {raw} does not fit in 64 bits")
    if isinstance(raw, list):
        return [eval_value(ex, v, scope, *item_at(src, i, loc), keep_strings) for i, v in enumerate(raw)]
    if isinstance(raw, dict):
        return {k: eval_value(ex, v, scope, *item_at(src, k, loc), keep_strings) for k, v in raw.items()}
    return raw


def eval_expr(ex: Expansion, raw: Any, scope: dict, loc: Location):
    """A value in which every string must be an expression over known names."""
    return eval_value(ex, raw, scope, loc, False)


def eval_dim_entry(ex: Expansion, raw: Any, scope: dict, loc: Location, what: str):
    """A `dims` entry: a whole number or a symbolic dim, or a list (a computed width table, say)
    that expressions index, measure or run a comprehension over."""
    value = eval_expr(ex, raw, scope, loc)
    if isinstance(value, list):
        return value
    return eval_dim(ex, value, scope, loc, what)


def eval_dim(ex: Expansion, raw: Any, scope: dict, loc: Location, what: str) -> int | Dim:
    value = eval_expr(ex, raw, scope, loc)
    if isinstance(value, bool) or not isinstance(value, (int, Dim)):
        ex.fail(loc, f"{what} must be a whole number, got {show(value)}")
    if not as_dim(value).is_positive():
        ex.fail(loc, f"{what} must be positive, got {value}")
    if any(abs(c) > expr.MAX_INT for c in as_dim(value).terms.values()):
        ex.fail(loc, f"integer overflow: {what} is {value}, beyond 2^62")
    return value


def eval_shape(ex: Expansion, raw_shape: list, scope: dict, owner, key: str) -> tuple[Dim, ...]:
    if len(raw_shape) > MAX_RANK:
        ex.fail(owner.loc_of(key), f"a shape of {len(raw_shape)} dims is over the limit of {MAX_RANK} (dims.MAX_RANK)")
    return tuple(as_dim(eval_dim(ex, raw, scope, owner.loc_of(key, i), f"shape entry {i}"))
                 for i, raw in enumerate(raw_shape))


def eval_truth(ex: Expansion, raw, scope: dict, loc: Location) -> bool:
    if raw is None:
        return True
    value = eval_expr(ex, raw, scope, loc)
    if not isinstance(value, bool):
        ex.fail(loc, f"'if' must be true or false, got {show(value)}")
    return value


def text_value(raw: str, scope: dict) -> str:
    """A text attribute: an expression giving a string (`"'tanh' if deep else 'none'"`, an arg's
    name), or else the text as written (`btd,de->bte`, `same`), whatever it would parse as."""
    try:
        value = expr.evaluate_text(raw, scope)
    except (expr.ExprError, ZeroDivisionError, ValueError):
        return raw
    return value if isinstance(value, str) else raw


# -- scopes ------------------------------------------------------------------------------------

def top_dims(ex: Expansion, spec: SpecFile, overrides: dict[str, int]) -> dict[str, Any]:
    """The spec's dims, `--dim` overrides applied: the scope of the top level."""
    scope: dict[str, Any] = {}
    unknown = set(overrides) - set(spec.dims)
    for name in sorted(unknown):
        ex.diags.add(spec.key_loc("dims") if "dims" in (spec._raw or {}) else spec.loc,
                     f"--dim {name}: the spec has no dim '{name}'{did_you_mean(name, spec.dims)}")
    for name, value in spec.dims.items():
        loc = spec.loc_of("dims", name)
        facts = value if isinstance(value, DimFacts) else None
        if facts is not None:
            ex.dim_facts[name] = facts
            least = facts.least()
            if facts.max is not None and least > facts.max:
                ex.diags.add(loc, f"no value of {name} fits its facts ({facts.text()}): the least is {least}, past "
                                  f"the max {facts.max}")
        if name in overrides:
            v = overrides[name]
            if not isinstance(v, int) or v < 1:
                ex.diags.add(loc, f"--dim {name}={v}: a dim must be a positive whole number")
                v = 1
            elif facts is not None and facts.broken_by(v):
                ex.diags.add(loc, f"--dim {name}={v}: {name} must be {facts.broken_by(v)} ({facts.text()})")
            scope[name] = v
        elif value is None or facts is not None:
            scope[name] = Dim(name)
        else:
            try:
                scope[name] = eval_dim_entry(ex, value, scope, loc, f"dim '{name}'")
            except Failed:
                scope[name] = Dim(name)
    return scope


def library_dims(ex: Expansion, lib: Library) -> dict[str, Any]:
    """A library file's dims, evaluated in order (each may use the ones before it)."""
    scope: dict[str, Any] = {}
    for name, raw in lib.dims.items():
        loc = lib.dim_locs.get(name, Location(lib.name))
        scope[name] = eval_dim_entry(ex, raw, scope, loc, f"dim '{name}'")
    return scope


def copies(ex: Expansion, body: Body, node: NodeSpec) -> list[tuple[dict, dict]]:
    """Per copy: the names it adds to the scope (index, item) and the args a for_each mapping gives."""
    if node.repeat is not None:
        count = eval_expr(ex, node.repeat, body.scope, node.loc_of("repeat"))
        if isinstance(count, bool) or not isinstance(count, int):
            ex.fail(node.loc_of("repeat"), f"repeat must be a whole number, got {show(count)}")
        if not 1 <= count <= MAX_COPIES:
            ex.fail(node.loc_of("repeat"), f"repeat must be between 1 and {MAX_COPIES}, got {count}")
        return [({"index": i}, {}) for i in range(count)]
    if node.for_each is not None:
        items = node.for_each
        if isinstance(items, str):
            items = eval_expr(ex, items, body.scope, node.loc_of("for_each"))
            if not isinstance(items, list):
                ex.fail(node.loc_of("for_each"), f"for_each must give a list, got {show(items)}")
        if not 1 <= len(items) <= MAX_COPIES:
            ex.fail(node.loc_of("for_each"), f"for_each needs between 1 and {MAX_COPIES} items")
        loc = node.loc_of("for_each")
        return [({"index": i, "item": strip_literals(eval_value(
                    ex, item, body.scope, *item_at(node.raw_at("for_each"), i, loc)))[0]}, {})
                if not isinstance(item, dict) else ({"index": i}, item) for i, item in enumerate(items)]
    return [({}, {})]


# -- helpers -----------------------------------------------------------------------------------

def item_at(src: Any, key, loc: Location) -> tuple[Location, Any]:
    """Where item `key` of a YAML list or mapping was written, and the item itself as read; the
    container's location when the value did not come from the YAML as it is."""
    if isinstance(src, LocList) and isinstance(key, int) and 0 <= key < len(src):
        return src.item_locs[key], src[key]
    if isinstance(src, LocDict) and key in src:
        return src.value_locs[key], src[key]
    return loc, None


def strip_literals(value) -> tuple[Any, list[Literal]]:
    """The value with its literals back as plain strings, and the literals found."""
    lits: list[Literal] = []

    def walk(v):
        if isinstance(v, Literal):
            lits.append(v)
            return v.text
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(value), lits


def literal_hint(lit: Literal, ex: Expansion | None = None) -> str:
    """'; did you mean ...?' when a literal is a misspelt name (or a spec dim a block cannot see)."""
    return unknown_hint(ex, lit.error) if isinstance(lit.error, expr.UnknownName) else ""


def unknown_hint(ex: Expansion | None, error: expr.UnknownName) -> str:
    """What to do about an unknown name: a spec dim read inside a block is passed in as an arg;
    anything else may be misspelt."""
    if ex is not None and error.name in ex.spec_dims and error.name not in error.known:
        return (f"; '{error.name}' is a dim of the spec, and a block sees only its args, the dims its "
                f"inputs bind and its own dims: pass it as an arg (args: {{{error.name}: {error.name}}})")
    return did_you_mean(error.name, error.known)


def show(value) -> str:
    """A value as a message shows it, in the spec's own spelling (true, 'text', [1, 2])."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if value is None:
        return "nothing"
    return str(value)


def _clip(text: str, most: int = 80) -> str:
    """An expression as echoed in a message: a long one is cut (the column says where the problem is)."""
    return text if len(text) <= most else text[:most - 3] + "..."


def _looks_like_expression(text: str) -> bool:
    return any(c in text for c in "+*/%()[]<>=") or text.strip().startswith("-")
