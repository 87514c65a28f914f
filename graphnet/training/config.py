"""The training config: a YAML file validated like a spec (pydantic models, every mistake located at
its key or value, unknown names with a did-you-mean), every key also settable from the command line
(`--lr 0.01`, or any key as `--set optimizer.betas=[0.9,0.99]`), the flags overriding the file.

    loss: cross_entropy              # or {name: cross_entropy, target: label, label_smoothing: 0.1},
                                     # or per output: {logits: cross_entropy, aux: {name: mse, weight: 0.3}}
    optimizer: {name: adamw, lr: 0.001, weight_decay: 0.05}
    param_groups:                    # torch's param groups, chosen by name pattern
      - {params: ["*.bias", "*norm*"], weight_decay: 0}
    schedule: {name: cosine, T_max: 20}
    clip_grad_norm: 1.0
    epochs: 20
    batch_size: 64
    shuffle: true
    seed: 0
    validation: {split: 0.1}         # or {file: val.npz}
    metrics: [loss, accuracy, top5]
    checkpoint: {path: run.ckpt.npz, every: 1}
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import Diagnostic, Location, SpecError, did_you_mean
from ..source import LocDict, key_location, load_yaml, location_of, parse_yaml
from ..spec import data_path
from ..transforms.optim import GRAPH_OPTIMIZERS, Groups, Optimizer
from .lbfgs import LBFGS
from .schedules import SCHEDULES, Schedule

OPTIMIZERS: dict[str, type[BaseModel]] = {**GRAPH_OPTIMIZERS, "lbfgs": LBFGS}
# the std losses (graphnet/std/losses.yaml) a config may name
LOSSES = ("cross_entropy", "cross_entropy_probs", "nll_loss", "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss",
          "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div")
METRIC = re.compile(r"^(loss|accuracy|top([1-9][0-9]*))$")
COMMAND_LINE = Location("<command line>")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LossSpec(BaseModel):
    """A std loss, what it compares an output with (a data array), its weight in the total, and
    the loss block's own args (reduction, label_smoothing, ...)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(description="a std loss: " + ", ".join(LOSSES))
    target: str = Field("target", description="the data file's array the output is compared with")
    weight: float = Field(1.0, ge=0.0, description="the loss's weight in the total")

    @field_validator("name")
    @classmethod
    def _known(cls, name):
        if name not in LOSSES:
            raise ValueError(f"unknown loss '{name}'{did_you_mean(name, LOSSES)} (losses: {', '.join(LOSSES)})")
        return name

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class NamedSpec(BaseModel):
    """An optimizer or schedule: its name and its hyperparameters, checked against its own model."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ParamGroupSpec(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    params: list[str] = Field(min_length=1, description="glob patterns of qualified param names (*.bias)")


class ValidationSpec(_Strict):
    split: float | None = Field(None, gt=0.0, lt=1.0, description="the share of the training data held out")
    file: str | None = Field(None, description="a .npz data file like the training data")

    @model_validator(mode="after")
    def _one(self):
        if (self.split is None) == (self.file is None):
            raise ValueError("give one of split or file")
        return self


class CheckpointSpec(_Strict):
    path: str | None = Field(None, description="where to write the checkpoint (.npz), replaced atomically")
    every: int = Field(1, ge=1, description="write one every this many epochs (and at the end)")
    every_steps: int | None = Field(None, ge=1, description="write one every this many steps as well")


class TrainConfig(_Strict):
    loss: str | dict[str, Any] = "cross_entropy"
    optimizer: str | NamedSpec = "adam"
    param_groups: list[ParamGroupSpec] = []
    schedule: str | NamedSpec | None = None
    clip_grad_norm: float | None = Field(None, gt=0.0)
    epochs: int = Field(10, ge=1, strict=True)
    batch_size: int = Field(32, ge=1, strict=True)
    shuffle: bool = True
    seed: int = Field(0, ge=0, strict=True)
    validation: ValidationSpec | None = None
    metrics: list[str] = ["loss"]
    checkpoint: CheckpointSpec = CheckpointSpec()

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, metrics):
        for m in metrics:
            if not METRIC.match(m):
                known = ["loss", "accuracy", "top5"]
                raise ValueError(f"unknown metric '{m}'{did_you_mean(m, known)} (metrics: loss, accuracy, topK "
                                 "such as top5)")
        return metrics


DESCRIPTIONS = {
    "loss": "a std loss name, a loss {name, target, weight, ...its args}, or a mapping from output name to either",
    "optimizer": "an optimizer name or {name, ...hyperparameters with torch.optim's names}",
    "param_groups": "further param groups: params (glob patterns) and the hyperparameters they change",
    "schedule": "a learning-rate schedule name or {name, interval: epoch|step, ...its options}",
    "clip_grad_norm": "scale the gradients to at most this global L2 norm (torch.nn.utils.clip_grad_norm_)",
    "epochs": "passes over the training data", "batch_size": "examples per step",
    "shuffle": "reshuffle the training data every epoch (seeded)", "seed": "the seed of initial weights, shuffling and dropout",
    "validation": "held-out data: a share of the training data or a file", "metrics": "loss, accuracy, topK (top5)",
    "checkpoint": "when and where to write checkpoints to resume from",
}


class Resolved:
    """A config with its named parts made: the optimizer and groups, the schedule, and the losses
    per output (resolved against a network by `losses_for`)."""

    def __init__(self, config: TrainConfig, raw: Any, source: str):
        self.config, self.raw, self.source = config, raw, source
        self.optimizer = _named(OPTIMIZERS, config.optimizer, raw, ("optimizer",), source, "optimizer")
        groups = []
        for i, group in enumerate(config.param_groups):
            if isinstance(self.optimizer, LBFGS):
                raise SpecError.at(location_of(raw, ("param_groups",), Location(source)),
                                   "lbfgs takes one param group (as torch.optim.LBFGS)")
            update = {**self.optimizer.model_dump(), **(group.model_extra or {})}
            made = _model(type(self.optimizer), update, raw, ("param_groups", i), source)
            groups.append((tuple(group.params), made))
        self.groups = None if isinstance(self.optimizer, LBFGS) else Groups(self.optimizer, tuple(groups))
        self.schedule: Schedule = _named(SCHEDULES, config.schedule or "constant", raw, ("schedule",), source, "schedule")

    def loc(self, *path) -> Location:
        return location_of(self.raw, path, Location(self.source))

    def losses_for(self, outputs: list[str]) -> dict[str, LossSpec]:
        """Output name -> its loss: one loss for a single-output network, else a mapping."""
        value = self.config.loss
        if isinstance(value, str) or "name" in value:
            if len(outputs) != 1:
                raise SpecError.at(self.loc("loss"), f"the network has outputs {', '.join(outputs)}: give a loss "
                                   "per output, as `loss: {OUTPUT: NAME, ...}`")
            return {outputs[0]: _loss(value, self.raw, ("loss",), self.source)}
        out = {}
        for name, spec in value.items():
            if name not in outputs:
                raise SpecError.at(key_location(_at(self.raw, ("loss",)), name) or self.loc("loss"),
                                   f"'{name}' is not an output of the network{did_you_mean(name, outputs)} "
                                   f"(outputs: {', '.join(outputs)})")
            out[name] = _loss(spec, self.raw, ("loss", name), self.source)
        if not out:
            raise SpecError.at(self.loc("loss"), "no loss is given")
        return out


def _at(raw: Any, path: tuple) -> Any:
    for step in path:
        try:
            raw = raw[step]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _loss(value, raw, path, source) -> LossSpec:
    return _model(LossSpec, {"name": value} if isinstance(value, str) else value, raw, path, source)


def _named(table: dict, value, raw, path, source, what: str):
    spec = NamedSpec(name=value) if isinstance(value, str) else value
    if spec.name not in table:
        loc = location_of(raw, path + (() if isinstance(value, str) else ("name",)), Location(source))
        raise SpecError.at(loc, f"unknown {what} '{spec.name}'{did_you_mean(spec.name, table)} "
                                f"({what}s: {', '.join(table)})")
    data = {**spec.options} if isinstance(table[spec.name], type) and "name" not in table[spec.name].model_fields \
        else {"name": spec.name, **spec.options}
    return _model(table[spec.name], data, raw, path, source)


def _model(cls: type[BaseModel], data: dict, raw: Any, path: tuple, source: str):
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise SpecError([_diagnostic(err, raw, path, source, cls) for err in e.errors()[:1]]) from None


def _diagnostic(err: dict, raw: Any, prefix: tuple, source: str, model: type[BaseModel]) -> Diagnostic:
    """A pydantic error at `prefix` + its own path into the YAML, located there."""
    path = list(prefix) + list(data_path({**err, "loc": [s for s in err["loc"] if isinstance(s, (str, int))]},
                                         _at(raw, prefix)))
    where = ".".join(str(p) for p in path) or "top level"
    fallback = Location(source)
    if err["type"] == "extra_forbidden":
        container = _at(raw, tuple(path[:-1]))
        key = str(path[-1])
        allowed = _fields_at(model, tuple(path[len(prefix):-1]))
        hint = did_you_mean(key, allowed)
        listing = f" (allowed: {', '.join(sorted(allowed))})" if allowed and not hint else ""
        context = ".".join(str(p) for p in path[:-1]) or "the training config"
        return Diagnostic(key_location(container, key) or location_of(raw, tuple(path[:-1]), fallback),
                          f"unknown key '{key}' in {context}{hint}{listing}")
    if err["type"] == "missing":
        return Diagnostic(location_of(raw, tuple(path[:-1]), fallback), f"missing key '{path[-1]}' in "
                          f"{'.'.join(str(p) for p in path[:-1]) or 'the training config'}")
    msg = err["msg"].removeprefix("Value error, ")
    return Diagnostic(location_of(raw, tuple(path), fallback), f"{where}: {msg}")


def _fields_at(model: type[BaseModel], path: tuple) -> set[str]:
    """The keys the mapping at `path` below `model` allows, following nested models."""
    current: Any = model
    for step in path:
        field = current.model_fields.get(step) if isinstance(step, str) else None
        if field is None:
            return set()
        nested = [a for a in _alternatives(field.annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return set()
        current = nested[0]
    return set(current.model_fields)


def _alternatives(annotation) -> list:
    return list(getattr(annotation, "__args__", ())) or [annotation]


def load_config(path: str | None, overrides: list[tuple[str, Any]] = ()) -> Resolved:
    """The config from `path` (None: every default) with `overrides` ("a.b" key, value) from the
    command line put over it, validated."""
    raw = load_yaml(Path(path), path) if path else _empty("<defaults>")
    source = path or "<command line>"
    if raw is None:
        raw = _empty(source)
    if not isinstance(raw, dict):
        raise SpecError.at(getattr(raw, "loc", Location(source)), "a training config must be a YAML mapping")
    raw = copy.deepcopy(raw)
    for key, value in overrides:
        _override(raw, key.split("."), value)
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as e:
        raise SpecError([_diagnostic(e.errors()[0], raw, (), source, TrainConfig)]) from None
    return Resolved(config, raw, source)


def _empty(source: str) -> LocDict:
    d = LocDict()
    d.loc, d.key_locs, d.value_locs = Location(source), {}, {}
    return d


def _override(raw: LocDict, keys: list[str], value: Any) -> None:
    """Set raw[k1][k2]... = value, located on the command line; a string value where a mapping is
    wanted ("optimizer: adam" and --set optimizer.lr=...) becomes {name: that string}."""
    current = raw
    for key in keys[:-1]:
        nested = current.get(key)
        if isinstance(nested, str):
            nested = _empty(COMMAND_LINE.file)
            nested["name"], nested.value_locs["name"] = current[key], current.value_locs.get(key, COMMAND_LINE)
        elif not isinstance(nested, dict):
            nested = _empty(COMMAND_LINE.file)
            default = TrainConfig.model_fields[key].default if current is raw and key in TrainConfig.model_fields else None
            if isinstance(default, str):      # --lr with no optimizer written: the default optimizer's lr
                nested["name"], nested.value_locs["name"] = default, COMMAND_LINE
        current[key] = nested
        current.key_locs.setdefault(key, COMMAND_LINE)
        current.value_locs[key] = getattr(nested, "loc", COMMAND_LINE)
        current = nested
    last = keys[-1]
    if isinstance(current.get(last), dict) and "name" in current[last] and isinstance(value, str):
        # --optimizer sgd over `optimizer: {name: adam, lr: ...}`: the name changes, the options stay
        current, last = current[last], "name"
    current[last] = value
    current.key_locs[last] = COMMAND_LINE
    current.value_locs[last] = COMMAND_LINE


def parse_setting(text: str) -> tuple[str, Any]:
    """`--set KEY=VALUE`: the dotted key and the value read as YAML (so 0.1, true, [0.9, 0.99])."""
    key, sep, value = text.partition("=")
    if not sep or not all(part.isidentifier() for part in key.split(".")):
        raise SpecError.at(COMMAND_LINE, f"--set takes KEY=VALUE (KEY dotted, like optimizer.lr), got '{text}'")
    return key, parse_yaml(value, "<command line>") if value.strip() else None


def config_schema() -> dict:
    """The JSON Schema of training configs, for editors (docs/training.schema.json)."""
    schema = TrainConfig.model_json_schema()
    defs = schema.pop("$defs", {})
    props = schema["properties"]
    for key, text in DESCRIPTIONS.items():
        props[key]["description"] = text
    props["optimizer"] = {"description": DESCRIPTIONS["optimizer"], "anyOf": [
        {"enum": list(OPTIMIZERS)}, *[_named_schema(name, cls) for name, cls in OPTIMIZERS.items()]]}
    props["schedule"] = {"description": DESCRIPTIONS["schedule"], "anyOf": [
        {"enum": list(SCHEDULES)}, {"type": "null"}, *[_named_schema(name, cls) for name, cls in SCHEDULES.items()]]}
    loss = {"anyOf": [{"enum": list(LOSSES)}, {"type": "object", "required": ["name"], "properties": {
        "name": {"enum": list(LOSSES)}, "target": {"type": "string"}, "weight": {"type": "number", "minimum": 0}}}]}
    props["loss"] = {"description": DESCRIPTIONS["loss"], "anyOf": [*loss["anyOf"], {"type": "object",
                                                                                      "additionalProperties": loss}]}
    props["metrics"]["items"] = {"type": "string", "pattern": METRIC.pattern}
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "graphnet training config", **schema}
    if defs:
        out["$defs"] = defs
    return _strip_titles(out)


def config_schema_json() -> str:
    """The schema as `graphnet schema --training` prints it and docs/training.schema.json holds it."""
    import json
    return json.dumps(config_schema(), indent=2) + "\n"


def _named_schema(name: str, cls: type[BaseModel]) -> dict:
    s = cls.model_json_schema()
    props = {k: v for k, v in s.get("properties", {}).items() if k != "name"}
    return {"type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"const": name}, **props}}


def _strip_titles(value):
    if isinstance(value, dict):
        return {k: _strip_titles(v) for k, v in value.items() if k != "title" or not isinstance(v, str)}
    if isinstance(value, list):
        return [_strip_titles(v) for v in value]
    return value


__all__ = ["LOSSES", "OPTIMIZERS", "LossSpec", "Optimizer", "Resolved", "TrainConfig", "config_schema",
           "config_schema_json", "load_config", "parse_setting"]
