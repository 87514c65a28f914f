"""The Python API: `load` a spec into a Network, then summarize, initialize, run and export it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np

from .backends.numpy_backend import InputMismatch, Plan, bind_dims, binding_key, compile_plan, peak_bytes, run_plan
from .bounds import value_bounds
from .dims import format_shape
from .errors import Location, SpecError, did_you_mean
from .expand import expand
from .graph import Graph
from .load import load_program
from .init import init_weights
from .types import format_bytes
from .weights import check_weights


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


# Three quarters of the machine's RAM: a run that needs more would swap or be killed by the OS.
_RAM = _physical_memory()
DEFAULT_MAX_MEMORY = _RAM * 3 // 4 if _RAM else None


def load(path: str | Path, dims: dict[str, int] | None = None) -> "Network":
    """Parse, expand and type a spec, and check what its value bounds prove (graphnet/bounds.py).
    Raises SpecError with every located mistake."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load() takes the spec's path, got {type(path).__name__}")
    graph = expand(load_program(path), _dims(dims))
    value_bounds(graph)
    return Network(graph)


def import_onnx(source, dims: dict[str, int] | None = None, flat: bool = False) -> "tuple[Network, dict]":
    """An ONNX model (a path, bytes or an onnx.ModelProto) as a Network and its weights (qualified
    param name -> array), through the spec text `graphnet import` writes. Raises SpecError."""
    from .load import load_program_text
    from .onnx_import import import_model
    result = import_model(source, flat=flat)
    graph = expand(load_program_text(result.text, result.display), _dims(dims))
    value_bounds(graph)
    return Network(graph), result.weights


# What the API is handed is checked where it comes in, so that a wrong type is a TypeError that
# says what was expected, not an error from deep inside (difflib, a comparison, numpy's seeding).

def _dims(dims, what: str = "dims") -> dict[str, int] | None:
    if dims is None:
        return None
    if not isinstance(dims, Mapping):
        raise TypeError(f"{what} must be a mapping from dim name to whole number, e.g. {{'B': 8}}; "
                        f"got {type(dims).__name__}")
    for name, value in dims.items():
        if not isinstance(name, str):
            raise TypeError(f"{what}: a dim name must be a str, got {name!r} ({type(name).__name__})")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{what}: dim '{name}' must be a whole number, got {value!r} ({type(value).__name__})")
        if value < 1:
            raise ValueError(f"{what}: dim '{name}' must be positive, got {value}")
    return {k: int(v) for k, v in dims.items()}


def _arrays(arrays, what: str) -> None:
    if not isinstance(arrays, Mapping):
        raise TypeError(f"{what} must be a mapping from name to array, got {type(arrays).__name__}")
    for name in arrays:
        if not isinstance(name, str):
            raise TypeError(f"{what}: names must be str, got {name!r} ({type(name).__name__})")


def _memory(max_memory) -> None:
    if max_memory is None:
        return
    if isinstance(max_memory, bool) or not isinstance(max_memory, (int, np.integer)):
        raise TypeError(f"max_memory must be a number of bytes (e.g. 8 << 30) or None for no limit, "
                        f"got {max_memory!r} ({type(max_memory).__name__})")
    if max_memory < 0:
        raise ValueError(f"max_memory must be 0 or more bytes, got {max_memory}")


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be a whole number, got {seed!r} ({type(seed).__name__})")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more, got {seed}")
    return int(seed)


def _shape_view(t) -> tuple:
    return tuple(d.value if d.is_const() else str(d) for d in t.shape)


class Network:
    def __init__(self, graph: Graph):
        self.graph = graph

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def inputs(self) -> dict[str, tuple]:
        """Input name -> declared shape, free dims as their names."""
        return {k: _shape_view(t) for k, t in self.graph.inputs.items()}

    @property
    def outputs(self) -> dict[str, tuple]:
        return {k: _shape_view(self.graph.types[t]) for k, t in self.graph.outputs.items()}

    def summary(self, dims: dict[str, int] | None = None, depth: int | None = None) -> str:
        """The summary table; with `depth`, block calls below that many path levels are collapsed."""
        from .summary import summary_table
        return summary_table(self.graph, _dims(dims), depth)

    def init_weights(self, seed: int = 0) -> dict[str, np.ndarray]:
        return init_weights(self.graph, _seed(seed))

    def feed(self, inputs: "dict[str, Any] | Feed", source: str | None = None) -> "Feed":
        """The inputs checked, as arrays of the declared dtypes binding every free dim consistently,
        with the values of those dims: the one check of a run's inputs. An array that is no input
        is reported at `source`, the file the inputs came from, when there is one. A Feed is
        returned as it is: it was checked when it was made."""
        if isinstance(inputs, Feed):
            return inputs
        _arrays(inputs, "inputs")
        g = self.graph
        missing = [k for k in g.inputs if k not in inputs]
        extra = [k for k in inputs if k not in g.inputs]
        if missing:
            raise SpecError.at(g.input_locs.get(missing[0], Location(g.source)),
                               f"input '{missing[0]}' was not given{did_you_mean(missing[0], extra)}")
        if extra:
            raise SpecError.at(Location(source or g.source), f"'{extra[0]}' is not an input of '{g.name}'"
                               f"{did_you_mean(extra[0], g.inputs)} (inputs: {', '.join(g.inputs)})")
        arrays = {}
        for name, t in g.inputs.items():
            a = np.asarray(inputs[name])
            if a.dtype != np.dtype(t.dtype):
                raise SpecError.at(g.input_locs[name], f"input '{name}' must be {t.dtype}, got {a.dtype}")
            arrays[name] = a
        try:
            dims = bind_dims(g, {k: a.shape for k, a in arrays.items()})
        except InputMismatch as e:
            raise SpecError.at(g.input_locs[e.input], str(e)) from None
        return Feed(arrays, dims)

    def check_inputs(self, inputs: dict[str, Any], source: str | None = None) -> dict[str, np.ndarray]:
        """The arrays of `feed(inputs, source)`."""
        return self.feed(inputs, source).arrays

    def default_binding(self, dims: dict[str, int] | None = None) -> dict[str, int]:
        """The free dims as random_inputs binds them: from `dims`, else 1. (Dims given to `load`,
        as `--dim` gives them, are no longer free: the graph holds their values.)"""
        return {s: (_dims(dims) or {}).get(s, 1) for s in self.graph.free_dims()}

    def check_bounds(self, binding: dict[str, int]) -> None:
        """Refuse, located at the node, what the value bounds prove fails with these dims (a
        range(T) past a position table): graphnet/bounds.py, before anything runs."""
        value_bounds(self.graph, binding)

    def check_memory(self, binding: dict[str, int], max_memory: int | None = DEFAULT_MAX_MEMORY,
                     optimize: bool = True) -> None:
        """Refuse, naming the estimate, a binding whose estimated peak memory is over `max_memory`
        bytes (None: no limit). The estimate is that of the plan a session makes for the binding (with
        `optimize`, after its rewrites); it reads only types, so nothing is allocated first."""
        _memory(max_memory)
        _dims(binding, "binding")
        if max_memory is not None:
            self.refuse_over(peak_bytes(self.graph, binding, optimize), binding, max_memory)

    def refuse_over(self, need: int, binding: dict[str, int], max_memory: int | None) -> None:
        """Refuse, naming both, a run of this binding estimated to need more than `max_memory` bytes."""
        if max_memory is not None and need > max_memory:
            shapes = ", ".join(f"{k}{format_shape(d.subs(binding) for d in t.shape)}"
                               for k, t in self.graph.inputs.items())
            where = next(iter(self.graph.input_locs.values()), Location(self.graph.source))
            raise SpecError.at(where, f"running '{self.name}' on {shapes} needs about "
                               f"{format_bytes(need)} beyond its weights, over the memory limit of "
                               f"{format_bytes(max_memory)} (--max-memory)")

    def _checked(self, weights, source: str | None = None, allow_nonfinite: bool = False) -> dict[str, np.ndarray]:
        """The given weights (a dict, or a file from load_weights) checked against the params and
        cast to their dtypes where no value changes (errors name `source`, the file by default), or
        those of init_weights(seed=0)."""
        if weights is None:
            return self.init_weights(0)
        _arrays(weights, "weights")
        return check_weights(self.graph, weights, source or getattr(weights, "source", "<weights>"), allow_nonfinite)

    def session(self, weights: dict[str, np.ndarray] | None = None, *, optimize: bool = True,
                allow_nonfinite: bool = False, source: str | None = None,
                max_memory: int | None = DEFAULT_MAX_MEMORY) -> "Session":
        """A NumPy-backend session over fixed weights (checked once), compiling a plan per binding
        of the free dims. `optimize=False` runs the graph exactly as written, without plan-time
        rewrites (for debugging them). A binding whose estimated peak memory is over `max_memory`
        bytes (None: no limit) is refused before anything is allocated."""
        _memory(max_memory)
        return Session(self, self._checked(weights, source, allow_nonfinite), optimize, max_memory)

    def run(self, inputs: dict[str, Any], weights: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Run once on the NumPy back end; for repeated runs, keep a `session()`."""
        return self.session(weights).run(inputs)

    def to_onnx(self, weights: dict[str, np.ndarray] | None = None, opset: int = 17, *,
                allow_nonfinite: bool = False, source: str | None = None):
        from .backends.onnx_export import to_onnx
        return to_onnx(self.graph, self._checked(weights, source, allow_nonfinite), opset)

    def export_onnx(self, path: str | Path, weights: dict[str, np.ndarray] | None = None, opset: int = 17,
                    external_data: bool | None = None, **checks):
        """Write the model atomically after onnx's full checker accepts it, its weights in
        '<path>.data' when over 2 GB or when `external_data` asks (backends/onnx_export.export);
        returns the ModelProto. `checks` are to_onnx's allow_nonfinite and source."""
        from .backends.onnx_export import export
        return export(self.graph, self._checked(weights, **checks), path, opset, external_data)

    def random_inputs(self, dims: dict[str, int] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
        """Random inputs of the declared shapes, free dims taken from `dims` (default 1)."""
        return self.random_feed(dims, seed).arrays

    def random_feed(self, dims: dict[str, int] | None = None, seed: int = 0) -> "Feed":
        """A Feed of random inputs, made to fit (so not checked again), free dims from `dims` (default 1)."""
        rng = np.random.default_rng(_seed(seed))
        binding = self.default_binding(dims)
        out = {}
        for name, t in self.graph.inputs.items():
            shape = [d.subs(binding).value for d in t.shape]
            if t.dtype.startswith("float"):
                out[name] = rng.standard_normal(shape).astype(t.dtype)
            elif t.dtype == "bool":
                out[name] = rng.random(shape) < 0.5
            else:
                out[name] = rng.integers(0, 2, shape).astype(t.dtype)
        return Feed(out, binding)


@dataclass(frozen=True)
class Feed:
    """A run's inputs, checked once against the declarations (Network.feed), and the value of each
    free dim they bind: handed to the plan, the memory guard and onnxruntime, never checked again."""

    arrays: dict[str, np.ndarray]
    dims: dict[str, int]


class Session:
    """Fixed weights and one compiled plan per binding of the free dims, like an ORT session."""

    def __init__(self, net: Network, weights: dict[str, np.ndarray], optimize: bool = True,
                 max_memory: int | None = DEFAULT_MAX_MEMORY):
        self.net = net
        self.weights = weights
        self.optimize = optimize
        self.max_memory = max_memory
        self._plans: dict[tuple, Plan] = {}

    def plan(self, binding: dict[str, int]) -> Plan:
        """The plan for this binding of the free dims, compiled on first use after the value bounds
        and the memory guard accept the binding."""
        key = binding_key(binding)
        if key not in self._plans:
            self.net.check_bounds(binding)
            # refused, if it must be, on the plan's own estimate, before the plan allocates anything
            check = None if self.max_memory is None else (
                lambda need: self.net.refuse_over(need, binding, self.max_memory))
            self._plans[key] = compile_plan(self.net.graph, binding, self.weights, self.optimize, check)
        return self._plans[key]

    def run(self, inputs: "dict[str, Any] | Feed", timings: list | None = None) -> dict[str, np.ndarray]:
        """The outputs for these inputs (arrays by name, checked here, or a Feed, checked already);
        with `timings`, the seconds of each step of the plan are appended."""
        feed = self.net.feed(inputs)
        plan = self.plan(feed.dims)
        with np.errstate(all="ignore"):   # IEEE results (inf, nan) without warnings, as onnxruntime gives
            return run_plan(plan, feed.arrays, timings)

    def plan_for(self, inputs: "dict[str, Any] | Feed") -> Plan:
        return self.plan(self.net.feed(inputs).dims)
