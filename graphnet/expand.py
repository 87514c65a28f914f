"""Expansion: a loaded spec becomes the flat, typed Graph IR.

Blocks are instantiated, repeats unrolled, expressions evaluated, and each primitive node's shape
rule applied as the node is made. Typing happens here, not in a later pass, because a block's input
pattern binds symbols (a conv learns C_in from its input) that its param shapes need.

Mistakes are collected, not raised one at a time: a node that fails poisons its outputs, nodes fed
by poisoned tensors are skipped silently, and every independent error is reported in one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_origin

import networkx as nx
from pydantic import ValidationError

from . import expr
from .dims import Dim, as_dim, format_shape
from .errors import Diagnostic, Diagnostics, Location, Note, did_you_mean
from .graph import Frame, Graph, Node, Param
from .init import SCHEMES, make_init
from .load import Library, Program, is_std_location
from .names import BadName, format_name
from .ops import OPS, Op, ShapeError, TensorType
from .ops.scan import Scan
from .source import LocDict, LocList
from .spec import ArgSpec, BlockSpec, NodeSpec, ParamSpec

MAX_BLOCK_DEPTH = 32
MAX_COPIES = 10_000
MAX_NODES = 200_000
MAX_COPIES_IN_ALL = 200_000    # node copies expanded, skipped ones included: repeats and calls multiply


class _Poisoned(Exception):
    """Raised to skip a node whose input already failed; never reported."""


class _Failed(Exception):
    """A node failed and the error was already recorded."""


@dataclass
class Absent:
    """An optional input that was not given, or a param whose `if` is false."""


@dataclass
class Tensor:
    name: str
    type: TensorType | None     # None: poisoned


@dataclass
class Result:
    """What a node in a block body produced: its outputs by name, in order."""

    outputs: dict[str, Tensor | Absent]
    kind: str                   # 'op', 'block', 'skipped'


@dataclass
class Body:
    """The state of one block body being expanded: its scope, names, and what was used."""

    library: Library
    block: BlockSpec
    block_name: str
    prefix: str
    scope: dict[str, Any]
    trace: tuple[Frame, ...]
    locals: dict[str, Tensor | Absent | Result] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    declared: dict[str, Location] = field(default_factory=dict)   # inputs and params, for unused checks
    param_prefix: str = ""      # what params are named under: the prefix, but below a call whose path is ""


def expand(program: Program, dims: dict[str, int] | None = None) -> Graph:
    return _Expander(program, dims or {}).run()


class _Expander:
    def __init__(self, program: Program, overrides: dict[str, int]):
        self.program = program
        self.spec = program.spec
        self.overrides = dict(overrides)
        self.diags = Diagnostics()
        self.nodes: list[Node] = []
        self.types: dict[str, TensorType] = {}
        self.params: dict[str, Param] = {}
        self.block_stack: list[str] = []
        self.made: dict[str, str] = {}   # every input, param and node name made, and what it names
        self.copies_made = 0         # every copy of every node expanded so far, in every call
        self.enclosing_copies = 1    # how many times the body being expanded is expanded in all

    # -- entry -----------------------------------------------------------------------------
    def run(self) -> Graph:
        spec = self.spec
        scope = self.top_dims()
        self.diags.raise_if_any()
        try:
            self.check_requirements(spec, scope, Location(str(self.program.path)))
        except _Failed:
            self.diags.raise_if_any()
        body = Body(self.program.library, spec, "", "", scope, ())
        inputs: dict[str, TensorType] = {}
        input_locs: dict[str, Location] = {}
        for name, decl in spec.inputs.items():
            try:
                shape = self.eval_shape(decl.shape, scope, decl, "shape")
            except _Failed:
                body.locals[name] = Tensor(name, None)   # poisoned: nodes reading it are skipped
                continue
            t = TensorType(decl.dtype, shape)
            self.made[name] = "an input"
            inputs[name] = t
            input_locs[name] = decl.loc
            self.types[name] = t
            body.locals[name] = Tensor(name, t)
            body.declared[name] = decl.loc
        self.declare_params(body)
        self.expand_nodes(body)
        outputs = self.resolve_outputs(body)
        self.check_unused(body, "the spec")
        self.diags.raise_if_any()
        return Graph(spec.name, inputs, outputs, self.params, self.nodes, self.types, input_locs,
                     str(self.program.path), {name: spec.loc_of("outputs", name) for name in outputs})

    def top_dims(self) -> dict[str, Any]:
        spec = self.spec
        scope: dict[str, Any] = {}
        unknown = set(self.overrides) - set(spec.dims)
        for name in sorted(unknown):
            self.diags.add(spec.key_loc("dims") if "dims" in (spec._raw or {}) else spec.loc,
                           f"--dim {name}: the spec has no dim '{name}'{did_you_mean(name, spec.dims)}")
        for name, value in spec.dims.items():
            loc = spec.loc_of("dims", name)
            if name in self.overrides:
                v = self.overrides[name]
                if not isinstance(v, int) or v < 1:
                    self.diags.add(loc, f"--dim {name}={v}: a dim must be a positive whole number")
                    v = 1
                scope[name] = v
            elif value is None:
                scope[name] = Dim(name)
            else:
                try:
                    scope[name] = self.eval_dim(value, scope, loc, f"dim '{name}'")
                except _Failed:
                    scope[name] = Dim(name)
        return scope

    # -- evaluation ------------------------------------------------------------------------
    def eval_value(self, raw: Any, scope: dict, loc: Location, keep_strings: bool = True, src: Any = None):
        """Evaluate expressions inside a YAML value. A string that is not a valid expression over
        known names stays a string (a literal such as 'same'); its problem is returned for later.
        `src` is the value as read from the YAML, whose items know where each was written."""
        if isinstance(raw, str):
            try:
                return expr.evaluate_text(raw, scope)
            except expr.UnknownName as e:
                if keep_strings:
                    return _Literal(raw, e, loc)
                self.fail(loc.shifted(e.column), f"{e.message}{did_you_mean(e.name, e.known)}")
            except expr.ExprError as e:
                if keep_strings and not _looks_like_expression(raw):
                    return _Literal(raw, e, loc)
                self.fail(loc.shifted(e.column), f"in expression '{_clip(raw)}': {e.message}")
            except (ZeroDivisionError, OverflowError, ValueError) as e:
                self.fail(loc, f"in expression '{_clip(raw)}': {e}")
        if isinstance(raw, int) and not isinstance(raw, bool) and not -expr.MAX_INT64 - 1 <= raw <= expr.MAX_INT64:
            self.fail(loc, f"integer overflow: {raw} does not fit in 64 bits")
        if isinstance(raw, list):
            return [self.eval_value(v, scope, *_item_at(src, i, loc), keep_strings) for i, v in enumerate(raw)]
        if isinstance(raw, dict):
            return {k: self.eval_value(v, scope, *_item_at(src, k, loc), keep_strings) for k, v in raw.items()}
        return raw

    def eval_expr(self, raw: Any, scope: dict, loc: Location, what: str):
        return self.eval_value(raw, scope, loc, False)

    def eval_dim(self, raw: Any, scope: dict, loc: Location, what: str) -> int | Dim:
        value = self.eval_expr(raw, scope, loc, what)
        if isinstance(value, bool) or not isinstance(value, (int, Dim)):
            self.fail(loc, f"{what} must be a whole number, got {_show(value)}")
        if not as_dim(value).is_positive():
            self.fail(loc, f"{what} must be positive, got {value}")
        if any(abs(c) > expr.MAX_INT for c in as_dim(value).terms.values()):
            self.fail(loc, f"integer overflow: {what} is {value}, beyond 2^62")
        return value

    def eval_shape(self, raw_shape: list, scope: dict, owner, key: str) -> tuple[Dim, ...]:
        dims = []
        for i, raw in enumerate(raw_shape):
            dims.append(as_dim(self.eval_dim(raw, scope, owner.loc_of(key, i), f"shape entry {i}")))
        return tuple(dims)

    def eval_truth(self, raw, scope: dict, loc: Location) -> bool:
        if raw is None:
            return True
        value = self.eval_expr(raw, scope, loc, "if")
        if not isinstance(value, bool):
            self.fail(loc, f"'if' must be true or false, got {_show(value)}")
        return value

    def name_from(self, template: str, scope: dict, loc: Location, empty_ok: bool = False) -> str:
        try:
            return format_name(template, scope, empty_ok)
        except BadName as e:
            self.fail(loc.shifted(e.column), e.message)

    def claim(self, name: str, what: str) -> str | None:
        """Paths can give two things one name, which the Graph IR holds once: the problem, if so."""
        if name in self.made:
            return (f"the name '{name}' is already taken by {self.made[name]} made before; "
                    "every node and param needs its own path")
        self.made[name] = what
        return None

    def fail(self, loc: Location, message: str, notes=()):
        self.diags.add(loc, message, tuple(notes))
        raise _Failed()

    # -- diagnostics -----------------------------------------------------------------------
    def report_node(self, body: Body, node_loc: Location, path: str, what: str, message: str):
        """Record an error at the innermost user-written location, with the call stack as notes."""
        frames = [Frame(node_loc, path, body.block_name)] + list(body.trace)
        primary = next((f for f in frames if not is_std_location(f.loc)), frames[0])
        notes = [Note(f.loc, f"in block '{f.block}' at node '{f.path}'" if f is frames[0] and f.block
                      else (f"from '{f.path}'" if f.path else "here"))
                 for f in frames if f is not primary]
        self.diags.add(primary.loc, f"node '{path}' ({what}): {message}", tuple(notes))
        raise _Failed()

    def stop(self, body: Body, node: NodeSpec, loc: Location, path: str, message: str):
        """A limit on the work of expanding: reported like a node's error, then expansion stops."""
        try:
            self.report_node(body, loc, path, "block " + node.block if node.block else node.op or "scan", message)
        except _Failed:
            self.diags.raise_if_any()

    # -- params ----------------------------------------------------------------------------
    def declare_params(self, body: Body) -> None:
        for name, decl in body.block.params.items():
            try:
                self.declare_param(body, name, decl)
            except _Failed:
                body.locals[name] = Tensor(body.prefix + name, None)

    def declare_param(self, body: Body, name: str, decl: ParamSpec) -> None:
        if not self.eval_truth(decl.if_, body.scope, decl.loc_of("if")):
            body.locals[name] = Absent()
            return
        leaf = name if decl.path is None else self.name_from(decl.path, body.scope, decl.loc_of("path"))
        qualified = body.param_prefix + leaf
        clash = self.claim(qualified, "a param")
        if clash:
            self.fail(decl.loc_of("path") if decl.path is not None else decl.loc, f"param '{name}': {clash}")
        shape = self.eval_shape(decl.shape, body.scope, decl, "shape")
        for i, d in enumerate(shape):
            if not d.is_const():
                self.fail(decl.loc_of("shape", i), f"param '{qualified}' has shape {format_shape(shape)}, "
                          f"which depends on the free dim(s) {', '.join(sorted(d.symbols()))}; "
                          "params need known shapes (bind free dims with --dim)")
        init = self.make_param_init(decl, body.scope, qualified)
        t = TensorType(decl.dtype, shape)
        self.params[qualified] = Param(qualified, t, init, decl.trainable, decl.loc)
        self.types[qualified] = t
        body.locals[name] = Tensor(qualified, t)
        body.declared[name] = decl.loc

    def make_param_init(self, decl: ParamSpec, scope: dict, qualified: str):
        raw = decl.init
        loc = decl.loc_of("init")
        if isinstance(raw, str):
            kind, options = raw, {}
        elif len(raw) == 1:
            kind, options = next(iter(raw.items()))
            if kind == "constant" and not isinstance(options, dict):
                options = {"value": options}
            if options is None:
                options = {}
            if not isinstance(options, dict):
                self.fail(loc, f"init '{kind}' takes a mapping of options, got {_show(options)}")
        else:
            self.fail(loc, "init must be a scheme name or a mapping with one scheme, e.g. {normal: {std: 0.02}}")
        if kind not in SCHEMES:
            self.fail(loc, f"unknown init scheme '{kind}'{did_you_mean(kind, SCHEMES)} "
                           f"(known: {', '.join(sorted(SCHEMES))})")
        # Plain words stay strings (mode: fan_out); the scheme's own validation rejects a bad one.
        values = {k: _strip_literals(self.eval_value(v, scope, *_item_at(decl.raw_at("init", kind), k, loc)))[0]
                  for k, v in options.items()}
        values = {k: (v.value if isinstance(v, Dim) and v.is_const() else v) for k, v in values.items()}
        try:
            init = make_init(kind, values)
        except ValidationError as e:
            err = e.errors()[0]
            key = err["loc"][0] if err["loc"] else ""
            if err["type"] == "extra_forbidden":
                fields = [f for f in SCHEMES[kind].model_fields if f != "kind"]
                self.fail(loc, f"init '{kind}' has no option '{key}'{did_you_mean(str(key), fields)}"
                               f" (options: {', '.join(fields) or 'none'})")
            self.fail(loc, f"init '{kind}' option '{key}': {err['msg']}")
        # A fan-based init on a rank-1 param is a spec error now, not a crash when weights are made.
        try:
            if hasattr(init, "fans"):
                init.fans(tuple(1 for _ in decl.shape))
        except ValueError as e:
            self.fail(loc, f"param '{qualified}': {e}")
        return init

    # -- nodes -----------------------------------------------------------------------------
    def node_names(self, body: Body) -> list[str]:
        names = []
        seen: dict[str, NodeSpec] = {}
        for i, node in enumerate(body.block.nodes):
            name = node.name if node.name is not None else str(i)
            clash = seen.get(name)
            if clash is not None:
                self.diags.add(node.loc_of("name"), f"duplicate node name '{name}' (first at line {clash.loc.line})")
            elif name in body.locals:
                self.diags.add(node.loc_of("name"), f"node name '{name}' is already the name of an input or param")
            seen[name] = node
            names.append(name)
        return names

    def expand_nodes(self, body: Body) -> None:
        specs = body.block.nodes
        names = self.node_names(body)
        index = {n: i for i, n in enumerate(names)}
        deps = nx.DiGraph()
        deps.add_nodes_from(range(len(specs)))
        for i, node in enumerate(specs):
            for ref in _refs(node):
                head = ref.split(".")[0]
                if head in index and head not in body.locals:
                    deps.add_edge(index[head], i)
            if node.inputs is None and i > 0:
                deps.add_edge(i - 1, i)
        try:
            cycle = nx.find_cycle(deps)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            members = [names[a] for a, _ in cycle]
            first = specs[cycle[0][0]]
            self.diags.add(first.loc, "nodes form a cycle: " + " -> ".join(members + [members[0]]))
            body.used.update(body.declared)   # nothing was expanded, so nothing can be called unused
            return
        order = list(nx.lexicographical_topological_sort(deps))
        for i in order:
            node, name = specs[i], names[i]
            previous = names[i - 1] if i > 0 else None
            if name in body.locals:   # a duplicate name, reported by node_names: made once only
                self.mark_used(body, node, previous)
                continue
            try:
                body.locals[name] = self.expand_node(body, node, name, previous)
            except _Failed:
                self.mark_used(body, node, previous)
                body.locals[name] = _poisoned_result(node)
            except _Poisoned:
                self.mark_used(body, node, previous)
                body.locals[name] = _poisoned_result(node)
            if len(self.nodes) > MAX_NODES:
                self.diags.add(node.loc, f"the expanded graph has more than {MAX_NODES} nodes")
                self.diags.raise_if_any()

    def mark_used(self, body: Body, node: NodeSpec, previous: str | None) -> None:
        """A node that failed (say, a bad repeat) before resolving its inputs still uses them;
        otherwise one mistake would also be reported as unused inputs or params."""
        body.used.update(ref.split(".")[0] for ref in _refs(node))
        if node.inputs is None and previous is None and body.block.inputs:
            body.used.add(next(iter(body.block.inputs)))

    def expand_node(self, body: Body, node: NodeSpec, name: str, previous: str | None) -> Result:
        # What the node names must exist whatever its inputs are: an unknown op or block is an
        # independent mistake, reported even when an earlier node failed.
        if node.op is not None and node.op not in OPS:
            self.fail(node.loc_of("op"), f"unknown op '{node.op}'{did_you_mean(node.op, OPS)}")
        if node.block is not None or node.scan is not None:
            self.find_block(body, node)
        copies = self.copies(body, node)
        in_all = self.enclosing_copies * len(copies)
        if in_all > MAX_COPIES_IN_ALL:
            kind = "repeat" if node.repeat is not None else "for_each"
            self.stop(body, node, node.loc_of(kind), body.prefix + name, f"{kind} makes {len(copies)} copies in each of "
                      f"{self.enclosing_copies} copies of the block calls around it, {in_all} in all; "
                      f"at most {MAX_COPIES_IN_ALL} copies of a node are made")
        outer, self.enclosing_copies = self.enclosing_copies, in_all
        try:
            return self.expand_copies(body, node, name, previous, copies)
        finally:
            self.enclosing_copies = outer

    def expand_copies(self, body: Body, node: NodeSpec, name: str, previous: str | None,
                      copies: list[tuple[dict, dict]]) -> Result:
        result = None
        for k, (extra, item_args) in enumerate(copies):
            self.copies_made += 1
            if self.copies_made > MAX_COPIES_IN_ALL:
                # Block calls multiply too: ten nodes calling a block of ten nodes calling ... even
                # when every copy is skipped, so the work is bounded here, not by the nodes made.
                self.stop(body, node, node.loc, body.prefix + name, f"the expansion makes more than "
                          f"{MAX_COPIES_IN_ALL} node copies (block calls and repeats multiply)")
            scope = dict(body.scope, **extra)
            if not self.eval_truth(node.if_, scope, node.loc_of("if")):
                for ref in _refs(node):
                    body.used.add(ref.split(".")[0])
                inputs = self.node_inputs(body, node, previous, result, first_only=True)
                result = Result({"y": inputs[0] if inputs else Absent()}, "skipped")
                continue
            default = name + (f".{k}" if len(copies) > 1 or node.repeat is not None
                              or node.for_each is not None else "")
            segment = default if node.path is None else self.name_from(node.path, scope, node.loc_of("path"),
                                                                       node.op is None)
            path = body.prefix + (segment or default)
            inputs = self.node_inputs(body, node, previous, result)
            if node.op is not None:
                result = self.expand_op(body, node, path, scope, inputs, item_args)
            elif node.scan is not None:
                result = self.expand_scan(body, node, path, scope, inputs, item_args, segment)
            else:
                result = self.expand_block(body, node, path, scope, inputs, item_args, segment)
        return result

    def copies(self, body: Body, node: NodeSpec) -> list[tuple[dict, dict]]:
        """Per copy: the names it adds to the scope (index, item) and the args a for_each mapping gives."""
        if node.repeat is not None:
            count = self.eval_expr(node.repeat, body.scope, node.loc_of("repeat"), "repeat")
            if isinstance(count, bool) or not isinstance(count, int):
                self.fail(node.loc_of("repeat"), f"repeat must be a whole number, got {_show(count)}")
            if not 1 <= count <= MAX_COPIES:
                self.fail(node.loc_of("repeat"), f"repeat must be between 1 and {MAX_COPIES}, got {count}")
            return [({"index": i}, {}) for i in range(count)]
        if node.for_each is not None:
            items = node.for_each
            if isinstance(items, str):
                items = self.eval_expr(items, body.scope, node.loc_of("for_each"), "for_each")
                if not isinstance(items, list):
                    self.fail(node.loc_of("for_each"), f"for_each must give a list, got {_show(items)}")
            if not 1 <= len(items) <= MAX_COPIES:
                self.fail(node.loc_of("for_each"), f"for_each needs between 1 and {MAX_COPIES} items")
            loc = node.loc_of("for_each")
            return [({"index": i, "item": _strip_literals(self.eval_value(
                        item, body.scope, *_item_at(node.raw_at("for_each"), i, loc)))[0]}, {})
                    if not isinstance(item, dict) else ({"index": i}, item) for i, item in enumerate(items)]
        return [({}, {})]

    def node_inputs(self, body: Body, node: NodeSpec, previous: str | None, chained: Result | None,
                    first_only: bool = False) -> list[Tensor | Absent]:
        """Resolve a node's inputs: a list, or a mapping when the node names them (a list with
        first_only). Copies after the first take the previous copy's output as their first input."""
        if chained is not None:
            carried = self.single_output(chained, node, "the previous copy")
            if first_only:
                return [carried]
            fresh = self.node_inputs(body, node, previous, None)
            if isinstance(fresh, dict):
                return {**fresh, next(iter(fresh)): carried}
            return [carried] + fresh[1:]
        if node.inputs is None:
            if node.op is not None and node.op in OPS and not OPS[node.op].inputs:
                return []   # constant, range: nothing to chain from
            if previous is None:
                first = next(iter(body.block.inputs), None)
                if first is None:
                    return []
                return [self.resolve(body, first, node.loc)]   # marks it used; skips a poisoned input
            prev = body.locals[previous]
            return [self.single_output(prev, node, f"the previous node '{previous}'")]
        refs = [node.inputs] if isinstance(node.inputs, str) else node.inputs
        if isinstance(refs, dict):
            items = list(refs.items())[:1] if first_only else refs.items()
            resolved = {k: self.resolve(body, v, node.loc_of("inputs", k)) for k, v in items}
            return list(resolved.values()) if first_only else resolved  # type: ignore[return-value]
        out = []
        for i, ref in enumerate(refs):
            if first_only and i > 0:
                break
            loc = node.loc_of("inputs", i) if not isinstance(node.inputs, str) else node.loc_of("inputs")
            out.append(Absent() if ref is None else self.resolve(body, ref, loc))
        return out

    def single_output(self, result, node: NodeSpec, what: str) -> Tensor | Absent:
        if isinstance(result, Result) and result.kind == "poisoned":
            raise _Poisoned()
        if isinstance(result, Result):
            if len(result.outputs) != 1:
                self.fail(node.loc, f"{what} has several outputs ({', '.join(result.outputs)}); "
                                    "name the one to use in 'inputs'")
            result = next(iter(result.outputs.values()))
        if isinstance(result, Tensor) and result.type is None:
            raise _Poisoned()   # produced by a node that already failed
        return result

    def resolve(self, body: Body, ref: str, loc: Location, where: str = "inputs") -> Tensor | Absent:
        head, _, out = ref.partition(".")
        if head not in body.locals:
            known = list(body.locals) + [n.name or str(i) for i, n in enumerate(body.block.nodes)]
            if any((n.name or str(i)) == head for i, n in enumerate(body.block.nodes)):
                raise _Poisoned()   # a node that failed before it produced anything
            self.fail(loc, f"unknown name '{head}' in {where}{did_you_mean(head, known)}")
        body.used.add(head)
        value = body.locals[head]
        if isinstance(value, Result) and value.kind == "poisoned":
            raise _Poisoned()
        if isinstance(value, Result):
            if out:
                if out not in value.outputs:
                    self.fail(loc, f"node '{head}' has no output '{out}' (outputs: {', '.join(value.outputs)})")
                value = value.outputs[out]
            elif len(value.outputs) != 1:
                self.fail(loc, f"node '{head}' has several outputs ({', '.join(value.outputs)}); "
                               f"say which, e.g. '{head}.{next(iter(value.outputs))}'")
            else:
                value = next(iter(value.outputs.values()))
        elif out:
            self.fail(loc, f"'{head}' is a single tensor; it has no output '{out}'")
        if isinstance(value, Tensor) and value.type is None:
            raise _Poisoned()
        return value

    # -- op nodes --------------------------------------------------------------------------
    def expand_op(self, body: Body, node: NodeSpec, path: str, scope: dict, inputs, item_attrs: dict) -> Result:
        op_name = node.op
        cls = OPS[op_name]
        op = self.make_op(body, node, cls, scope, path, item_attrs)
        args = self.bind_op_inputs(body, node, cls, op, path, inputs)
        types = [a.type if a is not None else None for a in args]
        try:
            out_types = op.infer(*_trim_none(types))
        except ShapeError as e:
            shown = ", ".join(f"{n}: {t.type}" for n, t in zip(_input_names(cls, len(args)), args) if t is not None)
            self.report_node(body, node.loc, path, op_name, f"{e}" + (f" (inputs: {shown})" if shown else ""))
        if isinstance(out_types, TensorType):
            out_types = (out_types,)
        for t in out_types:
            for i, d in enumerate(t.shape):
                if any(abs(c) > expr.MAX_INT for c in d.terms.values()):
                    self.report_node(body, node.loc, path, op_name, f"output dim {i} is {d}, beyond 2^62")
        clash = self.claim(path, "a node")
        if clash:
            self.report_node(body, node.loc, path, op_name, clash)
        names = op.output_names()
        tensor_names = [path] if len(names) == 1 else [f"{path}:{n}" for n in names]
        for t, ty in zip(tensor_names, out_types):
            self.types[t] = ty
        trace = (Frame(node.loc, path, body.block_name),) + body.trace
        self.nodes.append(Node(path, op, tuple(a.name if a is not None else None for a in args),
                               tuple(tensor_names), trace))
        return Result({n: Tensor(t, ty) for n, t, ty in zip(names, tensor_names, out_types)}, "op")

    def make_op(self, body: Body, node: NodeSpec, cls: type[Op], scope: dict, path: str, item_attrs: dict) -> Op:
        attrs = {}
        literals = {}
        for key, raw in {**node.attrs, **item_attrs}.items():
            loc = node.loc_of("for_each") if key in item_attrs else node.loc_of("attrs", key)
            if isinstance(raw, str) and _is_text_field(cls, key):
                attrs[key] = _text_value(raw, scope)
                continue
            value = self.eval_value(raw, scope, loc, True, None if key in item_attrs else node.raw_at("attrs", key))
            value, lits = _strip_literals(value)
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
                    self.diags.add(node._raw["attrs"].key_locs.get(key, node.loc) if node._raw and "attrs" in node._raw else node.loc,
                                   f"node '{path}' ({cls.name}): unknown attribute '{key}'{did_you_mean(key, fields)}"
                                   f" (attributes: {', '.join(fields) or 'none'})")
                elif err["type"] == "missing":
                    self.diags.add(node.loc, f"node '{path}' ({cls.name}): missing attribute '{key}'")
                elif key in literals:
                    lit = literals[key]
                    name_hint = (did_you_mean(lit.error.name, lit.error.known)
                                 if isinstance(lit.error, expr.UnknownName) else "")
                    self.diags.add(lit.loc, f"node '{path}' ({cls.name}): attribute '{key}': "
                                   f"{lit.error.message} in '{lit.text}'{name_hint}")
                else:
                    self.diags.add(node.loc_of("attrs", key), f"node '{path}' ({cls.name}): attribute "
                                   f"'{key}': {err['msg']} (got {_show(attrs.get(key))})")
            raise _Failed()

    def bind_op_inputs(self, body, node, cls, op, path, inputs) -> list:
        """Match given inputs to the op's declared inputs; None marks an omitted optional one."""
        declared = cls.inputs
        if isinstance(inputs, dict):
            names = [d.lstrip("*").rstrip("?") for d in declared]
            unknown = [k for k in inputs if k not in names]
            if unknown:
                self.fail(node.loc_of("inputs", unknown[0]),
                          f"op '{cls.name}' has no input '{unknown[0]}'{did_you_mean(unknown[0], names)} "
                          f"(inputs: {', '.join(names)})")
            inputs = [inputs.get(n, Absent()) for n in names]
            while inputs and isinstance(inputs[-1], Absent):
                inputs.pop()
        variadic = any(d.startswith("*") for d in declared)
        required = [d for d in declared if not d.endswith("?") and not d.startswith("*")]
        if not variadic and len(inputs) > len(declared):
            self.fail(node.loc_of("inputs"), f"op '{cls.name}' takes {len(declared)} input"
                      f"{'s' if len(declared) != 1 else ''} ({', '.join(declared)}), got {len(inputs)}")
        out = []
        for i, value in enumerate(inputs):
            label = declared[min(i, len(declared) - 1)] if declared else "?"
            if isinstance(value, Absent):
                if not label.endswith("?"):
                    self.fail(node.loc_of("inputs"), f"op '{cls.name}' input '{label}' is required but was not given")
                out.append(None)
            else:
                out.append(value)
        if len(out) < len(required) or (variadic and not out):
            missing = required[len(out):] or [declared[0].lstrip("*")]
            self.fail(node.loc if node.inputs is None else node.loc_of("inputs"),
                      f"node '{path}' ({cls.name}): missing input '{missing[0]}' "
                      f"(the op takes {', '.join(declared)}; got {len(out)})")
        return out

    # -- block nodes -----------------------------------------------------------------------
    def find_block(self, body: Body, node: NodeSpec) -> tuple[Library, BlockSpec, str]:
        key = "block" if node.block is not None else "scan"
        ref = getattr(node, key)
        lib = body.library
        ns, _, name = ref.rpartition(".")
        if ns:
            target = lib.uses.get(ns)
            if target is None:
                self.fail(node.loc_of(key), f"unknown library '{ns}' in block '{ref}'"
                          f"{did_you_mean(ns, lib.uses)}" + ("" if lib.uses else "; add it to 'use:'"))
            lib = target
        if name not in lib.blocks:
            known = [f"{ns}.{b}" if ns else b for b in lib.blocks]
            self.fail(node.loc_of(key), f"unknown block '{ref}'{did_you_mean(ref, known)}")
        return lib, lib.blocks[name], f"{lib.name}.{name}" if lib.is_std or ns else name

    def expand_block(self, body: Body, node: NodeSpec, path: str, scope: dict, inputs, item_args: dict,
                     segment: str) -> Result:
        lib, block, label = self.find_block(body, node)
        if label in self.block_stack:
            self.fail(node.loc_of("block"), f"block '{label}' uses itself (through "
                      f"{' -> '.join(self.block_stack + [label])})")
        if len(self.block_stack) >= MAX_BLOCK_DEPTH:
            self.fail(node.loc_of("block"), f"blocks nested more than {MAX_BLOCK_DEPTH} deep")
        inner_scope = self.library_dims(lib)
        inner_scope.update(self.bind_args(node, block, label, scope, item_args))
        frame = Frame(node.loc, path, body.block_name)
        # A call whose path is "" adds no segment to its params' names; its ops keep the node's name.
        inner = Body(lib, block, label, path + ".", inner_scope, (frame,) + body.trace,
                     param_prefix=body.param_prefix + segment + "." if segment else body.param_prefix)
        start = len(self.diags.items)
        try:
            outputs = self.expand_block_body(body, inner, node, block, label, path, inputs)
        finally:
            self.move_into_call(start, node.loc, path, label)
        return Result(outputs, "block")

    def expand_scan(self, body: Body, node: NodeSpec, path: str, scope: dict, inputs, item_args: dict,
                    segment: str) -> Result:
        """Expand the block once, on one step's slices, into a body graph run by a scan op."""
        _, block, label = self.find_block(body, node)
        names = list(block.inputs)
        given = dict(inputs) if isinstance(inputs, dict) else dict(zip(names, inputs))
        for i, name in enumerate(node.over):
            if name not in block.inputs:
                self.fail(node.loc_of("over", i), f"block '{label}' has no input '{name}' to scan over"
                          f"{did_you_mean(name, names)} (inputs: {', '.join(names)})")
        carried = [n for n in names if n not in node.over and isinstance(given.get(n), Tensor)]
        steps: dict[str, Tensor] = {}
        length = None
        for name in carried + list(node.over):
            value = given.get(name)
            if not isinstance(value, Tensor):
                self.fail(node.loc_of("inputs") if node.inputs is not None else node.loc,
                          f"scan over block '{label}' needs input '{name}'")
            t = value.type
            if name in node.over:
                if not -t.rank <= node.axis < t.rank:
                    self.fail(node.loc_of("axis"), f"axis {node.axis} is out of range for '{name}' {t}")
                axis = node.axis % t.rank
                if length is not None and t.shape[axis] != length:
                    self.fail(node.loc_of("over"), f"sequences differ in length: {length} and {t.shape[axis]}")
                length = t.shape[axis]
                t = TensorType(t.dtype, t.shape[:axis] + t.shape[axis + 1:])
            steps[name] = Tensor(f"{path}/{name}", t)
        outer_nodes, self.nodes = self.nodes, []
        known = set(self.types)
        self.types.update({s.name: s.type for s in steps.values()})
        try:
            result = self.expand_block(body, node, path, scope, steps, item_args, segment)
        finally:
            body_nodes, self.nodes = self.nodes, outer_nodes
        body_types = {t: self.types.pop(t) for t in list(self.types) if t not in known and t not in self.params}
        outputs = result.outputs
        if any(isinstance(v, Tensor) and v.type is None for v in outputs.values()):
            raise _Failed()   # the body's own errors are recorded
        for name in carried:
            out = outputs.get(name)
            if not isinstance(out, Tensor) or out.type != steps[name].type:
                got = f"gives {out.type}" if isinstance(out, Tensor) else "has no such output"
                self.fail(node.loc_of("scan"), f"block '{label}' must output '{name}' with the carried "
                          f"state's type {steps[name].type} (it {got})")
        stacked = [n for n in outputs if n not in carried]
        params = sorted({t for n in body_nodes for t in n.inputs if t in self.params})
        body_types.update({p: self.params[p].type for p in params})
        graph = Graph(path, {steps[n].name: steps[n].type for n in carried + list(node.over)},
                      {n: outputs[n].name for n in outputs}, {p: self.params[p] for p in params},
                      body_nodes, body_types)
        op = Scan(body=graph, carried=tuple(carried), sequences=tuple(node.over), stacked=tuple(stacked),
                  params=tuple(params), axis=node.axis, reverse=node.reverse)
        args = [given[n] for n in carried + list(node.over)] + [Tensor(p, self.params[p].type) for p in params]
        try:
            out_types = op.infer(*[a.type for a in args])
        except ShapeError as e:
            self.report_node(body, node.loc, path, f"scan {label}", str(e))
        clash = self.claim(path, "a node")
        if clash:
            self.report_node(body, node.loc, path, f"scan {label}", clash)
        tensor_names = [path] if len(out_types) == 1 else [f"{path}:{n}" for n in op.output_names()]
        self.types.update(zip(tensor_names, out_types))
        trace = (Frame(node.loc, path, body.block_name),) + body.trace
        self.nodes.append(Node(path, op, tuple(a.name for a in args), tuple(tensor_names), trace))
        return Result({n: Tensor(t, ty) for n, t, ty in zip(op.output_names(), tensor_names, out_types)}, "op")

    def expand_block_body(self, body: Body, inner: Body, node: NodeSpec, block: BlockSpec, label: str,
                          path: str, inputs) -> dict[str, Any]:
        self.bind_block_inputs(body, inner, node, block, label, path, inputs)
        for name, value in block.dims.items():
            loc = block.loc_of("dims", name)
            if value is None:
                self.fail(loc, f"block dim '{name}' needs a value (free dims belong to the spec)")
            try:
                inner.scope[name] = self.eval_dim(value, inner.scope, loc, f"dim '{name}'")
            except _Failed:
                raise
        self.check_requirements(block, inner.scope, node.loc, label, path)
        self.block_stack.append(label)
        try:
            self.declare_params(inner)
            self.expand_nodes(inner)
            outputs = self.resolve_outputs(inner)
            self.check_unused(inner, f"block '{label}'")
        finally:
            self.block_stack.pop()
        return outputs

    def move_into_call(self, start: int, call_loc: Location, path: str, label: str) -> None:
        """Errors found inside std blocks, which the user cannot edit, are reported at the user's call
        with the std line as a note. Only the first is kept: the rest are almost always its echoes
        (a free channel dim breaks the weight shape and then the bias init)."""
        if is_std_location(call_loc):
            return  # a std block calling another; the user's call further out moves them
        new = self.diags.items[start:]
        inside = [d for d in new if is_std_location(d.loc)]
        if not inside:
            return
        first = inside[0]
        moved = Diagnostic(call_loc, first.message,
                           (Note(first.loc, f"in block '{label}' called at '{path}'"),) + first.notes)
        self.diags.items[start:] = [moved if d is first else d for d in new if not is_std_location(d.loc) or d is first]

    def library_dims(self, lib: Library) -> dict[str, Any]:
        """A library file's dims, evaluated in order (each may use the ones before it)."""
        scope: dict[str, Any] = {}
        for name, raw in lib.dims.items():
            loc = lib.dim_locs.get(name, Location(lib.name))
            scope[name] = self.eval_dim(raw, scope, loc, f"dim '{name}'")
        return scope

    def bind_args(self, node: NodeSpec, block: BlockSpec, label: str, scope: dict, item_args: dict) -> dict:
        given = {**node.args, **item_args}
        values = {}
        for key in given:
            if key not in block.args:
                loc = node._raw["args"].key_locs.get(key, node.loc) if node._raw and "args" in node._raw else node.loc_of("for_each")
                self.fail(loc, f"block '{label}' has no argument '{key}'{did_you_mean(key, block.args)}"
                               f" (arguments: {', '.join(block.args) or 'none'})")
        for key, decl in block.args.items():
            if key in given:
                loc = node.loc_of("args", key) if key in node.args else node.loc_of("for_each")
                value = self.eval_value(given[key], scope, loc, True, node.raw_at("args", key) if key in node.args else None)
                value = self.check_arg_type(value, decl, key, label, loc)
            elif decl.required:
                self.fail(node.loc, f"block '{label}' needs argument '{key}' ({decl.type})")
            else:
                value = decl.default
            values[key] = value
        return values

    def check_arg_type(self, value, decl: ArgSpec, key: str, label: str, loc: Location):
        value, lits = _strip_literals(value)
        want = decl.type
        if lits and want in ("int", "float", "bool"):
            lit = lits[0]
            hint = did_you_mean(lit.error.name, lit.error.known) if isinstance(lit.error, expr.UnknownName) else ""
            self.fail(lit.loc, f"argument '{key}' of block '{label}' must be {want}, got '{lit.text}' "
                               f"({lit.error.message}{hint})")
        ok = {
            "int": lambda v: isinstance(v, (int, Dim)) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "bool": lambda v: isinstance(v, bool),
            "str": lambda v: isinstance(v, str),
            "list": lambda v: isinstance(v, list),
            "any": lambda v: True,
        }[want]
        if not ok(value):
            self.fail(loc, f"argument '{key}' of block '{label}' must be {want}, got {_show(value)}")
        return float(value) if want == "float" else value

    def bind_block_inputs(self, body: Body, inner: Body, node: NodeSpec, block: BlockSpec, label: str,
                          path: str, inputs) -> None:
        names = list(block.inputs)
        if isinstance(inputs, dict):
            for k in inputs:
                if k not in block.inputs:
                    self.fail(node.loc_of("inputs", k), f"block '{label}' has no input '{k}'"
                              f"{did_you_mean(k, names)} (inputs: {', '.join(names)})")
            given = {k: inputs.get(k, Absent()) for k in names}
        else:
            if len(inputs) > len(names):
                self.fail(node.loc_of("inputs"), f"block '{label}' takes {len(names)} input"
                          f"{'s' if len(names) != 1 else ''} ({', '.join(names)}), got {len(inputs)}")
            given = {k: (inputs[i] if i < len(inputs) else Absent()) for i, k in enumerate(names)}
        for name, decl in block.inputs.items():
            value = given[name]
            if isinstance(value, Absent):
                if not decl.optional:
                    self.fail(node.loc_of("inputs") if node.inputs is not None else node.loc,
                              f"block '{label}' needs input '{name}'")
                inner.locals[name] = Absent()
                continue
            self.match_pattern(inner, node, decl, name, label, path, value)
            inner.locals[name] = value
            inner.declared[name] = decl.loc

    def match_pattern(self, inner: Body, node: NodeSpec, decl, name: str, label: str, path: str,
                      value: Tensor) -> None:
        """Bind the symbols of an input's shape pattern to the actual dims, or check them."""
        actual = value.type
        pattern = list(decl.shape)
        where = f"input '{name}' of block '{label}'"

        def mismatch(detail: str):
            self.report_node(_at_call(inner), node.loc, path, f"block {label}",
                             f"{where} must be {_pattern_text(pattern)}, got {actual}: {detail}")

        if actual.dtype != decl.dtype:
            mismatch(f"dtype is {actual.dtype}, not {decl.dtype}")
        if "..." in pattern:
            star = pattern.index("...")
            if pattern.count("...") > 1:
                self.fail(decl.loc_of("shape", star), "a shape pattern can hold '...' only once")
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
            expected = self.eval_dim(raw, inner.scope, loc, f"pattern entry {i}")
            if as_dim(expected) != dim:
                mismatch(f"dim {i} is {dim}, expected {raw}" + (f" = {expected}" if str(expected) != str(raw) else ""))

    def check_requirements(self, block, scope: dict, call_loc: Location, label: str = "", path: str = "") -> None:
        for i, text in enumerate(block.require):
            loc = block.loc_of("require", i)
            ok = self.eval_expr(text, scope, loc, "require")
            if not isinstance(ok, bool):
                self.fail(loc, f"requirement '{text}' must be true or false, got {_show(ok)}")
            if not ok:
                names = sorted(n for n in expr.names_in(expr.parse(text)) if n in scope)
                shown = ", ".join(f"{n} = {_show(scope[n])}" for n in names)
                where = f"block '{label}' called at '{path}'" if label else "the spec"
                if label:
                    self.fail(call_loc, f"{where}: requirement '{text}' does not hold ({shown})",
                              (Note(loc, "required here"),))
                self.fail(loc, f"requirement '{text}' does not hold ({shown})")

    # -- outputs and unused names -----------------------------------------------------------
    def resolve_outputs(self, body: Body) -> dict[str, Any]:
        out = {}
        for name, ref in body.block.outputs.items():
            loc = body.block.loc_of("outputs", name)
            try:
                value = self.resolve(body, ref, loc, "outputs")
            except (_Failed, _Poisoned):
                out[name] = Tensor(body.prefix + name, None)
                continue
            out[name] = value.name if body.block is self.spec and isinstance(value, Tensor) else value
        return out

    def check_unused(self, body: Body, where: str) -> None:
        for name, loc in body.declared.items():
            if name not in body.used:
                kind = "input" if name in body.block.inputs else "param"
                self.diags.add(loc, f"{kind} '{name}' of {where} is never used")


# -- helpers --------------------------------------------------------------------------------

@dataclass
class _Literal:
    """A string kept as a literal because it is not an expression over known names."""

    text: str
    error: expr.ExprError
    loc: Location


def _item_at(src: Any, key, loc: Location) -> tuple[Location, Any]:
    """Where item `key` of a YAML list or mapping was written, and the item itself as read; the
    container's location when the value did not come from the YAML as it is."""
    if isinstance(src, LocList) and isinstance(key, int) and 0 <= key < len(src):
        return src.item_locs[key], src[key]
    if isinstance(src, LocDict) and key in src:
        return src.value_locs[key], src[key]
    return loc, None


def _strip_literals(value):
    lits: list[_Literal] = []

    def walk(v):
        if isinstance(v, _Literal):
            lits.append(v)
            return v.text
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(value), lits


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


def _is_text_field(cls: type[Op], key: str) -> bool:
    field = cls.model_fields.get(key)
    return field is not None and (field.annotation is str or get_origin(field.annotation) is Literal)


def _text_value(raw: str, scope: dict) -> str:
    """A text attribute: an expression giving a string (`"'tanh' if deep else 'none'"`, an arg's
    name), or else the text as written (`btd,de->bte`, `same`), whatever it would parse as."""
    try:
        value = expr.evaluate_text(raw, scope)
    except (expr.ExprError, ZeroDivisionError, ValueError):
        return raw
    return value if isinstance(value, str) else raw


def _clip(text: str, most: int = 80) -> str:
    """An expression as echoed in a message: a long one is cut (the column says where the problem is)."""
    return text if len(text) <= most else text[:most - 3] + "..."


def _looks_like_expression(text: str) -> bool:
    return any(c in text for c in "+*/%()[]<>=") or text.strip().startswith("-")


def _show(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if value is None:
        return "nothing"
    return str(value)


def _refs(node: NodeSpec) -> list[str]:
    if node.inputs is None:
        return []
    if isinstance(node.inputs, str):
        return [node.inputs]
    if isinstance(node.inputs, dict):
        return list(node.inputs.values())
    return [r for r in node.inputs if r is not None]


def _poisoned_result(node: NodeSpec) -> Result:
    return Result({"y": Tensor("", None)}, "poisoned")


def _trim_none(types: list):
    while types and types[-1] is None:
        types = types[:-1]
    return types


def _input_names(cls: type[Op], n: int) -> list[str]:
    declared = [d.lstrip("*").rstrip("?") for d in cls.inputs]
    if any(d.startswith("*") for d in cls.inputs):
        return [f"{declared[0]}[{i}]" for i in range(n)]
    return declared[:n]


def _pattern_text(pattern: list) -> str:
    return "[" + ", ".join(str(p) for p in pattern) + "]"


def _at_call(inner: Body) -> Body:
    """The body a block call was written in, for reporting pattern mismatches at the call site."""
    return Body(inner.library, inner.block, inner.trace[0].block if inner.trace else "", "", {},
                inner.trace[1:])
