"""Parameter initialization schemes. Fans follow PyTorch: for a weight [out, in, *kernel],
fan_in = in * prod(kernel) and fan_out = out * prod(kernel); either can be given explicitly.

Every param draws from its own random stream, seeded by (seed, its qualified name), so a seed
gives the same weights in every command, whatever order the params are visited in.

An option that could not be sampled (a negative std, low above high, a fan of 0, an infinite
value) is refused when the spec is validated. Values are drawn in float64 a chunk at a time and
written straight into an array of the param's dtype, so a float32 param costs its own bytes and
not three times as many; the draws are the same as one draw of the whole array. A param of more
than MAX_PARAM_BYTES, or weights of more than MAX_INIT_BYTES in all, are not made at random, and
a scheme whose values overflow the param's dtype is an error at the param's `init`."""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from .errors import SpecError

MAX_PARAM_BYTES = 1 << 32      # 4 GiB: one param made at random
MAX_INIT_BYTES = 1 << 34       # 16 GiB: all the random weights of one network
_CHUNK = 1 << 20               # values drawn in float64 at a time (8 MiB)


class Init(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    kind: str

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator, dtype="float32") -> np.ndarray:
        """An array of `shape` and `dtype`, filled chunk by chunk from `draw`."""
        out = np.empty(shape, dtype)
        flat = out.reshape(-1)
        for start in range(0, flat.size, _CHUNK):
            flat[start:start + _CHUNK] = self.draw(min(_CHUNK, flat.size - start), shape, rng)
        return out

    def draw(self, n: int, shape: tuple[int, ...], rng: np.random.Generator):
        """The next `n` values (float64) for a param of `shape`, or one value for all."""
        raise NotImplementedError

    def check_shape(self, shape: tuple[int, ...], dtype="float32") -> None:
        """Raise ValueError if this scheme cannot make a param of exactly `shape` and `dtype`;
        only a scheme with given values can fail here."""

    def check(self, shape: tuple[int, ...]) -> None:
        """Raise ValueError if this scheme cannot be sampled for `shape` (fans it needs, a std or
        bound that overflows), by drawing no values."""
        try:
            self.draw(0, shape, _no_draws())
        except (ArithmeticError, ValueError) as e:
            raise ValueError(str(e) if isinstance(e, ValueError) else
                             f"{self.kind} cannot be sampled: its bound or std overflows a float") from None


@functools.cache
def _no_draws() -> np.random.Generator:
    # one generator for every check: a check draws no values, and making one per param cost more
    # than the rest of the check (about 30 us, on each of resnet152's 470 params)
    return np.random.default_rng(0)


class _Fans(Init):
    fan_in: int | None = Field(None, ge=1)
    fan_out: int | None = Field(None, ge=1)

    def fans(self, shape: tuple[int, ...]) -> tuple[int, int]:
        if len(shape) < 2 and (self.fan_in is None or self.fan_out is None):
            raise ValueError(f"{self.kind} needs fan_in/fan_out for a param of rank {len(shape)}")
        receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
        fan_in = self.fan_in if self.fan_in is not None else shape[1] * receptive
        fan_out = self.fan_out if self.fan_out is not None else shape[0] * receptive
        return fan_in, fan_out


class Zeros(Init):
    kind: Literal["zeros"] = "zeros"

    def draw(self, n, shape, rng):
        return 0.0


class Ones(Init):
    kind: Literal["ones"] = "ones"

    def draw(self, n, shape, rng):
        return 1.0


class Constant(Init):
    kind: Literal["constant"] = "constant"
    value: float

    def draw(self, n, shape, rng):
        return self.value


class Values(Init):
    """Given values, not drawn: a buffer whose contents are computed, such as Swin's relative
    position index. A list of numbers, or of lists of them, read in row-major order, as many as
    the shape holds; an expression may make it (`"[i % 7 for i in range(49)]"`)."""
    kind: Literal["values"] = "values"
    values: list[Any]      # numbers, or lists of them: checked below

    @field_validator("values")
    @classmethod
    def _numbers(cls, values):
        for v in _flat(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise PydanticCustomError("init_values", "values must be numbers, got {value}", {"value": repr(v)})
        return values

    def sample(self, shape, rng, dtype="float32"):
        flat = list(_flat(self.values))
        if len(flat) != math.prod(shape):
            raise ValueError(f"values gives {len(flat)} numbers for a param of shape {list(shape)} "
                             f"({math.prod(shape)} numbers)")
        if np.dtype(dtype).kind in "iub" and any(isinstance(v, float) and not v.is_integer() for v in flat):
            raise ValueError(f"values holds fractions, which {dtype} cannot hold")
        try:
            return np.array(flat, dtype=np.float64 if np.dtype(dtype).kind == "f" else np.int64).astype(dtype).reshape(shape)
        except OverflowError:
            raise ValueError(f"a value does not fit in {dtype}") from None

    def check(self, shape):
        return None     # the count is checked against the real shape, in check_shape

    def check_shape(self, shape, dtype="float32"):
        self.sample(shape, None, dtype)


def _flat(values):
    for v in values:
        if isinstance(v, list):
            yield from _flat(v)
        else:
            yield v


class Normal(Init):
    kind: Literal["normal"] = "normal"
    mean: float = 0.0
    std: float = Field(1.0, ge=0)

    def draw(self, n, shape, rng):
        return rng.normal(self.mean, self.std, n)


class Uniform(Init):
    kind: Literal["uniform"] = "uniform"
    low: float = 0.0
    high: float = Field(1.0, validate_default=True)     # checked against low even when not given

    @field_validator("high")
    @classmethod
    def _above_low(cls, high, info):
        low = info.data.get("low")
        if low is not None and high < low:
            raise PydanticCustomError("init_range", "high ({high}) is below low ({low})", {"high": high, "low": low})
        if low is not None and not math.isfinite(high - low):
            raise PydanticCustomError("init_range", "high - low overflows a float", {})
        return high

    def draw(self, n, shape, rng):
        return rng.uniform(self.low, self.high, n)


class XavierUniform(_Fans):
    kind: Literal["xavier_uniform"] = "xavier_uniform"
    gain: float = Field(1.0, ge=0)

    def draw(self, n, shape, rng):
        fan_in, fan_out = self.fans(shape)
        bound = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, n)


class XavierNormal(_Fans):
    kind: Literal["xavier_normal"] = "xavier_normal"
    gain: float = Field(1.0, ge=0)

    def draw(self, n, shape, rng):
        fan_in, fan_out = self.fans(shape)
        return rng.normal(0.0, self.gain * math.sqrt(2.0 / (fan_in + fan_out)), n)


class _Kaiming(_Fans):
    a: float = 0.0                  # negative slope of the leaky relu that follows
    mode: Literal["fan_in", "fan_out"] = "fan_in"

    def std(self, shape) -> float:
        fan_in, fan_out = self.fans(shape)
        gain = math.sqrt(2.0 / (1 + self.a ** 2))
        return gain / math.sqrt(fan_in if self.mode == "fan_in" else fan_out)


class KaimingUniform(_Kaiming):
    kind: Literal["kaiming_uniform"] = "kaiming_uniform"

    def draw(self, n, shape, rng):
        bound = math.sqrt(3.0) * self.std(shape)
        return rng.uniform(-bound, bound, n)


class KaimingNormal(_Kaiming):
    kind: Literal["kaiming_normal"] = "kaiming_normal"

    def draw(self, n, shape, rng):
        return rng.normal(0.0, self.std(shape), n)


SCHEMES: dict[str, type[Init]] = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "normal": Normal, "uniform": Uniform,
    "xavier_uniform": XavierUniform, "xavier_normal": XavierNormal,
    "glorot_uniform": XavierUniform, "glorot_normal": XavierNormal,
    "kaiming_uniform": KaimingUniform, "kaiming_normal": KaimingNormal,
    "he_uniform": KaimingUniform, "he_normal": KaimingNormal, "values": Values,
}


def split_init(raw: str | dict) -> tuple[str, Any] | None:
    """An `init` as a spec writes it, a scheme's name or one `scheme: options` pair, as (scheme,
    options as written); None for any other form."""
    if isinstance(raw, str):
        return raw, {}
    if len(raw) == 1:
        return next(iter(raw.items()))
    return None


def scheme_options(kind: str) -> list[str]:
    """The options a scheme takes."""
    return [name for name in SCHEMES[kind].model_fields if name != "kind"]


def bare_option(kind: str) -> str | None:
    """The option a scheme takes written bare, `{constant: 0.5}` for `{constant: {value: 0.5}}`:
    its only required one, if it has exactly one."""
    required = [name for name in scheme_options(kind) if SCHEMES[kind].model_fields[name].is_required()]
    return required[0] if len(required) == 1 else None


def make_init(kind: str, options: dict) -> Init:
    """Raises KeyError for an unknown scheme and pydantic's ValidationError for bad options."""
    cls = SCHEMES[kind]
    return cls(**options)


def param_rng(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.sha256(name.encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, *words]))


def init_weights(graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Each param of `graph` made by its init scheme, in its own dtype. Refused, at the param's
    `init`, past MAX_PARAM_BYTES or MAX_INIT_BYTES and where the values overflow the dtype."""
    total = 0
    for p in graph.params.values():
        nbytes = p.size * np.dtype(p.type.dtype).itemsize
        total += nbytes
        where = p.init_loc or p.loc
        if nbytes > MAX_PARAM_BYTES:
            raise SpecError.at(where, f"param '{p.name}' ({p.type}) is {_gib(nbytes)}, over the "
                                      f"{_gib(MAX_PARAM_BYTES)} that are made at random (init.MAX_PARAM_BYTES); "
                                      "give its weights in a file")
        if total > MAX_INIT_BYTES:
            raise SpecError.at(where, f"param '{p.name}' takes the random weights to {_gib(total)}, over "
                                      f"{_gib(MAX_INIT_BYTES)} (init.MAX_INIT_BYTES); give the weights in a file")
    out = {}
    for name, p in graph.params.items():
        shape = tuple(d.value for d in p.type.shape)
        try:
            with np.errstate(over="ignore", invalid="ignore"):     # counted below, where they are reported
                out[name] = p.init.sample(shape, param_rng(seed, name), p.type.dtype)
        except (ArithmeticError, ValueError) as e:
            why = "a number in it overflows a float" if isinstance(e, ArithmeticError) else str(e)
            raise SpecError.at(p.init_loc or p.loc, f"param '{name}': its init cannot be sampled: {why}") from None
        values = out[name]
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            raise SpecError.at(p.init_loc or p.loc, f"param '{name}': its init gives {bad} value{'s' if bad != 1 else ''} "
                                                    f"that {p.type.dtype} cannot hold (infinite or NaN)")
    return out


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"
