"""The Python API: `load` a spec into a Network, then summarize, initialize, run and export it."""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np

from .backends import rewrites
from .backends.numpy_backend import InputMismatch, Plan, bind_dims, binding_key, compile_plan, peak_bytes, run_plan
from .dims import format_shape
from .errors import Location, SpecError, did_you_mean
from .expand import expand
from .graph import Graph
from .load import load_program
from .ops.base import format_bytes
from .init import init_weights
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
    """Parse, expand and type a spec. Raises SpecError with every located mistake."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load() takes the spec's path, got {type(path).__name__}")
    return Network(expand(load_program(path), _dims(dims)))


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

    def check_inputs(self, inputs: dict[str, Any], source: str | None = None) -> dict[str, np.ndarray]:
        """Inputs as arrays of the declared dtypes, every free dim bound consistently; an array that
        is no input is reported at `source`, the file the inputs came from, when there is one."""
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
            self.binding(arrays)
        except InputMismatch as e:
            raise SpecError.at(g.input_locs[e.input], str(e)) from None
        return arrays

    def binding(self, arrays: dict[str, np.ndarray]) -> dict[str, int]:
        """The free dims' values in these (checked) inputs."""
        return bind_dims(self.graph, {k: a.shape for k, a in arrays.items()})

    def default_binding(self, dims: dict[str, int] | None = None) -> dict[str, int]:
        """The free dims as random_inputs binds them: from `dims`, else 1."""
        return {s: (_dims(dims) or {}).get(s, 1) for s in self.graph.free_dims()}

    def check_memory(self, binding: dict[str, int], max_memory: int | None = DEFAULT_MAX_MEMORY,
                     optimize: bool = True) -> None:
        """Refuse, naming the estimate, a binding whose estimated peak memory is over `max_memory`
        bytes (None: no limit); it reads only types, so nothing is allocated first."""
        _memory(max_memory)
        _dims(binding, "binding")
        if max_memory is None:
            return
        graph = rewrites.hoist_from_scans(self.graph) if optimize else self.graph
        need = peak_bytes(graph, binding)
        if need > max_memory:
            shapes = ", ".join(f"{k}{format_shape(d.subs(binding) for d in t.shape)}"
                               for k, t in self.graph.inputs.items())
            where = next(iter(self.graph.input_locs.values()), Location(self.graph.source))
            raise SpecError.at(where, f"running '{self.name}' on {shapes} needs about "
                               f"{format_bytes(need)} beyond its weights, over the memory limit of "
                               f"{format_bytes(max_memory)} (--max-memory)")

    def _checked(self, weights, source: str = "<weights>", allow_nonfinite: bool = False) -> dict[str, np.ndarray]:
        """The given weights after checking them against the params (errors name `source`), or
        those of init_weights(seed=0)."""
        if weights is None:
            return self.init_weights(0)
        _arrays(weights, "weights")
        check_weights(self.graph, weights, source, allow_nonfinite)
        return weights

    def session(self, weights: dict[str, np.ndarray] | None = None, *, optimize: bool = True,
                allow_nonfinite: bool = False, source: str = "<weights>",
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
                allow_nonfinite: bool = False, source: str = "<weights>"):
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
        rng = np.random.default_rng(_seed(seed))
        binding = self.default_binding(_dims(dims))
        out = {}
        for name, t in self.graph.inputs.items():
            shape = [d.subs(binding).value for d in t.shape]
            if t.dtype.startswith("float"):
                out[name] = rng.standard_normal(shape).astype(t.dtype)
            elif t.dtype == "bool":
                out[name] = rng.random(shape) < 0.5
            else:
                out[name] = rng.integers(0, 2, shape).astype(t.dtype)
        return out


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
        key = binding_key(binding)
        if key not in self._plans:
            self.net.check_memory(binding, self.max_memory, self.optimize)
            self._plans[key] = compile_plan(self.net.graph, binding, self.weights, self.optimize)
        return self._plans[key]

    def run(self, inputs: dict[str, Any], timings: list | None = None) -> dict[str, np.ndarray]:
        """The outputs; with `timings`, the seconds of each step of `plan_for(inputs)` are appended."""
        plan, arrays = self.plan_for(inputs), self.net.check_inputs(inputs)
        with np.errstate(all="ignore"):   # IEEE results (inf, nan) without warnings, as onnxruntime gives
            return run_plan(plan, arrays, timings)

    def plan_for(self, inputs: dict[str, Any]) -> Plan:
        return self.plan(self.net.binding(self.net.check_inputs(inputs)))
