"""The recursion of expansion: a body's nodes, in dependency order; each node's copies (repeat,
for_each); each copy an op, a block call or a scan; a block call's body, which is nodes again. The
leaf modules (scope, refs, op_nodes, blocks, params, scan) never call back into this one."""

from __future__ import annotations

import heapq

from ..dims import Dim, multiples_known
from ..errors import Location, did_you_mean
from ..graph import Frame, Graph, SpecInfo
from ..load import Program
from ..ops import OPS, TensorType
from ..spec import BlockSpec, NodeSpec
from .blocks import (bind_args, bind_block_inputs, bind_output_dims, block_dims, bound_name_readers, check_requirements,
                     find_block, move_into_call)
from .names import call_param_prefix, call_prefix, copy_path, default_segment, node_names, node_segment, qualified
from .op_nodes import expand_op
from .params import declare_params
from .refs import check_unused, mark_used, node_inputs, refs, resolve_outputs
from .scan import scan_node, scan_steps
from .scope import copies, eval_shape, eval_truth, library_dims, top_dims
from .state import Absent, Body, Expansion, Failed, Poisoned, Result, Tensor, poisoned

MAX_BLOCK_DEPTH = 32
MAX_NODES = 200_000
MAX_COPIES_IN_ALL = 200_000    # node copies expanded, skipped ones included: repeats and calls multiply


def expand(program: Program, dims: dict[str, int] | None = None) -> Graph:
    """The flat, typed Graph IR of a loaded spec, `dims` overriding its dims (`--dim`)."""
    ex = Expansion()
    spec = program.spec
    scope = top_dims(ex, spec, dims or {})
    ex.spec_dims = set(scope)
    ex.diags.raise_if_any()
    with multiples_known({k: f.multiple_of for k, f in ex.dim_facts.items() if isinstance(scope.get(k), Dim)}):
        return _expand(ex, program, spec, scope)


def _expand(ex: Expansion, program: Program, spec, scope: dict) -> Graph:
    try:
        check_requirements(ex, spec, scope, Location(str(program.path)))
    except Failed:
        ex.diags.raise_if_any()
    body = Body(program.library, spec, "", "", scope, ())
    inputs: dict[str, TensorType] = {}
    input_locs: dict[str, Location] = {}
    for name, decl in spec.inputs.items():
        try:
            shape = eval_shape(ex, decl.shape, scope, decl, "shape")
        except Failed:
            body.locals[name] = Tensor(name, None)   # poisoned: nodes reading it are skipped
            continue
        t = TensorType(decl.dtype, shape)
        ex.made[name] = "an input"
        inputs[name] = t
        input_locs[name] = decl.loc
        ex.types[name] = t
        body.locals[name] = Tensor(name, t)
        body.declared[name] = decl.loc
    declare_params(ex, body)
    expand_nodes(ex, body)
    outputs = resolve_outputs(ex, body)
    check_unused(ex, body, "the spec")
    ex.diags.raise_if_any()
    return Graph(spec.name, inputs, outputs, ex.params, ex.nodes, ex.types, input_locs,
                 str(program.path), {name: spec.loc_of("outputs", name) for name in outputs},
                 dim_facts={k: v for k, v in ex.dim_facts.items() if isinstance(scope.get(k), Dim)},
                 info=SpecInfo(spec.doc or "", tuple((k, d.doc) for k, d in spec.inputs.items() if d.doc),
                               tuple(spec.require), program.digest))


def _in_order(edges: dict[int, list[int]]) -> list[int] | None:
    """The nodes in dependency order, the lowest index first among those ready (the order they are
    written in, where dependencies allow), or None when they form a cycle."""
    waiting = {i: 0 for i in edges}
    for after in edges.values():
        for j in after:
            waiting[j] += 1
    ready = [i for i, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in edges[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    return order if len(order) == len(edges) else None


def _cycle(edges: dict[int, list[int]]) -> list[tuple[int, int]]:
    """One cycle, as networkx finds it (the message names it); networkx is imported only here,
    since it is most of a cold `graphnet validate`'s imports otherwise (docs/performance.md)."""
    import networkx as nx
    deps = nx.DiGraph()
    deps.add_nodes_from(edges)
    deps.add_edges_from((i, j) for i, after in edges.items() for j in after)
    return nx.find_cycle(deps)


def expand_nodes(ex: Expansion, body: Body) -> None:
    specs = body.block.nodes
    names = node_names(ex, body)
    index = {n: i for i, n in enumerate(names)}
    edges: dict[int, list[int]] = {i: [] for i in range(len(specs))}
    for i, node in enumerate(specs):
        for ref in refs(node):
            head = ref.split(".")[0]
            if head in index and head not in body.locals and i not in edges[index[head]]:
                edges[index[head]].append(i)
        if node.inputs is None and i > 0 and i not in edges[i - 1]:
            edges[i - 1].append(i)
    for i, j in bound_name_readers(specs):
        if j not in edges[i]:
            edges[i].append(j)
    order = _in_order(edges)
    if order is None:
        cycle = _cycle(edges)
        members = [names[a] for a, _ in cycle]
        first = specs[cycle[0][0]]
        ex.diags.add(first.loc, "nodes form a cycle: " + " -> ".join(members + [members[0]]))
        body.used.update(body.declared)   # nothing was expanded, so nothing can be called unused
        return
    for i in order:
        node, name = specs[i], names[i]
        previous = names[i - 1] if i > 0 else None
        if name in body.locals:   # a duplicate name, reported by node_names: made once only
            mark_used(body, node, previous)
            continue
        try:
            body.locals[name] = expand_node(ex, body, node, name, previous)
            if node.binds is not None:
                bind_output_dims(ex, body, node, name)
        except (Failed, Poisoned):
            mark_used(body, node, previous)
            body.locals[name] = poisoned()
        if len(ex.nodes) > MAX_NODES:
            ex.diags.add(node.loc, f"the expanded graph has more than {MAX_NODES} nodes")
            ex.diags.raise_if_any()


def expand_node(ex: Expansion, body: Body, node: NodeSpec, name: str, previous: str | None) -> Result:
    # What the node names must exist whatever its inputs are: an unknown op or block is an
    # independent mistake, reported even when an earlier node failed.
    if node.op is not None and node.op not in OPS:
        ex.fail(node.loc_of("op"), f"unknown op '{node.op}'{did_you_mean(node.op, OPS)}")
    if node.block is not None or node.scan is not None:
        find_block(ex, body, node)
    each = copies(ex, body, node)
    in_all = ex.enclosing_copies * len(each)
    if in_all > MAX_COPIES_IN_ALL:
        kind = "repeat" if node.repeat is not None else "for_each"
        ex.stop(body, node, node.loc_of(kind), qualified(body, name), f"{kind} makes {len(each)} copies in each of "
                f"{ex.enclosing_copies} copies of the block calls around it, {in_all} in all; "
                f"at most {MAX_COPIES_IN_ALL} copies of a node are made")
    outer, ex.enclosing_copies = ex.enclosing_copies, in_all
    try:
        return expand_copies(ex, body, node, name, previous, each)
    finally:
        ex.enclosing_copies = outer


def expand_copies(ex: Expansion, body: Body, node: NodeSpec, name: str, previous: str | None,
                  each: list[tuple[dict, dict]]) -> Result:
    result = None
    for k, (extra, item_args) in enumerate(each):
        ex.copies_made += 1
        if ex.copies_made > MAX_COPIES_IN_ALL:
            # Block calls multiply too: ten nodes calling a block of ten nodes calling ... even
            # when every copy is skipped, so the work is bounded here, not by the nodes made.
            ex.stop(body, node, node.loc, qualified(body, name), f"the expansion makes more than "
                    f"{MAX_COPIES_IN_ALL} node copies (block calls and repeats multiply)")
        scope = dict(body.scope, **extra)
        if not eval_truth(ex, node.if_, scope, node.loc_of("if")):
            body.used.update(ref.split(".")[0] for ref in refs(node))
            inputs = node_inputs(ex, body, node, previous, result, first_only=True)
            result = Result({"y": inputs[0] if inputs else Absent()}, "skipped")
            continue
        default = default_segment(name, node, k, len(each))
        segment = node_segment(ex, node, default, scope)
        path = copy_path(body, segment, default)
        inputs = [] if takes_nothing(ex, body, node) else node_inputs(ex, body, node, previous, result)
        if node.op is not None:
            result = expand_op(ex, body, node, path, scope, inputs, item_args)
        elif node.scan is not None:
            result = expand_scan(ex, body, node, path, scope, inputs, item_args, segment)
        else:
            result = expand_block(ex, body, node, path, scope, inputs, item_args, segment)
    return result


def takes_nothing(ex: Expansion, body: Body, node: NodeSpec) -> bool:
    """A block node without `inputs` whose block declares none: nothing to chain into it, as for
    an op that takes no inputs (constant, range)."""
    return node.inputs is None and node.block is not None and not find_block(ex, body, node)[1].inputs


def expand_block(ex: Expansion, body: Body, node: NodeSpec, path: str, scope: dict, inputs,
                 item_args: dict, segment: str) -> Result:
    lib, block, label = find_block(ex, body, node)
    if label in ex.block_stack:
        ex.fail(node.loc_of("block"), f"block '{label}' uses itself (through "
                f"{' -> '.join(ex.block_stack + [label])})")
    if len(ex.block_stack) >= MAX_BLOCK_DEPTH:
        ex.fail(node.loc_of("block"), f"blocks nested more than {MAX_BLOCK_DEPTH} deep")
    inner_scope = library_dims(ex, lib)
    inner_scope.update(bind_args(ex, node, block, label, scope, item_args))
    frame = Frame(node.loc, path, body.block_name)
    inner = Body(lib, block, label, call_prefix(path), inner_scope, (frame,) + body.trace,
                 param_prefix=call_param_prefix(body, segment))
    start, made = len(ex.diags.items), len(ex.param_order)
    try:
        outputs = expand_block_body(ex, inner, node, block, label, path, inputs)
    finally:
        move_into_call(ex, start, node.loc, path, label)
    below = len(inner.param_prefix)
    params = {full[below:]: Tensor(full, ex.types[full]) for full in ex.param_order[made:]
              if full.startswith(inner.param_prefix) and full in ex.params}
    return Result(outputs, "block", params)


def expand_block_body(ex: Expansion, inner: Body, node: NodeSpec, block: BlockSpec, label: str,
                      path: str, inputs) -> dict:
    bind_block_inputs(ex, inner, node, block, label, path, inputs)
    block_dims(ex, inner, block)
    check_requirements(ex, block, inner.scope, node.loc, label, path)
    ex.block_stack.append(label)
    try:
        declare_params(ex, inner)
        expand_nodes(ex, inner)
        outputs = resolve_outputs(ex, inner)
        check_unused(ex, inner, f"block '{label}'")
    finally:
        ex.block_stack.pop()
    return outputs


def expand_scan(ex: Expansion, body: Body, node: NodeSpec, path: str, scope: dict, inputs,
                item_args: dict, segment: str) -> Result:
    """The block expanded once, on one step's slices, into a graph of its own: the scan's body."""
    _, block, label = find_block(ex, body, node)
    steps = scan_steps(ex, node, block, label, path, inputs)
    outer_nodes, ex.nodes = ex.nodes, []
    known = set(ex.types)
    ex.types.update({s.name: s.type for s in steps.steps.values()})
    try:
        result = expand_block(ex, body, node, path, scope, steps.steps, item_args, segment)
    finally:
        body_nodes, ex.nodes = ex.nodes, outer_nodes
    body_types = {t: ex.types.pop(t) for t in list(ex.types) if t not in known and t not in ex.params}
    return scan_node(ex, body, node, path, steps, result.outputs, body_nodes, body_types)
