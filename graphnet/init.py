"""Parameter initialization schemes. Fans follow PyTorch: for a weight [out, in, *kernel],
fan_in = in * prod(kernel) and fan_out = out * prod(kernel); either can be given explicitly.

Every param draws from its own random stream, seeded by (seed, its qualified name), so a seed
gives the same weights in every command, whatever order the params are visited in."""

from __future__ import annotations

import hashlib
import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict


class Init(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


class _Fans(Init):
    fan_in: int | None = None
    fan_out: int | None = None

    def fans(self, shape: tuple[int, ...]) -> tuple[int, int]:
        if len(shape) < 2 and (self.fan_in is None or self.fan_out is None):
            raise ValueError(f"{self.kind} needs fan_in/fan_out for a param of rank {len(shape)}")
        receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
        fan_in = self.fan_in if self.fan_in is not None else shape[1] * receptive
        fan_out = self.fan_out if self.fan_out is not None else shape[0] * receptive
        return fan_in, fan_out


class Zeros(Init):
    kind: Literal["zeros"] = "zeros"

    def sample(self, shape, rng):
        return np.zeros(shape, np.float32)


class Ones(Init):
    kind: Literal["ones"] = "ones"

    def sample(self, shape, rng):
        return np.ones(shape, np.float32)


class Constant(Init):
    kind: Literal["constant"] = "constant"
    value: float

    def sample(self, shape, rng):
        return np.full(shape, self.value, np.float32)


class Normal(Init):
    kind: Literal["normal"] = "normal"
    mean: float = 0.0
    std: float = 1.0

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.std, shape).astype(np.float32)


class Uniform(Init):
    kind: Literal["uniform"] = "uniform"
    low: float = 0.0
    high: float = 1.0

    def sample(self, shape, rng):
        return rng.uniform(self.low, self.high, shape).astype(np.float32)


class XavierUniform(_Fans):
    kind: Literal["xavier_uniform"] = "xavier_uniform"
    gain: float = 1.0

    def sample(self, shape, rng):
        fan_in, fan_out = self.fans(shape)
        bound = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, shape).astype(np.float32)


class XavierNormal(_Fans):
    kind: Literal["xavier_normal"] = "xavier_normal"
    gain: float = 1.0

    def sample(self, shape, rng):
        fan_in, fan_out = self.fans(shape)
        return rng.normal(0.0, self.gain * math.sqrt(2.0 / (fan_in + fan_out)), shape).astype(np.float32)


class _Kaiming(_Fans):
    a: float = 0.0                  # negative slope of the leaky relu that follows
    mode: Literal["fan_in", "fan_out"] = "fan_in"

    def std(self, shape) -> float:
        fan_in, fan_out = self.fans(shape)
        gain = math.sqrt(2.0 / (1 + self.a ** 2))
        return gain / math.sqrt(fan_in if self.mode == "fan_in" else fan_out)


class KaimingUniform(_Kaiming):
    kind: Literal["kaiming_uniform"] = "kaiming_uniform"

    def sample(self, shape, rng):
        bound = math.sqrt(3.0) * self.std(shape)
        return rng.uniform(-bound, bound, shape).astype(np.float32)


class KaimingNormal(_Kaiming):
    kind: Literal["kaiming_normal"] = "kaiming_normal"

    def sample(self, shape, rng):
        return rng.normal(0.0, self.std(shape), shape).astype(np.float32)


SCHEMES: dict[str, type[Init]] = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "normal": Normal, "uniform": Uniform,
    "xavier_uniform": XavierUniform, "xavier_normal": XavierNormal,
    "glorot_uniform": XavierUniform, "glorot_normal": XavierNormal,
    "kaiming_uniform": KaimingUniform, "kaiming_normal": KaimingNormal,
    "he_uniform": KaimingUniform, "he_normal": KaimingNormal,
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
