"""The NumPy back end: a plan compiled once per binding of the free dims, then run many times.

A plan is a list of steps over integer buffer slots: the op with its dims bound, where its inputs
and outputs live, and which slots die after it, so intermediates are freed at their last use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import Graph
from ..ops import Op


@dataclass(frozen=True)
class Step:
    name: str
    kernel: object                 # the bound op's compute
    inputs: tuple[int | None, ...]
    outputs: tuple[int, ...]
    free: tuple[int, ...]          # slots whose last reader is this step


@dataclass(frozen=True)
class Plan:
    slots: dict[str, int]          # graph input and param name -> slot
    steps: tuple[Step, ...]
    outputs: dict[str, int]        # output name -> slot
    size: int                      # number of slots


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
                if sym in binding and binding[sym] != n:
                    raise InputMismatch(name, f"input '{name}' dim {axis} is {n}, but {sym} = {binding[sym]} "
                                     "from an earlier input")
                binding[sym] = n
    for name, t in graph.inputs.items():
        for axis, (d, n) in enumerate(zip(t.shape, shapes[name])):
            expected = d.subs(binding)
            if not expected.is_const():
                raise InputMismatch(name, f"input '{name}' dim {axis} ({d}) cannot be bound from the inputs")
            if expected.value != n:
                want = str(expected.value) if d.is_const() else f"{d} = {expected.value}"
                raise InputMismatch(name, f"input '{name}' dim {axis} must be {want}, got {n}")
    return binding


def compile_plan(graph: Graph, binding: dict[str, int]) -> Plan:
    slots: dict[str, int] = {}

    def slot(tensor: str) -> int:
        if tensor not in slots:
            slots[tensor] = len(slots)
        return slots[tensor]

    for name in list(graph.inputs) + list(graph.params):
        slot(name)
    last_use: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        for t in node.inputs:
            if t is not None:
                last_use[t] = i
    keep = set(graph.outputs.values())
    steps = []
    for i, node in enumerate(graph.nodes):
        op: Op = node.op.bind(binding) if binding else node.op
        ins = tuple(slot(t) if t is not None else None for t in node.inputs)
        outs = tuple(slot(t) for t in node.outputs)
        dying = {t for t in node.inputs if t is not None and last_use.get(t) == i and t not in keep}
        # Outputs nobody reads die at once, except graph outputs.
        dying |= {t for t in node.outputs if t not in last_use and t not in keep}
        steps.append(Step(node.name, op.compute, ins, outs, tuple(sorted(slots[t] for t in dying))))
    io = {name: slots[name] for name in list(graph.inputs) + list(graph.params)}
    return Plan(io, tuple(steps), {k: slots[v] for k, v in graph.outputs.items()}, len(slots))


def run_plan(plan: Plan, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    buffers: list = [None] * plan.size
    for name, slot in plan.slots.items():
        buffers[slot] = values[name]
    for step in plan.steps:
        args = [buffers[s] if s is not None else None for s in step.inputs]
        while args and args[-1] is None:
            args.pop()
        result = step.kernel(*args)
        if len(step.outputs) == 1:
            buffers[step.outputs[0]] = result
        else:
            for s, r in zip(step.outputs, result):
                buffers[s] = r
        for s in step.free:
            buffers[s] = None
    return {name: np.asarray(buffers[s]) for name, s in plan.outputs.items()}


def binding_key(binding: dict[str, int]) -> tuple:
    return tuple(sorted(binding.items()))
