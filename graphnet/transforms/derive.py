"""What graph rewrites share: the values known before any input arrives, and the params they derive.

A rewrite decides from types and from *which* tensors are known, never from their values. What it
derives (a folded mask, restacked cell weights) it adds to `Known` as the function that computes
it, and to the new graph as a non-trainable param. So the graph a plan will run, and its memory,
can be worked out before anything is allocated (`Known(names=...)` holds names only); the arrays
are computed, once each, when a plan or an export reads them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np

from ..graph import Graph, Node, Param
from ..types import TensorType


class Known(Mapping):
    """Tensor name -> array: the given arrays (weights), names known without their values, and
    arrays derived from them, computed on first read."""

    def __init__(self, arrays: Mapping[str, np.ndarray] | None = None, names: Iterable[str] = ()):
        self._given = arrays if arrays is not None else {}
        self._names = frozenset(names)
        self._recipes: dict[str, Callable[[], np.ndarray]] = {}
        self._made: dict[str, np.ndarray] = {}

    def derive(self, name: str, compute: Callable[[], np.ndarray]) -> None:
        """`name` is known from now on; `compute()` gives its array when it is first read."""
        self._recipes[name] = compute

    def __contains__(self, name) -> bool:
        return name in self._made or name in self._recipes or name in self._given or name in self._names

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._made:
            return self._made[name]
        if name in self._recipes:
            self._made[name] = value = np.asarray(self._recipes.pop(name)())
            return value
        if name in self._given:
            return self._given[name]
        if name in self._names:
            raise LookupError(f"'{name}' is known by name only here: its value was not given")
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._given, *self._names, *self._recipes, *self._made]))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def derived_param(node: Node, name: str, t: TensorType, allocated: bool) -> Param:
    """The param a rewrite adds for a derived tensor, located at the node it came from."""
    return Param(name, t, init=None, trainable=False, loc=node.trace[0].loc, allocated=allocated)


def rebuilt(graph: Graph, nodes: list[Node], new_params: dict[str, Param], types: dict) -> Graph:
    """The graph with these nodes, its params plus the new ones, less those nothing reads."""
    read = {t for node in nodes for t in node.inputs} | set(graph.outputs.values())
    params = {k: p for k, p in {**graph.params, **new_params}.items() if k in read}
    return dataclasses.replace(graph, nodes=nodes, params=params, types=types)
