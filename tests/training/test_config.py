"""The training config: read from YAML with the flags over it, every part made (optimizer, groups,
schedule, losses), and its JSON Schema current in docs/ and accepting what graphnet accepts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest

from graphnet.errors import SpecError
from graphnet.source import parse_yaml
from graphnet.training.config import config_schema, config_schema_json, load_config, parse_setting
from graphnet.transforms.optim.rules import SGD, AdamW

ROOT = Path(__file__).resolve().parent.parent.parent
CONFIG = """\
loss: {name: cross_entropy, label_smoothing: 0.1}
optimizer: {name: adamw, lr: 0.01, betas: [0.8, 0.99]}
param_groups:
  - {params: ["*.bias", "*norm*"], weight_decay: 0}
schedule: {name: cosine, T_max: 20}
epochs: 3
validation: {split: 0.2}
metrics: [loss, accuracy, top5]
"""


def _write(tmp_path, text=CONFIG):
    path = tmp_path / "train.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_every_part_is_made(tmp_path):
    r = load_config(_write(tmp_path))
    assert r.optimizer == AdamW(lr=0.01, betas=(0.8, 0.99))
    assert r.groups.index_of("fc1.bias") == 1 and r.groups.index_of("fc1.weight") == 0
    assert r.groups.optimizer(1).weight_decay == 0 and r.groups.optimizer(1).lr == 0.01
    assert r.schedule.lr(1.0, 20) == pytest.approx(0.0)
    loss = r.losses_for(["logits"])["logits"]
    assert (loss.name, loss.target, loss.args) == ("cross_entropy", "target", {"label_smoothing": 0.1})
    assert r.config.validation.split == 0.2 and r.config.metrics == ["loss", "accuracy", "top5"]


def test_flags_override_the_file(tmp_path):
    r = load_config(_write(tmp_path), [parse_setting("optimizer.betas=[0.5, 0.6]"), ("optimizer.lr", 0.5),
                                       ("epochs", 7), ("loss.target", "label"), ("metrics", ["loss"])])
    assert r.optimizer.lr == 0.5 and r.optimizer.betas == (0.5, 0.6) and r.config.epochs == 7
    assert r.losses_for(["logits"])["logits"].target == "label" and r.config.metrics == ["loss"]
    # another optimizer by flag keeps the file's options, which it must then accept
    with pytest.raises(SpecError, match=r"train.yaml:2:36: error: unknown key 'betas' in optimizer"):
        load_config(_write(tmp_path), [("optimizer", "sgd")])
    # with no file, every default, a flag naming a key of the default optimizer
    r = load_config(None, [("optimizer.lr", 0.2), ("optimizer.momentum", 0.9), ("optimizer", "sgd")])
    assert r.optimizer == SGD(lr=0.2, momentum=0.9)
    assert load_config(None).losses_for(["y"])["y"].name == "cross_entropy"


def test_a_loss_per_output(tmp_path):
    r = load_config(_write(tmp_path, "loss: {a: mse_loss, b: {name: l1_loss, weight: 0.5, target: tb}}\n"))
    losses = r.losses_for(["a", "b"])
    assert (losses["a"].name, losses["b"].weight, losses["b"].target) == ("mse_loss", 0.5, "tb")
    with pytest.raises(SpecError, match=r"the network has outputs a, b: give a loss per output"):
        load_config(None).losses_for(["a", "b"])


def test_committed_schema_is_current():
    assert (ROOT / "docs" / "training.schema.json").read_text() == config_schema_json(), \
        "regenerate: python -m graphnet schema --training > docs/training.schema.json"


def test_schema_accepts_what_graphnet_accepts_and_points_at_mistakes(tmp_path):
    validator = jsonschema.Draft202012Validator(config_schema())
    validator.check_schema(config_schema())
    configs = [CONFIG] + [p.read_text() for p in sorted((ROOT / "configs").glob("*.yaml"))]
    for text in configs:
        assert list(validator.iter_errors(parse_yaml(text, "<t>"))) == []
        load_config(_write(tmp_path, text))
    for bad in ("epoch: 3\n", "optimizer: {name: sgd, nesterow: true}\n", "schedule: {name: cosin, T_max: 2}\n"):
        assert list(validator.iter_errors(parse_yaml(bad, "<t>"))), bad
        with pytest.raises(SpecError):
            load_config(_write(tmp_path, bad))
