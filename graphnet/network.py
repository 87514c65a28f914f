"""The Python API: `load` a spec into a Network, then summarize, initialize, run and export it."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, replace
from pathlib import Path
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends.numpy_backend import InputMismatch, Plan, bind_dims, binding_key, compile_plan, peak_bytes, run_plan
from .backends.threads import free_core_threads
from .bounds import value_bounds
from .dims import format_shape, humanize
from .errors import Location, SpecError, did_you_mean
from .expand import expand
from .graph import Graph
from .infer import bound_types
from .load import load_program
from .ops import ShapeError
from .init import init_weights
from .types import format_bytes

if TYPE_CHECKING:
    from .transforms.train_mode import ModeExtras
# train_mode and the weights package are imported where they are used: `graphnet validate` needs neither


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


# Three quarters of the machine's RAM: a run that needs more would swap or be killed by the OS.
_RAM = _physical_memory()
DEFAULT_MAX_MEMORY = _RAM * 3 // 4 if _RAM else None
# Ten tera multiply-accumulates: a minute or two of the NumPy back end at full speed on a laptop's
# cores. Past it a run is refused, as a hang would otherwise be the only answer (docs/security.md).
DEFAULT_MAX_MACS = 10**13


def load(path: str | Path, dims: dict[str, int] | None = None, *, text: str | None = None) -> "Network":
    """Parse, expand and type a spec, and check what its value bounds prove (graphnet/bounds.py).
    With `text`, the spec is that YAML text and `path` only names it (`<stdin>`, a notebook cell);
    its `use:` files are then found from the current folder. Raises SpecError with every located mistake."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load() takes the spec's path, got {type(path).__name__}")
    if text is not None and not isinstance(text, str):
        raise TypeError(f"load(text=...) takes the spec's YAML as a str, got {type(text).__name__}")
    graph = expand(load_program(path, text), _dims(dims))
    value_bounds(graph)
    return Network(graph)


def import_onnx(source, dims: dict[str, int] | None = None, flat: bool = False) -> "tuple[Network, dict]":
    """An ONNX model (a path, bytes or an onnx.ModelProto) as a Network and its weights (qualified
    param name -> array), through the spec text `graphnet import` writes. Raises SpecError."""
    from .load import load_program
    from .onnx_import import import_model
    result = import_model(source, flat=flat)
    graph = expand(load_program(result.display, result.text), _dims(dims))
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


def _limit(value, what: str, unit: str, example: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a number of {unit} (e.g. {example}) or None for no limit, "
                        f"got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{what} must be 0 or more {unit}, got {value}")


def _arrays(arrays, what: str) -> None:
    if not isinstance(arrays, Mapping):
        raise TypeError(f"{what} must be a mapping from name to array, got {type(arrays).__name__}")
    for name in arrays:
        if not isinstance(name, str):
            raise TypeError(f"{what}: names must be str, got {name!r} ({type(name).__name__})")


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be a whole number, got {seed!r} ({type(seed).__name__})")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more, got {seed}")
    return int(seed)


def _mode(mode) -> str:
    from .transforms.train_mode import MODES
    if mode not in MODES:
        raise ValueError(f"mode must be 'eval' (inference: running statistics, no dropout) or 'train' "
                         f"(batch statistics, active dropout), got {mode!r}")
    return mode


def _shape_view(t) -> tuple:
    return tuple(d.value if d.is_const() else str(d) for d in t.shape)


class Network:
    def __init__(self, graph: Graph):
        self.graph = graph
        self._sizes_fit: set[tuple] = set()     # bindings check_shapes accepted: a run checks twice

    def __repr__(self) -> str:
        def tensors(items) -> str:
            return ", ".join(f"{k}: {t}" for k, t in items)
        outputs = ((k, self.graph.types[t]) for k, t in self.graph.outputs.items())
        return (f"<Network {self.name} ({tensors(self.graph.inputs.items())}) -> ({tensors(outputs)}), "
                f"{self.graph.param_count():,} params>")

    def render(self, format: str = "mermaid", depth: int = 0, dims: dict[str, int] | None = None,
               expand: bool = False) -> str | bytes:
        """The diagram `graphnet render` draws: Mermaid or DOT text (a str), or an SVG, PNG or PDF
        laid out by Graphviz's dot (bytes; a SpecError when dot is missing). `depth` opens that many
        levels of block calls, `expand` all of them; `dims` binds free dims for the edge labels."""
        from .render import FORMATS, render
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be a whole number, 0 or more, got {depth!r}")
        data = render(self.graph, format, None if expand else depth, _dims(dims))
        return data.decode() if format in ("mermaid", "dot") else data

    def _repr_html_(self) -> str:
        """Jupyter's inline display: the summary (one row per top-level call) and the diagram, as
        SVG when Graphviz's dot is installed, else as Mermaid text in a `mermaid` block."""
        import html
        import shutil
        diagram = None
        if shutil.which("dot"):
            try:
                diagram = self.render("svg").decode()
                diagram = diagram[diagram.find("<svg"):]         # without the XML prolog and doctype
            except SpecError:                                    # too big for dot in its time
                diagram = None
        if diagram is None:
            diagram = f'<pre class="mermaid">{html.escape(self.render("mermaid"))}</pre>'
        return (f"<div class=\"graphnet-network\"><pre>{html.escape(self.summary(depth=1))}</pre>"
                f"{diagram}</div>")

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

    def summary(self, dims: dict[str, int] | None = None, depth: int | None = None, input_shapes: bool = False) -> str:
        """The summary table; with `depth`, block calls below that many path levels are collapsed
        (0: the totals alone) and each row's share of the params and MACs is shown; `input_shapes`
        adds the shape flowing into each row. The totals end with a run's estimated peak memory,
        free dims bound as random_inputs binds them (`dims`, else 1)."""
        from .summary import summary_table
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
            raise ValueError(f"depth must be a whole number, 0 or more, got {depth!r}")
        dims = _dims(dims)
        return summary_table(self.graph, dims, depth, input_shapes, self.peak_memory(dims))

    def peak_memory(self, dims: dict[str, int] | None = None) -> tuple[int, dict[str, int]] | None:
        """The estimated peak bytes of a NumPy run beyond the weights (what --max-memory is checked
        against), with the binding of the free dims it is for (`dims`, else 1); None when that
        binding cannot run (a bound the dims fail, or sizes an op cannot take: two pools on H = 1)."""
        binding = self.default_binding(dims)
        try:
            return peak_bytes(self.graph, binding), binding
        except (SpecError, ShapeError):
            return None

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
        """The free dims as random_inputs binds them: from `dims`, else the least value their facts
        allow (1 for a dim without facts). (Dims given to `load`, as `--dim` gives them, are no
        longer free: the graph holds their values.)"""
        def least(s: str) -> int:
            facts = self.graph.dim_facts.get(s)
            return 1 if facts is None else facts.least()
        return {s: (_dims(dims) or {}).get(s, least(s)) for s in self.graph.free_dims()}

    def check_bounds(self, binding: dict[str, int]) -> None:
        """Refuse, located at the node, what fails with these dims before anything runs: a shape
        rule the sizes break (a pool's window past what a strided conv left of T), and what the
        value bounds prove (a range(T) past a position table, graphnet/bounds.py)."""
        self.check_shapes(binding)
        value_bounds(self.graph, binding)

    def check_shapes(self, binding: dict[str, int]) -> None:
        """Refuse, located at the node, sizes an op's shape rule cannot take with these dims bound
        (infer.bound_types): what validate would say with --dim, rather than a kernel's exception."""
        key = binding_key(_dims(binding, "binding") or {})
        if key not in self._sizes_fit:
            bound_types(self.graph, dict(key))
            self._sizes_fit.add(key)

    def check_memory(self, binding: dict[str, int], max_memory: int | None = DEFAULT_MAX_MEMORY,
                     optimize: bool = True) -> None:
        """Refuse, naming the estimate, a binding whose estimated peak memory is over `max_memory`
        bytes (None: no limit). The estimate is that of the plan a session makes for the binding (with
        `optimize`, after its rewrites); it reads only types, so nothing is allocated first."""
        _limit(max_memory, "max_memory", "bytes", "8 << 30")
        self.check_shapes(binding)      # the estimate reads the ops' sizes, which must fit first
        if max_memory is not None:
            self.refuse_over(peak_bytes(self.graph, binding, optimize), binding, max_memory)

    def check_compute(self, binding: dict[str, int], max_macs: int | None = DEFAULT_MAX_MACS) -> None:
        """Refuse a binding whose multiply-accumulates (validate's count, bound) are over `max_macs`
        (None: no limit): the NumPy back end would run for hours where it is refused in no time."""
        _limit(max_macs, "max_macs", "multiply-accumulates", "10**13")
        _dims(binding, "binding")
        if max_macs is None:
            return
        need = self.graph.total_macs().subs(binding)
        if need.is_const() and need.value > max_macs:
            raise SpecError.at(self._input_loc(), f"running '{self.name}' on {self._shapes(binding)} takes about "
                               f"{humanize(need)} multiply-accumulates, over the compute limit of "
                               f"{humanize(max_macs)} (--max-compute; 'none' for no limit)")

    def refuse_over(self, need: int, binding: dict[str, int], max_memory: int | None) -> None:
        """Refuse, naming both, a run of this binding estimated to need more than `max_memory` bytes."""
        if max_memory is not None and need > max_memory:
            raise SpecError.at(self._input_loc(), f"running '{self.name}' on {self._shapes(binding)} needs about "
                               f"{format_bytes(need)} beyond its weights, over the memory limit of "
                               f"{format_bytes(max_memory)} (--max-memory)")

    def _shapes(self, binding: dict[str, int]) -> str:
        return ", ".join(f"{k}{format_shape(d.subs(binding) for d in t.shape)}" for k, t in self.graph.inputs.items())

    def _input_loc(self) -> Location:
        return next(iter(self.graph.input_locs.values()), Location(self.graph.source))

    def _checked(self, weights, source: str | None = None, allow_nonfinite: bool = False) -> dict[str, np.ndarray]:
        """The given weights (a dict, or a file from load_weights) checked against the params and
        cast to their dtypes where no value changes (errors name `source`, the file by default), or
        those of init_weights(seed=0)."""
        if weights is None:
            return self.init_weights(0)
        _arrays(weights, "weights")
        from .weights import check_weights
        return check_weights(self.graph, weights, source or getattr(weights, "source", "<weights>"), allow_nonfinite)

    def in_mode(self, mode: str = "eval", seed: int = 0, dropout: bool = True) -> tuple["Network", ModeExtras]:
        """This network as `mode` runs it, a new Network (this one is not changed), and what the
        mode adds: in train mode batch statistics, the running statistics' updates as outputs named
        after their params, and dropout masks as inputs (transforms/train_mode.py)."""
        from .transforms.train_mode import apply_mode
        graph, extras = apply_mode(self.graph, _mode(mode), _seed(seed), dropout=bool(dropout))
        return Network(graph), extras

    def _moded(self, mode: str, seed: int, weights, source, allow_nonfinite):
        """The network in `mode`, its extras, and the weights checked against it (a train-mode
        counter the weights lack starts at 0)."""
        net, extras = self.in_mode(mode, seed)
        if weights is not None and extras.new_params:
            source = source or getattr(weights, "source", None)
            _arrays(weights, "weights")
            weights = extras.complete(weights)
        return net, extras, net._checked(weights, source, allow_nonfinite)

    def session(self, weights: dict[str, np.ndarray] | None = None, *, optimize: bool = True,
                allow_nonfinite: bool = False, source: str | None = None,
                max_memory: int | None = DEFAULT_MAX_MEMORY, max_macs: int | None = DEFAULT_MAX_MACS,
                mode: str = "eval", seed: int = 0) -> "Session":
        """A NumPy-backend session over fixed weights (checked once), compiling a plan per binding
        of the free dims. `optimize=False` runs the graph exactly as written, without plan-time
        rewrites (for debugging them). A binding whose estimated peak memory is over `max_memory`
        bytes, or whose multiply-accumulates are over `max_macs` (None: no limit), is refused
        before anything is allocated. `mode="train"` runs batch norm on batch statistics, returning
        the updated running statistics as outputs named after their params, and dropout with masks
        drawn from `seed`, fresh on each run."""
        _limit(max_memory, "max_memory", "bytes", "8 << 30")
        _limit(max_macs, "max_macs", "multiply-accumulates", "10**13")
        net, extras, checked = self._moded(mode, seed, weights, source, allow_nonfinite)
        return Session(net, checked, optimize, max_memory, max_macs, extras)

    def run(self, inputs: dict[str, Any], weights: dict[str, np.ndarray] | None = None, *,
            mode: str = "eval", seed: int = 0) -> dict[str, np.ndarray]:
        """Run once on the NumPy back end; for repeated runs, keep a `session()`."""
        return self.session(weights, mode=mode, seed=seed).run(inputs)

    def to_onnx(self, weights: dict[str, np.ndarray] | None = None, opset: int = 17, *,
                allow_nonfinite: bool = False, source: str | None = None, mode: str = "eval", seed: int = 0,
                options=None):
        """The ModelProto in memory, of the network in `mode`, which its metadata_props record
        (`graphnet.mode`; in train mode also the mask inputs and state outputs,
        transforms/train_mode.py). `options` (backends.onnx_export.ExportOptions) switches the
        deployment rewrites off one by one, or asks for float16."""
        from .backends.onnx_export import to_onnx
        net, _, checked = self._moded(mode, seed, weights, source, allow_nonfinite)
        return to_onnx(net.graph, checked, opset, options)

    def export_onnx(self, path: str | Path, weights: dict[str, np.ndarray] | None = None, opset: int = 17,
                    external_data: bool | None = None, *, allow_nonfinite: bool = False,
                    source: str | None = None, mode: str = "eval", seed: int = 0, options=None, progress=None):
        """Write the model atomically after onnx's full checker accepts it, its weights in
        '<path>.data' when over 2 GB or when `external_data` asks (backends/onnx_export.export);
        returns the ModelProto as written, less the weights' bytes. allow_nonfinite, source, mode
        and options are to_onnx's; `progress(done, total)` is told the bytes of weights written."""
        from .backends.onnx_export import export
        net, _, checked = self._moded(mode, seed, weights, source, allow_nonfinite)
        return export(net.graph, checked, path, opset, external_data, options, progress)

    def export_triton(self, repo: str | Path, weights: dict[str, np.ndarray] | None = None, opset: int = 17,
                      external_data: bool | None = None, *, max_batch_size: int = 32, options=None,
                      progress=None, **checks):
        """Write a Triton model repository: REPO/NAME/1/model.onnx (as export_onnx writes it) and
        REPO/NAME/config.pbtxt (backends/onnx_triton.py, docs/serving.md). Returns the two paths."""
        from .backends.onnx_export import export
        from .backends.onnx_triton import export_triton
        weights = self._checked(weights, **checks)
        return export_triton(lambda path: export(self.graph, weights, path, opset, external_data, options, progress),
                             repo, self.name, max_batch_size)

    def _feed_with_masks(self, inputs: "dict[str, Any] | Feed", extras: ModeExtras, step: int = 0) -> "Feed":
        """feed(inputs), with the dropout masks of train-mode `step` drawn where they are not given."""
        if not extras.dropouts:
            return self.feed(inputs)
        arrays = inputs.arrays if isinstance(inputs, Feed) else inputs
        _arrays(arrays, "inputs")
        arrays = dict(arrays)
        user = _without(self.graph, {d.mask for d in extras.dropouts})
        try:
            dims = bind_dims(user, {k: np.shape(arrays[k]) for k in user.inputs})
        except (KeyError, InputMismatch):
            return self.feed(arrays)          # the full check says what is wrong with them
        return self.feed({**extras.dropout_masks(dims, step), **arrays})

    def gradient_graph(self, wrt: list[str] | None = None, mode: str = "train", dropout: bool = True) -> Graph:
        """The Graph IR computing the outputs and the gradients of `wrt` (params and inputs; by
        default the trainable float params and the float inputs) as outputs 'grad.<name>', from
        the inputs and a cotangent input 'cotangent.<output>' per float output
        (graphnet/transforms/autodiff.py), of the network in `mode` (in train mode batch norm's
        statistics and dropout's masks are primitives, so autodiff differentiates them too).
        Raises SpecError at a node whose op has no vjp."""
        return self._gradient(wrt, mode, 0, dropout)[0]

    def _gradient(self, wrt, mode: str, seed: int, dropout: bool = True):
        """(gradient graph, the moded network, its ModeExtras), made once per (wrt, mode, dropout)."""
        from .transforms.autodiff import gradient_graph
        key = (tuple(wrt) if wrt is not None else None, mode, dropout)
        cache = self.__dict__.setdefault("_gradient_graphs", {})
        if key not in cache:
            net, extras = self.in_mode(mode, dropout=dropout)
            cache[key] = (gradient_graph(net.graph, wrt), net, extras)
        graph, net, extras = cache[key]
        return graph, net, dataclasses.replace(extras, seed=_seed(seed))

    def vjp(self, inputs: dict[str, Any], weights: dict[str, np.ndarray] | None = None,
            cotangents: dict[str, Any] | None = None, mode: str = "train", *, seed: int = 0,
            dropout: bool = True, max_memory: int | None = DEFAULT_MAX_MEMORY) -> tuple[dict, dict, dict]:
        """(outputs, weight_grads, input_grads): the outputs for these inputs and weights, and the
        vector-Jacobian product with `cotangents` (output name -> array of its shape; an output not
        given has cotangent zero) for every trainable param (by qualified name) and float input,
        run by the NumPy back end on the gradient graph. In train mode the outputs include the
        running statistics' new values, named after their params; dropout masks come from `seed`
        (`dropout=False`: train-mode batch norm, dropout the identity)."""
        from .transforms.autodiff import COTANGENT, GRAD, differentiable
        _arrays(inputs, "inputs")
        cotangents = {} if cotangents is None else cotangents
        _arrays(cotangents, "cotangents")
        graph, net, extras = self._gradient(None, _mode(mode), seed, bool(dropout))
        for name in cotangents:
            if COTANGENT + name not in graph.inputs:
                raise SpecError.at(Location(self.graph.source), f"'{name}' is not a float output of '{self.name}'"
                                   f"{did_you_mean(name, self.graph.outputs)} (outputs: {', '.join(self.graph.outputs)})")
        feed = net._feed_with_masks(inputs, extras)
        binding = dict(feed.dims)
        arrays = dict(feed.arrays)
        for name, t in graph.inputs.items():
            if name.startswith(COTANGENT) and name not in arrays:
                given = cotangents.get(name[len(COTANGENT):])
                shape = [d.subs(binding).value for d in t.shape]
                arrays[name] = np.zeros(shape, t.dtype) if given is None else np.asarray(given)
        checked = net._checked(extras.complete(weights) if weights is not None else None)
        out = Network(graph).session(checked, max_memory=max_memory).run(arrays)
        wrt = differentiable(net.graph)
        outputs = {k: out[k] for k in net.graph.outputs}
        weight_grads = {w: out[GRAD + w] for w in wrt if w in net.graph.params}
        input_grads = {w: out[GRAD + w] for w in wrt if w in self.graph.inputs}
        return outputs, weight_grads, input_grads

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
                 max_memory: int | None = DEFAULT_MAX_MEMORY, max_macs: int | None = DEFAULT_MAX_MACS,
                 extras: ModeExtras | None = None):
        self.net = net
        self.weights = weights
        self.optimize = optimize
        self.max_memory = max_memory
        self.max_macs = max_macs
        if extras is None:
            from .transforms.train_mode import ModeExtras
            extras = ModeExtras("eval", 0)
        self.extras = extras
        self.steps = 0                    # runs so far: each train-mode run draws its own dropout masks
        self._plans: dict[tuple, Plan] = {}

    def plan(self, binding: dict[str, int]) -> Plan:
        """The plan for this binding of the free dims, compiled on first use after the value bounds
        and the memory guard accept the binding."""
        key = binding_key(binding)
        if key not in self._plans:
            self.net.check_bounds(binding)
            self.net.check_compute(binding, self.max_macs)
            # refused, if it must be, on the plan's own estimate, before the plan allocates anything
            check = None if self.max_memory is None else (
                lambda need: self.net.refuse_over(need, binding, self.max_memory))
            self._plans[key] = compile_plan(self.net.graph, binding, self.weights, self.optimize, check)
        return self._plans[key]

    def run(self, inputs: "dict[str, Any] | Feed", timings: list | None = None) -> dict[str, np.ndarray]:
        """The outputs for these inputs (arrays by name, checked here, or a Feed, checked already);
        with `timings`, the seconds of each step of the plan are appended. In train mode each run
        draws the next step's dropout masks (a mask given among the inputs is used as given)."""
        feed = self._with_masks(inputs)
        plan = self.plan(feed.dims)
        # IEEE results (inf, nan) without warnings, as onnxruntime gives; BLAS on the cores left free
        with np.errstate(all="ignore"), free_core_threads():
            return run_plan(plan, feed.arrays, timings)

    def _with_masks(self, inputs: "dict[str, Any] | Feed", advance: bool = True) -> Feed:
        """The inputs checked, with this run's dropout masks in train mode where they are not given
        (the next step's masks, unless `advance` is false: then the step is not counted)."""
        feed = self.net._feed_with_masks(inputs, self.extras, self.steps)
        self.steps += advance and bool(self.extras.dropouts)
        return feed

    def plan_for(self, inputs: "dict[str, Any] | Feed") -> Plan:
        return self.plan(self._with_masks(inputs, advance=False).dims)


def _without(graph: Graph, inputs: set[str]) -> Graph:
    """The graph less some inputs, for binding dims from the others."""
    return replace(graph, inputs={k: t for k, t in graph.inputs.items() if k not in inputs})
