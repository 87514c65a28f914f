"""The NumPy back end: a plan compiled once per binding of the free dims, then run many times.

A plan is a list of steps over integer buffer slots: the op with its dims bound, where its inputs
and outputs live, and which slots die after it, so intermediates are freed at their last use.

An op that carries a body graph (scan) is handed an `Engine` when its step is made: its body's plan
is compiled then, with this plan's weights and options, and lives in the step's kernel, so it is
gone with the plan. `peak_bytes` estimates the plan compile_plan makes, from types alone; the plan's
own estimate guards it (`check`) before it allocates anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import SpecError
from ..graph import Frame, Graph, node_error
from ..ops import Op
from ..ops.base import kernel_failure
from ..transforms.derive import Known
from ..types import TensorType, nbytes
from . import rewrites


@dataclass(frozen=True)
class Step:
    name: str
    op: str                        # the op's name, for profiles
    kernel: object                 # the bound op's compute, prepared for its input shapes
    inputs: tuple[int | None, ...]
    outputs: tuple[int, ...]
    free: tuple[int, ...]          # slots whose last reader is this step
    inplace: int | None = None     # the input position the kernel may overwrite with its result
    trace: tuple[Frame, ...] = ()  # where the node was written, for a kernel's failure


@dataclass(frozen=True)
class Plan:
    inputs: dict[str, int]                        # graph input name -> slot
    constants: tuple[tuple[int, np.ndarray], ...]  # (slot, array) set before every run: weights and folds
    steps: tuple[Step, ...]
    outputs: dict[str, int]                       # output name -> slot
    size: int                                     # number of slots


class InputMismatch(ValueError):
    """An input array does not fit its declaration; `input` names it."""

    def __init__(self, input_name: str, message: str):
        super().__init__(message)
        self.input = input_name


def bind_dims(graph: Graph, shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """Bind each free symbol from the input shapes; raises InputMismatch naming a mismatch."""
    binding: dict[str, int] = {}
    for name, t in graph.inputs.items():
        actual = shapes[name]
        if len(actual) != t.rank:
            raise InputMismatch(name, f"input '{name}' must have rank {t.rank} {t}, got shape {tuple(actual)}")
        for axis, (d, n) in enumerate(zip(t.shape, actual)):
            if d.is_symbol():
                sym = str(d)
                if n < 1:   # free dims stand for positive numbers; shapes were worked out so
                    raise InputMismatch(name, f"input '{name}' dim {axis} ({sym}) must be at least 1, got {n}")
                if sym in binding and binding[sym] != n:
                    raise InputMismatch(name, f"input '{name}' dim {axis} is {n}, but {sym} = {binding[sym]} "
                                     "from an earlier input")
                binding[sym] = n
    _solve_linear(graph, shapes, binding)
    for sym, facts in graph.dim_facts.items():
        broken = facts.broken_by(binding[sym]) if sym in binding else None
        if broken:
            name, axis = next((n, a) for n, t in graph.inputs.items() for a, d in enumerate(t.shape) if sym in d.symbols())
            raise InputMismatch(name, f"input '{name}' dim {axis} binds {sym} = {binding[sym]}, but {sym} must be "
                                f"{broken} ({facts.text()})")
    for name, t in graph.inputs.items():
        for axis, (d, n) in enumerate(zip(t.shape, shapes[name])):
            expected = d.subs(binding)
            if not expected.is_const():
                free = ", ".join(sorted(expected.symbols()))
                raise InputMismatch(name, f"input '{name}' dim {axis} ({d}) cannot be bound from the inputs: no input "
                                    f"axis is {free} alone or linear in one free dim (as 16*h is); give --dim "
                                    + " ".join(f"{s}=N" for s in sorted(expected.symbols())))
            if expected.value != n:
                want = str(expected.value) if d.is_const() else f"{d} = {expected.value}"
                raise InputMismatch(name, f"input '{name}' dim {axis} must be {want}, got {n}")
    return binding


def _solve_linear(graph: Graph, shapes: dict[str, tuple[int, ...]], binding: dict[str, int]) -> None:
    """Bind the free dims that only appear in linear dims (`16*h`, `2*T + 1`) from those axes, until
    no more can be bound; one that gives no positive whole number is a mismatch, said so."""
    progress = True
    while progress:
        progress = False
        for name, t in graph.inputs.items():
            for axis, (d, n) in enumerate(zip(t.shape, shapes[name])):
                left = d.subs(binding) if binding else d
                if left.is_const() or len(left.symbols()) != 1:
                    continue
                sym = next(iter(left.symbols()))
                slope = {mono: c for mono, c in left.terms.items() if mono}
                if list(slope) != [((sym, 1),)]:
                    continue            # not linear in a plain symbol (h*h, (h - 1)//2)
                a, c = slope[((sym, 1),)], left.terms.get((), 0)
                value, rest = divmod(n - c, a)
                if rest or value < 1:
                    raise InputMismatch(name, f"input '{name}' dim {axis} is {n}, but {d} = {n} gives no positive "
                                        f"whole {sym} ({sym} = ({n} - {c}) / {a})" if c else
                                        f"input '{name}' dim {axis} is {n}, but {d} = {n} gives no positive "
                                        f"whole {sym} ({n} is not a multiple of {a})")
                binding[sym] = value
                progress = True


def last_uses(graph: Graph) -> dict[str, int]:
    """Tensor -> the index of the last node that reads it (tensors nobody reads are absent)."""
    return {t: i for i, node in enumerate(graph.nodes) for t in node.inputs if t is not None}


class _BoundTypes(dict):
    """Tensor name -> its type with the binding's values put in for the free dims, made on first use."""

    def __init__(self, graph: Graph, binding: dict[str, int]):
        super().__init__()
        self.graph, self.binding = graph, binding

    def __missing__(self, tensor: str) -> TensorType:
        t = self.graph.types[tensor]
        self[tensor] = bound = TensorType(t.dtype, tuple(d.subs(self.binding) for d in t.shape)) if self.binding else t
        return bound


def planned(graph: Graph, binding: dict[str, int], known: Known, optimize: bool) -> Graph:
    """The graph a plan runs: with `optimize`, rewritten (backends/rewrites.py), deciding from which
    tensors `known` holds, never from their values."""
    return rewrites.optimize(graph, binding, known) if optimize else graph


def _arrays_from(kernel, n_out: int):
    """`kernel`, returning arrays: NumPy's arithmetic on 0-d arrays returns scalars, which no later
    kernel can write into and which onnxruntime refuses as inputs."""
    if n_out == 1:
        return lambda *args: np.asarray(kernel(*args))
    return lambda *args: tuple(np.asarray(r) for r in kernel(*args))


def compile_plan(graph: Graph, binding: dict[str, int], values: dict[str, np.ndarray],
                 optimize: bool = True, check: Callable[[int], None] | None = None) -> Plan:
    """The steps that compute `graph` for this binding; `values` holds every param's array. With
    `optimize`, the graph is first rewritten (backends/rewrites.py) and elementwise ops write into
    an input buffer that nothing reads afterwards. With `check`, the estimate of the plan's peak
    memory (what peak_bytes gives) is handed to it before the plan allocates anything: it raises to
    refuse the plan."""
    known = Known(values)
    graph = planned(graph, binding, known, optimize)
    engine = Engine(known, optimize)
    if check is not None:
        check(_peak(graph, binding, engine))
    slots: dict[str, int] = {}

    def slot(tensor: str) -> int:
        if tensor not in slots:
            slots[tensor] = len(slots)
        return slots[tensor]

    for name in list(graph.inputs) + list(graph.params):
        slot(name)
    last_use = last_uses(graph)
    keep = set(graph.outputs.values())
    types = _BoundTypes(graph, binding)
    buffers = _Buffers(types, last_use, keep) if optimize else None
    steps = []
    for i, node in enumerate(graph.nodes):
        op: Op = node.op.bind(binding) if binding else node.op
        ins = tuple(slot(t) if t is not None else None for t in node.inputs)
        outs = tuple(slot(t) for t in node.outputs)
        dying = {t for t in node.inputs if t is not None and last_use.get(t) == i and t not in keep}
        # Outputs nobody reads die at once, except graph outputs.
        dying |= {t for t in node.outputs if t not in last_use and t not in keep}
        inplace = buffers.reusable_input(i, node, op) if buffers else None
        shapes = [tuple(int(d) for d in types[t].shape) if t is not None else None for t in node.inputs]
        free = tuple(sorted(slots[t] for t in dying))
        kernel = op.prepare_in(engine, *shapes)
        if any(types[t].rank == 0 for t in node.outputs):
            kernel, inplace = _arrays_from(kernel, len(outs)), None
        steps.append(Step(node.name, op.name, kernel, ins, outs, free, inplace, node.trace))
    return Plan({name: slots[name] for name in graph.inputs},
                tuple((slots[name], known[name]) for name in graph.params),
                tuple(steps), {k: slots[v] for k, v in graph.outputs.items()}, len(slots))


class _Buffers:
    """Which tensors share memory. An op that is not `fresh` may return a view of its inputs, so its
    outputs join its inputs' group; a group whose first tensor a fresh op made is owned by the plan.
    An elementwise op may write its result into an input when that input's group is owned, no
    tensor of it is read after this step or is a graph output, and the result has its shape and dtype."""

    def __init__(self, types: _BoundTypes, last_use: dict[str, int], keep: set[str]):
        self.types, self.last_use = types, last_use
        self.group: dict[str, str] = {}      # tensor -> its group's first tensor
        self.members: dict[str, list[str]] = {}
        self.owned: set[str] = set()
        self.keep = keep

    def _join(self, tensor: str, group: str) -> None:
        self.group[tensor] = group
        self.members.setdefault(group, []).append(tensor)

    def reusable_input(self, i: int, node, op: Op) -> int | None:
        chosen = None
        out_type = self.types[node.outputs[0]]
        for position in op.inplace:
            t = node.inputs[position] if position < len(node.inputs) else None
            # a ufunc's 0-d result is a NumPy scalar, which out= cannot write into
            if t is None or t not in self.group or self.group[t] not in self.owned or not out_type.rank:
                continue
            members = self.members[self.group[t]]
            if any(self.last_use.get(m, -1) > i or m in self.keep for m in members):
                continue
            if self.types[t] == out_type and sum(x == t for x in node.inputs) == 1:
                chosen = position
                break
        for out in node.outputs:
            if chosen is not None:
                self._join(out, self.group[node.inputs[chosen]])
            elif type(op).fresh:
                self._join(out, out)
                self.owned.add(out)
            else:
                sources = [self.group.get(t, t) for t in node.inputs if t is not None]
                group = sources[0] if sources else out
                for other in sources[1:]:      # a view of several inputs ties them together
                    for m in self.members.pop(other, [other]):
                        self._join(m, group)
                    self.owned.discard(other)
                self._join(out, group)
                self.owned.discard(group)
        return chosen



def peak_bytes(graph: Graph, binding: dict[str, int], optimize: bool = True) -> int:
    """An upper estimate of the memory a run of compile_plan(graph, binding, weights, optimize)'s
    plan allocates beyond the weights: the estimate that compile_plan hands its `check`, worked out
    here from types and param names alone, so that a run can be refused before anything is loaded."""
    known = Known(names=graph.params)
    return _peak(planned(graph, binding, known, optimize), binding, Engine(known, optimize))


def _peak(graph: Graph, binding: dict[str, int], engine: Engine) -> int:
    """The inputs and derived constants, then at each step the tensors alive, the step's outputs
    and its kernel's scratch space: the most of it at any step."""
    bound = _BoundTypes(graph, binding).__getitem__
    static = graph.static_tensors
    last_use = last_uses(graph)
    keep = set(graph.outputs.values())
    live = sum(nbytes(bound(t)) for t in graph.inputs)
    # derived constants that are new arrays (a folded mask, a zero state), not views of weights
    live += sum(nbytes(bound(t)) for node in graph.nodes for t in node.outputs if t in static and node.op.fresh)
    live += sum(nbytes(p.type) for p in graph.params.values() if p.allocated)
    peak = live
    for i, node in enumerate(graph.nodes):
        if set(node.outputs) <= static:
            continue
        ins = [bound(t) for t in node.inputs if t is not None]
        outs = [bound(t) for t in node.outputs]
        made = sum(nbytes(t) for t in outs)
        op = node.op.bind(binding) if binding else node.op
        peak = max(peak, live + made + op.scratch_in(engine, ins, outs))
        live += made
        dead = {t for t in node.inputs if t is not None and last_use[t] == i and t not in keep and t not in static}
        dead |= {t for t in node.outputs if t not in last_use and t not in keep}
        live -= sum(nbytes(bound(t)) for t in dead if t not in graph.params)
    return peak


def run_plan(plan: Plan, inputs: dict[str, np.ndarray], timings: list | None = None) -> dict[str, np.ndarray]:
    """The plan's outputs for these inputs; with `timings`, each step's seconds are appended to it.
    A kernel's failure (an index past a table) is a SpecError located at its node."""
    clock = time.perf_counter if timings is not None else None
    buffers: list = [None] * plan.size
    for slot, value in plan.constants:
        buffers[slot] = value
    for name, slot in plan.inputs.items():
        buffers[slot] = inputs[name]
    try:
        for step in plan.steps:
            if clock:
                started = clock()
            args = [buffers[s] if s is not None else None for s in step.inputs]
            while args and args[-1] is None:
                args.pop()
            if step.inplace is None:
                result = step.kernel(*args)
            else:
                result = step.kernel(*args, out=args[step.inplace])
            if len(step.outputs) == 1:
                buffers[step.outputs[0]] = result
            else:
                for s, r in zip(step.outputs, result):
                    buffers[s] = r
            for s in step.free:
                buffers[s] = None
            if clock:
                timings.append(clock() - started)
    except SpecError:
        raise                 # from a step of a scan's body, located there
    except Exception as e:   # whatever a kernel raised: the user's data broke it, located at the node
        raise node_error(step.trace, step.op, kernel_failure(e, args)) from None
    return {name: np.asarray(buffers[s]) for name, s in plan.outputs.items()}


@dataclass(frozen=True)
class Engine:
    """What this back end hands an op that carries a body graph (ops/base.py: Engine): the body
    compiled into a plan with the enclosing plan's known values and options, a plan run, and the
    estimate of a body's plan."""

    known: Known
    optimize: bool

    def compile(self, graph: Graph, binding: dict[str, int]) -> Plan:
        # A body param the enclosing plan has no value for (a trained param, which the training
        # step's graph takes as an input) becomes an input of the body's plan, which the op feeds
        # on each run: one plan then serves every value the param takes.
        fed = {name: p.type for name, p in graph.params.items() if name not in self.known}
        if fed:
            graph = dataclasses.replace(graph, inputs={**graph.inputs, **fed},
                                        params={n: p for n, p in graph.params.items() if n not in fed})
        return compile_plan(graph, binding, Known(self.known), self.optimize)

    run = staticmethod(run_plan)     # not a bound method: a kernel keeps it, and should not keep `known`

    def peak(self, graph: Graph, binding: dict[str, int]) -> int:
        return peak_bytes(graph, binding, self.optimize)


def binding_key(binding: dict[str, int]) -> tuple:
    return tuple(sorted(binding.items()))
