"""What every primitive op is: attributes (a frozen pydantic model), a shape rule, a NumPy kernel, an
ONNX lowering, its diagram label and its vector-Jacobian product (vjp), side by side. Helpers here
are the shape algebra the rules share and the pieces the labels share.

An op never imports a back end. One that carries a body graph (scan) is handed what it needs by the
back end that runs it, as onnx.reference hands its subgraph ops an evaluator: an `Engine` when the
NumPy back end plans it (`prepare_in`, `scratch_in`), the builder's `subgraph` when it is lowered."""

from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Callable, ClassVar, Protocol

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict

from ..dims import Dim, as_dim, format_shape
from ..types import FLOAT_DTYPES, INT_DTYPES, TensorType, nbytes


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _onnx_float(value: float) -> float:
    # ONNX stores a float attribute as float32: past its range the lowered model would hold inf
    if not abs(value) <= FLOAT32_MAX:
        raise ValueError(f"must be a finite number within float32's range (at most {FLOAT32_MAX:.7g} in size), "
                         "as ONNX stores it")
    return value


OnnxFloat = Annotated[float, AfterValidator(_onnx_float)]
"""A float attribute that lowers to an ONNX float attribute."""


class ShapeError(Exception):
    """An op's inputs or attributes do not fit; the message says what was expected."""


class KernelError(ValueError):
    """A value breaks an op's precondition at run time (a gather index past its table); the message
    names the value and the valid range. The back end locates it at the node."""


def kernel_failure(error: Exception, args) -> str:
    """What a kernel's exception tells the user: a KernelError's own message; any other exception
    by its type and text, with the types of the arrays the kernel was given."""
    if isinstance(error, KernelError):
        return str(error)
    shown = ", ".join(f"{a.dtype}{list(a.shape)}" for a in args if isinstance(a, np.ndarray))
    return f"{type(error).__name__}: {error}" + (f" (inputs: {shown})" if shown else "")


@dataclass(frozen=True)
class Port:
    """One input an op declares. An `optional` one may be left out (the op then gets None there); a
    `variadic` one takes one or more tensors."""

    name: str
    optional: bool = False
    variadic: bool = False

    def __str__(self) -> str:
        """As the docs and messages write it: `b?` for optional, `*xs` for variadic."""
        return ("*" if self.variadic else "") + self.name + ("?" if self.optional else "")


def ports(*required: str, optional: tuple[str, ...] = (), variadic: str | None = None) -> tuple[Port, ...]:
    """An op's inputs in order: the required ones, then the optional ones, then at most one variadic
    one: `ports("x", "w", optional=("b",))`, `ports(variadic="xs")`, `ports()` for none."""
    return (tuple(Port(n) for n in required) + tuple(Port(n, optional=True) for n in optional)
            + ((Port(variadic, variadic=True),) if variadic else ()))


@dataclass(frozen=True)
class Bounds:
    """What is known of a tensor's values before it runs: each is a whole number from lo to hi.
    With `exact`, lo and hi are values the tensor surely holds (a range's first and last), so a
    bound past a table proves that a gather fails; without it they may only enclose the values."""

    lo: int
    hi: int
    exact: bool = False

    def loose(self) -> "Bounds":
        return replace(self, exact=False)

    def within(self, dtype: str) -> "Bounds | None":
        """These bounds, if `dtype` holds every whole number between them exactly; else None."""
        most = _EXACT_WHOLE.get(dtype)
        if most is None or not most[0] <= self.lo <= self.hi <= most[1]:
            return None
        return self

    @staticmethod
    def combine(a: "Bounds | None", b: "Bounds | None", rule) -> "Bounds | None":
        """The bounds of rule(a, b) for a rule whose extremes lie at the corners (+, -, *); exact
        when both are and one of them is a single value (x + 1, 2 * x), which maps ends to ends."""
        if a is None or b is None:
            return None
        corners = [rule(x, y) for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
        return Bounds(min(corners), max(corners), a.exact and b.exact and (a.lo == a.hi or b.lo == b.hi))


# the whole numbers each dtype holds exactly: int ranges, and floats up to their mantissa
_EXACT_WHOLE = {
    "int64": (-2**63, 2**63 - 1), "int32": (-2**31, 2**31 - 1), "int8": (-128, 127), "uint8": (0, 255),
    "float64": (-2**53, 2**53), "float32": (-2**24, 2**24), "float16": (-2**11, 2**11),
}


@dataclass(frozen=True)
class In:
    """An example input: shape of ints, dtype, and the value range to draw from."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    low: float = -2.0
    high: float = 2.0
    values: Any = None          # an explicit array instead of random data

    def make(self, rng: np.random.Generator) -> np.ndarray:
        if self.values is not None:
            return np.asarray(self.values, dtype=self.dtype)
        if self.dtype == "bool":
            return rng.random(self.shape) < 0.5
        if self.dtype in INT_DTYPES:
            return rng.integers(int(self.low), int(self.high), self.shape).astype(self.dtype)
        return rng.uniform(self.low, self.high, self.shape).astype(self.dtype)


@dataclass(frozen=True)
class Example:
    inputs: tuple[In | None, ...]
    attrs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Drawn:
    """One node as a diagram (render.py) draws it, for its op's `label`: the types of its inputs
    (None for an omitted one) and outputs; per input, the short name of a param or constant drawn
    into the label rather than as an edge (None for the others); and how the diagram writes a dim."""

    ins: tuple[TensorType | None, ...]
    outs: tuple[TensorType, ...]
    folded: tuple[str | None, ...]
    dim: Callable[[Dim], str]

    def shape(self, shape) -> str:
        return "×".join(self.dim(d) for d in shape) if shape else "scalar"

    def folded_names(self) -> list[str]:
        return [f for f in self.folded if f is not None]


class Engine(Protocol):
    """What a back end hands an op that carries a body graph: the body compiled into that back end's
    plan (over the enclosing plan's weights and options), a plan run on inputs, and the peak memory
    estimate of the plan it would compile for a graph."""

    def compile(self, graph, binding: dict[str, int]) -> Any: ...

    def run(self, plan, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def peak(self, graph, binding: dict[str, int]) -> int: ...


class NoVjp(Exception):
    """The op has no vjp (its `no_vjp` says why), or none for these attributes; the autodiff
    transform locates the message at the node."""


class Grad(Protocol):
    """What an op's `vjp` emits its backward through (graphnet/transforms/autodiff.py implements
    it): Graph IR nodes of primitive ops, typed by their shape rules as they are added, so the
    backward keeps free dims symbolic like any graph."""

    def emit(self, op: str, *inputs: str | None, **attrs) -> Any:
        """Add a node of the op named `op` with these attrs; its output's tensor name (a tuple of
        names for an op of several outputs)."""
        ...

    def type_of(self, tensor: str) -> TensorType: ...

    def const(self, value: float, dtype: str) -> str:
        """A scalar constant."""
        ...

    def zeros(self, t: TensorType) -> str: ...

    def unbroadcast(self, dy: str, like: TensorType) -> str:
        """dy summed over the axes that broadcasting added or stretched, to the shape of `like`."""
        ...

    def unfused_gradient(self, op, xs: tuple[str | None, ...], dys: tuple[str | None, ...]) -> tuple[str | None, ...]:
        """The vjp of a fused op (rnn, lstm, gru) as the gradient of the scan of primitives it fuses:
        its inputs' cotangents, in the order of `xs`."""
        ...

    def body_gradient(self, body, wrt: list[str], cotangents: dict[str, str]) -> Any:
        """The gradient graph of a body graph (a scan's), as autodiff makes it for the whole graph:
        `wrt` its inputs and params to differentiate, `cotangents` output name -> the name of the
        input that takes its cotangent; the gradients are outputs named 'grad.<name>'."""
        ...


class Op(BaseModel):
    """Base of every primitive op. Subclasses declare fields (attributes) and the verbs: infer, compute,
    to_onnx, and label for diagrams."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, defer_build=True)

    name: ClassVar[str]
    onnx: ClassVar[str] = ""                      # the ONNX op it lowers to, for the docs
    inputs: ClassVar[tuple[Port, ...]] = ports("x")
    outputs: ClassVar[tuple[str, ...]] = ("y",)
    examples: ClassVar[tuple[Example, ...]] = ()
    # For the NumPy plan: `fresh` ops return new arrays, never a view of an input; `inplace` lists the
    # inputs that compute(..., out=that input) may overwrite with the result when shapes agree.
    fresh: ClassVar[bool] = False
    inplace: ClassVar[tuple[int, ...]] = ()
    takes_body: ClassVar[bool] = False            # carries a body graph (scan): see prepare_in
    # How a diagram draws it (render.py): a `joins` op reading two drawn branches is a circle; the
    # shorter of two branches from one fork into a `residual` one is a shortcut, dotted; a block call
    # with several key ops, a `convolution` among them, is labelled by its out channels and stride.
    joins: ClassVar[bool] = False
    residual: ClassVar[bool] = False
    convolution: ClassVar[bool] = False
    # Why the op has no vjp, for the docs and the autodiff error; '' for an op that defines `vjp`.
    no_vjp: ClassVar[str] = ""

    def output_names(self) -> tuple[str, ...]:
        return self.outputs

    def infer(self, *xs: TensorType) -> TensorType | tuple[TensorType, ...]:
        raise NotImplementedError

    def compute(self, *xs: np.ndarray):
        raise NotImplementedError

    def prepare(self, *shapes: tuple[int, ...] | None):
        """compute, for inputs of these shapes (None for an omitted one), with what depends only on
        the shapes worked out once: the NumPy plan calls this when it is made, not on every run."""
        return self.compute

    def prepare_in(self, engine: Engine, *shapes: tuple[int, ...] | None):
        """prepare, as the back end that `engine` belongs to plans the op: an op that carries a body
        graph has it compiled and run through `engine`; every other op needs nothing from it."""
        return self.prepare(*shapes)

    def to_onnx(self, b, *xs: str | None):
        raise NotImplementedError

    def vjp(self, g: Grad, xs: tuple[str | None, ...], ys: tuple[str, ...],
            dys: tuple[str | None, ...]) -> tuple[str | None, ...]:
        """The vector-Jacobian product, emitted through `g` as nodes of primitive ops: given the
        node's input tensors `xs` (None for an omitted one), its output tensors `ys` and their
        cotangents `dys` (None for an output no gradient reaches), the cotangent of each input, of
        its type, in the order of `xs`; None where no gradient flows (an integer input, indices,
        an omitted input). Raises NoVjp for attributes it cannot differentiate."""
        raise NoVjp(self.no_vjp or f"{self.name} has no vjp")

    def for_backward(self) -> "Op":
        """This op as the forward part of a gradient graph runs it: itself, or, for an op whose vjp
        needs values of its steps beyond its outputs, an op giving those as extra outputs after its
        own, which the vjp then receives in `ys` (scan: the carried states before every step)."""
        return self

    def macs(self, ins: list[TensorType], outs: list[TensorType]) -> Dim:
        """Multiply-accumulates: counted for matmul and convolution only (see docs/spec.md)."""
        return Dim(0)

    def scratch_bytes(self, ins: list[TensorType], outs: list[TensorType]) -> int:
        """Temporary memory the NumPy kernel may hold beyond its outputs, for these concrete types:
        by default one array the size of the outputs (most kernels make one intermediate)."""
        return sum(nbytes(t) for t in outs)

    def scratch_in(self, engine: Engine, ins: list[TensorType], outs: list[TensorType]) -> int:
        """scratch_bytes, as the back end that `engine` belongs to estimates it: an op that carries a
        body graph holds its body plan's peak."""
        return self.scratch_bytes(ins, outs)

    def label(self, node: Drawn) -> str:
        """The op's key attributes in a diagram, the notes' way (`3x3,128,stride 2`); '' for none."""
        return ""

    def call_label(self, node: Drawn) -> str | None:
        """What a collapsed block call shows when this op is its one key op (a conv's geometry, a
        linear's out features); None when the op is not a key op."""
        return None

    def value_bounds(self, ins: list[TensorType | None], bounds: list[Bounds | None]) -> Bounds | None:
        """Bounds of the output's values from the inputs' types and bounds (None where unknown), or
        None: unknown, the default. Raises ShapeError when the bounds prove that the op fails at
        run time. graphnet/bounds.py asks only when the op has no inputs or the bounds of one are
        known. Cheap: it reads attributes and bounds, never makes an array."""
        return None

    def bind(self, binding: dict[str, int]) -> "Op":
        """This op with every symbolic dim in its attributes replaced by its bound value."""
        updates = {}
        for key in type(self).model_fields:
            value = getattr(self, key)
            bound = _bind_value(value, binding)
            if bound is not value:
                updates[key] = bound
        return self.model_copy(update=updates) if updates else self


def same_values(self, ins, bounds) -> Bounds | None:
    """value_bounds of an op whose output holds exactly its first input's values (moved, repeated)."""
    return bounds[0]


def some_values(self, ins, bounds) -> Bounds | None:
    """value_bounds of an op whose output holds some of its first input's values (a slice)."""
    return bounds[0] and bounds[0].loose()


def _bind_value(value, binding):
    if isinstance(value, Dim):
        out = value.subs(binding)
        return out.value if out.is_const() else out
    if isinstance(value, (list, tuple)):
        items = [_bind_value(v, binding) for v in value]
        if any(a is not b for a, b in zip(items, value)):
            return type(value)(items)
    return value


# -- shared shape algebra ----------------------------------------------------------------------

def broadcast(*shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        result = Dim(1)
        for d in dims:
            if d == 1:
                continue
            if result == 1:
                result = d
            elif result != d:
                axis = i - rank
                raise ShapeError(
                    f"cannot broadcast {' with '.join(format_shape(s) for s in shapes)}: "
                    f"dim {axis} is {result} in one and {d} in another"
                    + ("" if result.is_const() and d.is_const() else " (not provably equal)"))
        out.append(result)
    return tuple(out)


def along_axis_transposed(g: "Grad", dy: str, axis: int, matrix: np.ndarray) -> str:
    """The vjp of y = M x along `axis` (M [out, in], a constant: resize, adaptive pooling): M^T dy
    along that axis, by one MatMul (on the last or second-to-last axis) or around a transpose."""
    t = g.type_of(dy)
    m = g.emit("constant", value=np.asarray(matrix, np.float64).tolist(), dtype=t.dtype)
    if axis == t.rank - 1:
        return g.emit("matmul", dy, m)
    if axis == t.rank - 2:
        return g.emit("matmul", g.emit("transpose", m), dy)
    perm = [i for i in range(t.rank) if i != axis] + [axis]
    moved = g.emit("matmul", g.emit("transpose", dy, perm=perm), m)
    return g.emit("transpose", moved, perm=[perm.index(i) for i in range(t.rank)])


def axis_index(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank


def require_float(x: TensorType, what: str = "input") -> None:
    if x.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"{what} must be a float tensor, got {x}")


def same_dtype(*xs: TensorType) -> str:
    dtypes = {x.dtype for x in xs}
    if len(dtypes) > 1:
        raise ShapeError("inputs must have one dtype, got " + ", ".join(str(x) for x in xs))
    return xs[0].dtype


def as_list(value, n: int, what: str, positive: bool = False) -> list:
    """An int or a list of n ints (per spatial axis) as a list of n; with `positive`, each >= 1."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ShapeError(f"{what} has {len(value)} values but the input has {n} spatial axes")
        values = list(value)
    else:
        values = [value] * n
    if positive and any(v < 1 for v in values):
        raise ShapeError(f"{what} must be positive, got {value}")
    return values


def const_int(d: Dim, what: str) -> int:
    d = as_dim(d)
    if not d.is_const():
        raise ShapeError(f"{what} must be a known number, got the free dim {d}")
    return d.value


# -- diagram labels ----------------------------------------------------------------------------

def label_ints(value) -> list[str]:
    return [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]


def label_per_axis(value, n: int) -> list[str]:
    """An int-or-list attribute (strides, kernel) as one string per spatial axis."""
    return label_ints(value) if isinstance(value, (list, tuple)) else label_ints(value) * n


def label_window(kernel: list[str], strides: list[str]) -> list[str]:
    parts = ["x".join(kernel)]
    if any(s != "1" for s in strides):
        parts.append("stride " + ("x".join(strides) if len(set(strides)) > 1 else strides[0]))
    return parts


def label_number(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def label_folded(node: Drawn) -> str:
    """What the op reads that is not drawn (a bias, a scale, an embedding table, a mask), named."""
    return ",".join(node.folded_names())


def label_axis(axis: int, node: Drawn) -> str:
    return ",".join([f"axis {axis}"] + node.folded_names())

