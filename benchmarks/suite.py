"""What is benchmarked: the cases (a spec and its dims), the specs whose validation is timed, and
the targets the report marks pass or miss."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SPECS = Path(__file__).resolve().parent.parent / "specs"


@dataclass(frozen=True)
class Case:
    """One spec at one binding. `dims` holds free dims (they size the inputs) and overrides of
    fixed dims (the spec is loaded with those); the split is made when the spec is read."""

    model: str
    dims: tuple[tuple[str, int], ...] = ()

    @property
    def dims_dict(self) -> dict[str, int]:
        return dict(self.dims)

    @property
    def label(self) -> str:
        return " ".join([self.model] + [f"{k}={v}" for k, v in self.dims])

    @property
    def spec(self) -> Path:
        return SPECS / f"{self.model}.yaml"


def case(model: str, **dims: int) -> Case:
    return Case(model, tuple(dims.items()))


SUITES = {
    "default": [case("mlp", B=256), case("resnet18", B=1), case("resnet18", B=8), case("mobilenet_v2", B=1),
                case("transformer_encoder", B=8, T=128), case("lstm", B=16, T=100)],
}
VALIDATE_SPECS = ("resnet152", "bert_base")


def select(suite: str, models: list[str] | None, overrides: dict[str, int]) -> list[Case]:
    """The suite's cases, only those of `models` when given (a model outside the suite gets one
    case with no dims), each with the `overrides` of dims its spec has (a dim no selected spec has
    is an error)."""
    from graphnet.load import load_program
    cases = SUITES[suite]
    if models:
        unknown = [m for m in models if not (SPECS / f"{m}.yaml").is_file()]
        if unknown:
            raise SystemExit(f"no spec specs/{unknown[0]}.yaml")
        cases = [c for m in models for c in ([c for c in cases if c.model == m] or [Case(m)])]
    spec_dims = {m: set(load_program(SPECS / f"{m}.yaml").spec.dims) for m in {c.model for c in cases}}
    unused = [k for k in overrides if not any(k in dims for dims in spec_dims.values())]
    if unused:
        raise SystemExit(f"--dim {unused[0]}: no selected spec has a dim '{unused[0]}'")
    out: list[Case] = []
    for c in cases:
        dims = {**c.dims_dict, **{k: v for k, v in overrides.items() if k in spec_dims[c.model]}}
        merged = Case(c.model, tuple(dims.items()))
        if merged not in out:
            out.append(merged)
    return out


# -- targets ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """`value` of the named quantity, compared with `limit`: at most (`at_least` False) or at least.
    Time targets: value = median(numerator) / median(denominator). `cases`: model names, or
    model names with dims ("resnet18 B=8"); empty means every case."""

    name: str
    kind: str                        # "time", "slowdown", "memory" or "validate"
    limit: float
    at_least: bool = False
    numerator: str = ""
    denominator: str = ""
    cases: tuple[str, ...] = field(default=())
    strict: bool = False             # "<" rather than "<="

    def applies(self, c: Case) -> bool:
        if not self.cases:
            return True
        for want in self.cases:
            model, *dims = want.split()
            if model == c.model and all(d in [f"{k}={v}" for k, v in c.dims] for d in dims):
                return True
        return False

    def check(self, value: float | None) -> bool | None:
        if value is None:
            return None
        if self.at_least:
            return value >= self.limit
        return value < self.limit if self.strict else value <= self.limit

    @property
    def rule(self) -> str:
        return f"{'>=' if self.at_least else '<' if self.strict else '<='} {self.limit:g}"


TARGETS = [
    Target("graphnet / torch eager", "time", 1.0, numerator="graphnet", denominator="torch"),
    Target("graphnet / onnxruntime", "time", 1.5, numerator="graphnet", denominator="ort",
           cases=("mlp", "transformer_encoder", "lstm")),
    Target("graphnet / onnxruntime", "time", 2.5, numerator="graphnet", denominator="ort",
           cases=("resnet18", "mobilenet_v2")),
    Target("onnx.reference / graphnet", "time", 20.0, at_least=True, numerator="onnx-reference",
           denominator="graphnet", cases=("resnet18", "mobilenet_v2")),
    Target("onnx.reference / graphnet", "time", 2.0, at_least=True, numerator="onnx-reference",
           denominator="graphnet", cases=("mlp", "transformer_encoder", "lstm")),
    Target("ort(graphnet) / ort(torch)", "time", 1.0, numerator="ort", denominator="ort-torch"),
    # --contention only: graphnet slows beside a competing process no more than 1.5x what onnxruntime does
    Target("slowdown graphnet / slowdown ort", "slowdown", 1.5, numerator="graphnet", denominator="ort"),
    Target("graphnet peak / (weights + live)", "memory", 1.3, cases=("resnet18 B=8", "transformer_encoder")),
    Target("validate+summary in-process (s)", "validate", 0.3, strict=True),
    Target("validate cold CLI (s)", "validate", 1.0, strict=True),
]
