"""Graph IR written from Python: a transform that makes a graph of its own (an optimizer's update)
adds primitive op nodes one at a time, each typed by its op's own shape rule as it is added, so the
graph it returns is as checked as one expanded from YAML."""

from __future__ import annotations

from ..errors import Location
from ..graph import Frame, Graph, Node
from ..ops import OPS, TensorType


class GraphWriter:
    """Nodes of primitive ops added in order; tensors are named by the node that makes them."""

    def __init__(self, name: str, source: str):
        self.name = name
        self.source = source
        self.inputs: dict[str, TensorType] = {}
        self.types: dict[str, TensorType] = {}
        self.nodes: list[Node] = []
        self._scope = ""
        self._constants: dict[tuple, str] = {}

    @classmethod
    def extending(cls, graph: Graph, scope: str = "") -> "GraphWriter":
        """A writer adding to `graph`'s nodes (its `nodes` and `types` are the graph's and the new)."""
        w = cls(graph.name, graph.source)
        w.inputs, w.types, w.nodes = dict(graph.inputs), dict(graph.types), list(graph.nodes)
        return w.scope(scope)

    def input(self, name: str, t: TensorType) -> str:
        if name in self.types:
            raise ValueError(f"'{name}' is named twice in graph '{self.name}'")
        self.inputs[name] = self.types[name] = t
        return name

    def scope(self, path: str) -> "GraphWriter":
        """Node names from here on start with `path` (the param an update is for)."""
        self._scope = path
        return self

    def op(self, op_name: str, *inputs: str, what: str | None = None, **attrs) -> str:
        op = OPS[op_name].model_validate(attrs)
        stem = f"{self._scope}/{what or op_name}" if self._scope else (what or op_name)
        name, n = stem, 1
        while name in self.types:
            n += 1
            name = f"{stem}#{n}"
        t = op.infer(*(self.types[x] for x in inputs))
        self.types[name] = t
        trace = (Frame(Location(self.source), name, ""),)
        self.nodes.append(Node(name, op, tuple(inputs), (name,), trace))
        return name

    def const(self, value: float | int | bool, dtype: str) -> str:
        """A scalar constant, made once per value and dtype."""
        key = (repr(value), dtype)
        if key not in self._constants:
            saved, self._scope = self._scope, ""
            self._constants[key] = self.op("constant", what=f"const:{dtype}:{value!r}", value=value, dtype=dtype)
            self._scope = saved
        return self._constants[key]

    def graph(self, outputs: dict[str, str]) -> Graph:
        return Graph(self.name, dict(self.inputs), dict(outputs), {}, list(self.nodes), dict(self.types),
                     {k: Location(self.source) for k in self.inputs}, self.source,
                     {k: Location(self.source) for k in outputs})

    # the arithmetic updates are written in; a Python number becomes a constant of `x`'s dtype

    def _arg(self, x, like: str) -> str:
        if isinstance(x, str):
            return x
        return self.const(float(x), self.types[like].dtype)

    def add(self, a, b):
        return self.op("add", *self._pair(a, b))

    def sub(self, a, b):
        return self.op("sub", *self._pair(a, b))

    def mul(self, a, b):
        return self.op("mul", *self._pair(a, b))

    def div(self, a, b):
        return self.op("div", *self._pair(a, b))

    def maximum(self, a, b):
        return self.op("max", *self._pair(a, b))

    def minimum(self, a, b):
        return self.op("min", *self._pair(a, b))

    def pow(self, a, b):
        return self.op("pow", *self._pair(a, b))

    def _pair(self, a, b) -> tuple[str, str]:
        like = a if isinstance(a, str) else b
        return self._arg(a, like), self._arg(b, like)

    def sqrt(self, x: str) -> str:
        return self.op("sqrt", x)

    def abs(self, x: str) -> str:
        return self.op("abs", x)

    def neg(self, x: str) -> str:
        return self.op("neg", x)

    def where(self, cond: str, a, b, dtype: str | None = None) -> str:
        """a where cond, else b; `dtype` for the constants when both are numbers."""
        if dtype is not None:
            a, b = (x if isinstance(x, str) else self.const(float(x), dtype) for x in (a, b))
        return self.op("where", cond, *self._pair(a, b))

    def greater(self, a, b) -> str:
        return self.op("greater", *self._pair(a, b))

    def less(self, a, b) -> str:
        return self.op("less", *self._pair(a, b))

    def equal(self, a, b) -> str:
        return self.op("equal", *self._pair(a, b))

    def sign(self, x: str) -> str:
        """-1, 0 or 1 by the sign of x (no Sign primitive: two comparisons and two selects)."""
        below = self.where(self.less(x, 0), -1.0, 0.0, self.types[x].dtype)
        return self.where(self.greater(x, 0), 1.0, below)

    def lerp(self, a: str, b: str, weight: float) -> str:
        """a + weight * (b - a), torch.lerp's form."""
        return self.add(a, self.mul(self.sub(b, a), weight))
