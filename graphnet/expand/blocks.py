"""Block calls: the block a node names, its args bound and type-checked, its inputs matched to
their shape patterns (binding the pattern's symbols), its dims and requirements, and where errors
found inside std blocks are reported."""

from __future__ import annotations

from .. import expr
from ..dims import Dim, as_dim
from ..errors import Diagnostic, Location, Note, did_you_mean
from ..load import Library, is_std_location
from ..spec import ArgSpec, BlockSpec, DimFacts, NodeSpec
from .refs import single_output
from .scope import eval_dim, eval_dim_entry, eval_expr, eval_value, literal_hint, show, strip_literals
from .state import Absent, Body, Expansion, Tensor


def find_block(ex: Expansion, body: Body, node: NodeSpec) -> tuple[Library, BlockSpec, str]:
    """The library and block a block or scan node names, and the block's label in messages."""
    key = "block" if node.block is not None else "scan"
    ref = getattr(node, key)
    lib = body.library
    ns, _, name = ref.rpartition(".")
    if ns:
        target = lib.uses.get(ns)
        if target is None:
            ex.fail(node.loc_of(key), f"unknown library '{ns}' in block '{ref}'"
                    f"{did_you_mean(ns, lib.uses)}" + ("" if lib.uses else "; add it to 'use:'"))
        lib = target
    if name not in lib.blocks:
        known = [f"{ns}.{b}" if ns else b for b in lib.blocks]
        ex.fail(node.loc_of(key), f"unknown block '{ref}'{did_you_mean(ref, known)}")
    return lib, lib.blocks[name], f"{lib.name}.{name}" if lib.is_std or ns else name


def bind_args(ex: Expansion, node: NodeSpec, block: BlockSpec, label: str, scope: dict, item_args: dict) -> dict:
    given = {**node.args, **item_args}
    values = {}
    for key in given:
        if key not in block.args:
            loc = node._raw["args"].key_locs.get(key, node.loc) if node._raw and "args" in node._raw else node.loc_of("for_each")
            ex.fail(loc, f"block '{label}' has no argument '{key}'{did_you_mean(key, block.args)}"
                         f" (arguments: {', '.join(block.args) or 'none'})")
    for key, decl in block.args.items():
        if key in given:
            loc = node.loc_of("args", key) if key in node.args else node.loc_of("for_each")
            value = eval_value(ex, given[key], scope, loc, True, node.raw_at("args", key) if key in node.args else None)
            value = check_arg_type(ex, value, decl, key, label, loc)
        elif decl.required:
            ex.fail(node.loc, f"block '{label}' needs argument '{key}' ({decl.type})")
        else:
            value = decl.default
        values[key] = value
    return values


_ARG_TYPES = {
    "int": lambda v: isinstance(v, (int, Dim)) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, list),
    "any": lambda v: True,
}


def check_arg_type(ex: Expansion, value, decl: ArgSpec, key: str, label: str, loc: Location):
    value, lits = strip_literals(value)
    want = decl.type
    if lits and want in ("int", "float", "bool"):
        lit = lits[0]
        ex.fail(lit.loc, f"argument '{key}' of block '{label}' must be {want}, got '{lit.text}' "
                         f"({lit.error.message}{literal_hint(lit, ex)})")
    if not _ARG_TYPES[want](value):
        ex.fail(loc, f"argument '{key}' of block '{label}' must be {want}, got {show(value)}")
    return float(value) if want == "float" else value


def bind_block_inputs(ex: Expansion, inner: Body, node: NodeSpec, block: BlockSpec, label: str,
                      path: str, inputs) -> None:
    names = list(block.inputs)
    if isinstance(inputs, dict):
        for k in inputs:
            if k not in block.inputs:
                ex.fail(node.loc_of("inputs", k), f"block '{label}' has no input '{k}'"
                        f"{did_you_mean(k, names)} (inputs: {', '.join(names)})")
        given = {k: inputs.get(k, Absent()) for k in names}
    else:
        if len(inputs) > len(names):
            ex.fail(node.loc_of("inputs"), f"block '{label}' takes {len(names)} input"
                    f"{'s' if len(names) != 1 else ''} ({', '.join(names)}), got {len(inputs)}")
        given = {k: (inputs[i] if i < len(inputs) else Absent()) for i, k in enumerate(names)}
    for name, decl in block.inputs.items():
        value = given[name]
        if isinstance(value, Absent):
            if not decl.optional:
                ex.fail(node.loc_of("inputs") if node.inputs is not None else node.loc,
                        f"block '{label}' needs input '{name}'")
            inner.locals[name] = Absent()
            continue
        match_pattern(ex, inner, node, decl, name, label, path, value)
        inner.locals[name] = value
        inner.declared[name] = decl.loc


def match_pattern(ex: Expansion, inner: Body, node: NodeSpec, decl, name: str, label: str, path: str,
                  value: Tensor) -> None:
    """Bind the symbols of an input's shape pattern to the actual dims, or check them."""
    actual = value.type
    pattern = list(decl.shape)
    where = f"input '{name}' of block '{label}'"

    def mismatch(detail: str):
        ex.report_node(_at_call(inner), node.loc, path, f"block {label}",
                       f"{where} must be {_pattern_text(pattern)}, got {actual}: {detail}")

    if actual.dtype != decl.dtype:
        mismatch(f"dtype is {actual.dtype}, not {decl.dtype}")
    if "..." in pattern:
        star = pattern.index("...")
        if pattern.count("...") > 1:
            ex.fail(decl.loc_of("shape", star), "a shape pattern can hold '...' only once")
        fixed = len(pattern) - 1
        if actual.rank < fixed:
            mismatch(f"needs at least {fixed} dims")
        head = list(actual.shape[:star])
        tail = list(actual.shape[actual.rank - (len(pattern) - star - 1):]) if star < len(pattern) - 1 else []
        pairs = list(zip(pattern[:star], head)) + list(zip(pattern[star + 1:], tail))
        offsets = list(range(star)) + list(range(star + 1, len(pattern)))
    else:
        if actual.rank != len(pattern):
            mismatch(f"rank is {actual.rank}, not {len(pattern)}")
        pairs = list(zip(pattern, actual.shape))
        offsets = list(range(len(pattern)))
    for i, (raw, dim) in zip(offsets, pairs):
        loc = decl.loc_of("shape", i)
        if isinstance(raw, str) and raw.isidentifier() and raw not in inner.scope:
            inner.scope[raw] = dim.value if dim.is_const() else dim
            continue
        expected = eval_dim(ex, raw, inner.scope, loc, f"pattern entry {i}")
        if as_dim(expected) != dim:
            mismatch(f"dim {i} is {dim}, expected {raw}" + (f" = {expected}" if str(expected) != str(raw) else ""))


def bind_output_dims(ex: Expansion, body: Body, node: NodeSpec, name: str) -> None:
    """A node's `binds`: its one output's shape matched against the pattern, as a block input's
    is, so a new name binds the dim there for the nodes after it and a known one is checked."""
    value = single_output(ex, body.locals[name], node, f"node '{name}' with 'binds'")
    if isinstance(value, Absent):
        ex.fail(node.loc_of("binds"), f"node '{name}' gives no tensor to bind dims from (it is skipped and has "
                                      "no input)")
    pattern, actual = list(node.binds), value.type
    if actual.rank != len(pattern):
        ex.fail(node.loc_of("binds"), f"binds {_pattern_text(pattern)} has {len(pattern)} dims but node "
                                      f"'{name}' gives {actual}")
    for i, (raw, dim) in enumerate(zip(pattern, actual.shape)):
        loc = node.loc_of("binds", i)
        if isinstance(raw, str) and raw.isidentifier() and raw not in body.scope:
            body.scope[raw] = dim.value if dim.is_const() else dim
            continue
        expected = eval_dim(ex, raw, body.scope, loc, f"binds entry {i}")
        if as_dim(expected) != dim:
            ex.fail(loc, f"node '{name}' gives {actual}: dim {i} is {dim}, but binds expects {raw}"
                         + (f" = {expected}" if str(expected) != str(raw) else ""))


def bound_name_readers(specs: list[NodeSpec]) -> list[tuple[int, int]]:
    """(binder, reader) for each later node whose expressions read a name a node's `binds` makes,
    so the reader is expanded after the binder whatever else it depends on."""
    bound = {}
    for i, node in enumerate(specs):
        for raw in node.binds or ():
            if isinstance(raw, str) and raw.isidentifier():
                bound.setdefault(raw, i)
    if not bound:
        return []
    edges = []
    for j, node in enumerate(specs):
        for name in _names_read(node) & set(bound):
            if bound[name] < j:
                edges.append((bound[name], j))
    return edges


def _names_read(node: NodeSpec) -> set[str]:
    found: set[str] = set()
    todo = [node.attrs, node.args, node.if_, node.repeat, node.for_each, node.path]
    while todo:
        v = todo.pop()
        if isinstance(v, dict):
            todo += list(v.values())
        elif isinstance(v, list):
            todo += v
        elif isinstance(v, str):
            try:
                found |= expr.names_in(expr.parse(v))
            except expr.ExprError:
                pass    # a literal string (`same`) or a mistake reported where it is evaluated
    return found


def block_dims(ex: Expansion, inner: Body, block: BlockSpec) -> None:
    """A block's derived dims, evaluated in order once its inputs are bound."""
    for name, value in block.dims.items():
        loc = block.loc_of("dims", name)
        if value is None or isinstance(value, DimFacts):
            ex.fail(loc, f"block dim '{name}' needs a value (free dims belong to the spec)")
        inner.scope[name] = eval_dim_entry(ex, value, inner.scope, loc, f"dim '{name}'")


def check_requirements(ex: Expansion, block, scope: dict, call_loc: Location, label: str = "", path: str = "") -> None:
    for i, text in enumerate(block.require):
        loc = block.loc_of("require", i)
        ok = eval_expr(ex, text, scope, loc)
        if not isinstance(ok, bool):
            ex.fail(loc, f"requirement '{text}' must be true or false, got {show(ok)}")
        if not ok:
            names = sorted(n for n in expr.names_in(expr.parse(text)) if n in scope)
            free = [n for n in names if isinstance(scope[n], Dim) and not scope[n].is_const()]
            shown = ", ".join(f"{n} = {show(scope[n])}" for n in names if n not in free)
            why = f"does not hold ({shown})"
            if free:
                # a free dim could meet it or not: say what would let inference know
                why = (f"cannot be shown for every value of the free dim{'s' if len(free) > 1 else ''} {', '.join(free)}"
                       f"{f' ({shown})' if shown else ''}; a fact in dims says what is known of a free dim "
                       f"(`{free[0]}: {{multiple_of: 16}}`, `{{min: 8, max: 1024}}`), or --dim binds it")
            where = f"block '{label}' called at '{path}'" if label else "the spec"
            if label:
                ex.fail(call_loc, f"{where}: requirement '{text}' {why}", (Note(loc, "required here"),))
            ex.fail(loc, f"requirement '{text}' {why}")


def move_into_call(ex: Expansion, start: int, call_loc: Location, path: str, label: str) -> None:
    """Errors found inside std blocks, which the user cannot edit, are reported at the user's call
    with the std line as a note. Only the first is kept: the rest are almost always its echoes
    (a free channel dim breaks the weight shape and then the bias init)."""
    if is_std_location(call_loc):
        return  # a std block calling another; the user's call further out moves them
    new = ex.diags.items[start:]
    inside = [d for d in new if is_std_location(d.loc)]
    if inside:
        first = inside[0]
        moved = Diagnostic(call_loc, first.message,
                           (Note(first.loc, f"in block '{label}' called at '{path}'"),) + first.notes)
        new = [moved if d is first else d for d in new if not is_std_location(d.loc) or d is first]
    ex.diags.items[start:] = [_from_call(ex, d, call_loc, path) for d in new]


def _from_call(ex: Expansion, d: Diagnostic, call_loc: Location, path: str) -> Diagnostic:
    """An error at a line of a user's own block (a bad attribute, an unknown name) also names the
    call it was expanded for, as a node's shape error does: the value at fault is often the call's
    (`padding: sme` passed on to `pads`), and a block called twice reports it once per call."""
    if id(d) in ex.stacked or d.loc == call_loc:
        return d
    return Diagnostic(d.loc, d.message, d.notes + (Note(call_loc, f"from '{path}'"),))


def _pattern_text(pattern: list) -> str:
    return "[" + ", ".join(str(p) for p in pattern) + "]"


def _at_call(inner: Body) -> Body:
    """The body a block call was written in, for reporting pattern mismatches at the call site."""
    return Body(inner.library, inner.block, inner.trace[0].block if inner.trace else "", "", {},
                inner.trace[1:])
