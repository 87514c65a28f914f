"""The `--json` reports against their contract, docs/report.schema.json (checked with the
jsonschema package, as a consumer would): versioned, one entry per spec in argument order, failing
specs included with their located errors, one type per field, errors of the whole command in JSON."""

import io
import json
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import graphnet as gn
from graphnet.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
SPECS = ROOT / "specs"
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
CHECK = jsonschema.Draft202012Validator(SCHEMA)
BAD = "graphnet: 1\nname: bad\ninputs: {x: [2]}\nnodes: [{op: rleu}]\noutputs: {y: '0'}\n"


def _report(capsys, argv, code=0) -> dict:
    assert main(argv) == code
    out = json.loads(capsys.readouterr().out)
    CHECK.validate(out)
    return out


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("name", ["mlp", "resnet18", "transformer_encoder", "lstm", "gcn"])
@pytest.mark.parametrize("depth", [None, 0, 1])
def test_reports_validate_against_the_schema(capsys, name, depth):
    argv = ["validate", str(SPECS / f"{name}.yaml"), "--json"] + ([] if depth is None else ["--depth", str(depth)])
    report = _report(capsys, argv)
    net = report["specs"][0]["network"]
    graph = gn.load(SPECS / f"{name}.yaml").graph
    assert net["params"] == graph.param_count() == sum(n["params"] for n in net["nodes"]) or depth == 0
    assert (net["nodes"] == []) == (depth == 0)


def test_one_entry_per_spec_in_argument_order_failures_included(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    paths = [str(SPECS / "mlp.yaml"), str(bad), str(SPECS / "lenet5.yaml")]
    report = _report(capsys, ["validate", *paths, "--json"], code=1)
    assert report["ok"] is False and report["errors"] == []
    assert [e["path"] for e in report["specs"]] == paths
    assert [e["ok"] for e in report["specs"]] == [True, False, True]
    failed = report["specs"][1]
    assert failed["network"] is None
    assert failed["errors"] == [{"file": str(bad), "line": 4, "col": 14, "notes": [],
                                 "message": "unknown op 'rleu'; did you mean 'relu'?"}]


def test_types_are_stable_whether_dims_are_bound_or_free(capsys):
    free = _report(capsys, ["validate", str(SPECS / "resnet18.yaml"), "--json", "--depth", "1"])
    bound = _report(capsys, ["validate", str(SPECS / "resnet18.yaml"), "--json", "--depth", "1", "--dim", "B=3"])
    a, b = free["specs"][0]["network"], bound["specs"][0]["network"]
    for key in ("macs", "macs_formula", "params", "peak_bytes"):
        assert type(a[key]) in (int, str, type(None)) and type(b[key]) in (int, str)
    assert a["macs"] is None and b["macs"] == 3 * int(a["macs_formula"].split("*")[0])
    for x, y in zip(a["nodes"], b["nodes"]):
        assert isinstance(x["shape"], list) and all(isinstance(d, str) for d in x["shape"])
        assert x["macs_share"] == pytest.approx(y["macs_share"]) if x["macs_share"] is not None else True


def test_a_command_line_error_is_a_json_report(capsys):
    report = _report(capsys, ["validate", str(SPECS / "mlp.yaml"), "--json", "--dim", "B"], code=1)
    assert report["ok"] is False and report["specs"] == []
    assert report["errors"][0]["file"] == "<command line>" and "--dim takes NAME=VALUE" in report["errors"][0]["message"]


def test_standard_input_is_named_in_the_report(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BAD.encode())))
    report = _report(capsys, ["validate", "-", "--json"], code=1)
    assert report["specs"][0]["path"] == "<stdin>" and report["specs"][0]["errors"][0]["file"] == "<stdin>"


def test_weights_reports_validate_and_errors_are_json(capsys, tmp_path):
    mlp = str(SPECS / "mlp.yaml")
    net = gn.load(mlp)
    np.savez(tmp_path / "w.npz", **net.init_weights(0))
    good = _report(capsys, ["weights", mlp, str(tmp_path / "w.npz"), "--json"])
    assert good["ok"] and good["command"] == "weights" and good["counts"]["matched"] == len(net.graph.params)
    np.savez(tmp_path / "half.npz", **{k: v for k, v in list(net.init_weights(0).items())[:2]})
    half = _report(capsys, ["weights", mlp, str(tmp_path / "half.npz"), "--json"], code=1)
    assert half["ok"] is False and half["counts"]["missing"] == len(net.graph.params) - 2
    missing = _report(capsys, ["weights", mlp, str(tmp_path / "nothing.npz"), "--json"], code=1)
    assert missing["ok"] is False and missing["errors"][0]["file"] == str(tmp_path / "nothing.npz")
