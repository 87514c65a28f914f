"""Computed names: name templates (graphnet/names.py) and the `path` of nodes and params in a spec."""

import textwrap

import numpy as np
import pytest

import graphnet as gn
from graphnet.dims import Dim
from graphnet.names import BadName, format_name, parse_template


def _spec(tmp_path, text: str, name: str = "net.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _errors(tmp_path, text: str) -> list[str]:
    with pytest.raises(gn.SpecError) as e:
        gn.load(_spec(tmp_path, text))
    return [d.render().replace(str(tmp_path) + "/", "") for d in e.value.diagnostics]


# -- templates ------------------------------------------------------------------------------------

@pytest.mark.parametrize("template, scope, name", [
    ("features.0", {}, "features.0"),
    ("features.{index + 1}", {"index": 2}, "features.3"),
    ("denselayer{index+1}", {"index": 0}, "denselayer1"),
    ("weight_ih{suffix}", {"suffix": "_l1_reverse"}, "weight_ih_l1_reverse"),
    ("weight_ih{suffix}", {"suffix": ""}, "weight_ih"),
    ("block{b}-{i}", {"b": 1, "i": 0}, "block1-0"),
    ("conv.{1 if e != 1 else 0}", {"e": 1}, "conv.0"),
    ("conv.{1 if e != 1 else 0}", {"e": 6}, "conv.1"),
    ("{'a}b'[0]}", {}, "a"),                       # a brace inside a quoted string does not close
    ("l{C}", {"C": Dim(64)}, "l64"),                # a known dim is a number
    ("{0}", {}, "0"),
])
def test_a_template_gives_its_name(template, scope, name):
    assert format_name(template, scope) == name


@pytest.mark.parametrize("template, scope, column, message", [
    ("l{layr}", {"layer": 0}, 2, "in name 'l{layr}': unknown name 'layr'; did you mean 'layer'?"),
    ("x.{index +}", {"index": 0}, 10, "in name 'x.{index +}': expected a value but found the end of the expression"),
    ("fc{d / 2}", {"d": 4}, 3, "in name 'fc{d / 2}': {d / 2} gives the float 2.0; a part of a name must be a whole number or a string"),
    ("fc{flag}", {"flag": True}, 3, "in name 'fc{flag}': {flag} gives true; a part of a name must be a whole number or a string"),
    ("fc.{B}", {"B": Dim("B")}, 4, "in name 'fc.{B}': {B} gives the free dim B; a part of a name must be a whole number or a string"),
    ("fc.{[1]}", {}, 4, "in name 'fc.{[1]}': {[1]} gives a list; a part of a name must be a whole number or a string"),
    ("a{", {}, 1, "in name 'a{': '{' is never closed"),
    ("a}", {}, 1, "in name 'a}': '}' without a '{' before it"),
    ("a{{x}}", {}, 2, "in name 'a{{x}}': '{' inside a {...} part"),
    ("a{ }", {}, 1, "in name 'a{ }': '{}' holds no expression"),
    ("a b", {}, 1, "in name 'a b': ' ' cannot be in a name"),
    ("a/b", {}, 1, "in name 'a/b': '/' cannot be in a name"),
    ("a:b", {}, 1, "in name 'a:b': ':' cannot be in a name"),
    ("a..b", {}, 0, "name 'a..b' has an empty segment; a name is one or more segments separated by '.'"),
    (".a", {}, 0, "name '.a' has an empty segment"),
    ("a.{s}", {"s": ""}, 0, "name 'a.' (from 'a.{s}') has an empty segment"),
    ("a{s}", {"s": "b c"}, 0, "name 'ab c' (from 'a{s}') holds ' '"),
    ("{s}", {"s": ""}, 0, "name '' (from '{s}') is empty"),
    ("", {}, 0, "name '' is empty"),
    ("x" * 1001, {}, 0, "a name template is longer than 1000 characters"),
    ("{s}", {"s": "x" * 1001}, 0, "is longer than 1000 characters"),
])
def test_a_mistake_in_a_template_says_what_and_where(template, scope, column, message):
    with pytest.raises(BadName) as e:
        format_name(template, scope)
    assert e.value.message.startswith(message) or message in e.value.message
    assert e.value.column == column


def test_an_empty_name_only_where_allowed():
    assert format_name("", {}, empty_ok=True) == ""
    assert format_name("{'' if top else 'x'}", {"top": True}, empty_ok=True) == ""


def test_templates_are_parsed_once():
    assert parse_template("features.{index + 1}") is parse_template("features.{index + 1}")


# -- paths in specs -------------------------------------------------------------------------------

LINEAR = """
    graphnet: 1
    name: net
    use: [std]
    dims: {B: ~}
    inputs:
      x: [B, 4]
    blocks:
      pair:
        args: {suffix: {type: str, default: ""}}
        inputs: {x: [N, D]}
        params:
          scale: {shape: [D], init: ones, path: "scale{suffix}"}
        nodes:
          - {name: first, block: std.linear, path: "attention.self.query", args: {out: D}}
          - {name: mul, op: mul, inputs: [first, scale]}
        outputs: {y: mul}
    nodes:
      - {name: stem, block: std.linear, path: 0, args: {out: 4}}
      - {name: layers, block: pair, repeat: 2, path: "encoder.layer.{index}", args: {suffix: "_l1"}}
      - {name: inline, block: pair, path: ""}
      - {name: act, op: relu, path: "head-act"}
    outputs: {y: act}
"""


def test_paths_name_nodes_and_params(tmp_path):
    net = gn.load(_spec(tmp_path, LINEAR))
    assert list(net.graph.params) == [
        "0.weight", "0.bias",
        "encoder.layer.0.scale_l1", "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.0.attention.self.query.bias",
        "encoder.layer.1.scale_l1", "encoder.layer.1.attention.self.query.weight",
        "encoder.layer.1.attention.self.query.bias",
        "scale", "attention.self.query.weight", "attention.self.query.bias"]
    assert [n.name for n in net.graph.nodes] == [
        "0.weight_t", "0.matmul", "0.add",
        "encoder.layer.0.attention.self.query.weight_t", "encoder.layer.0.attention.self.query.matmul",
        "encoder.layer.0.attention.self.query.add", "encoder.layer.0.mul",
        "encoder.layer.1.attention.self.query.weight_t", "encoder.layer.1.attention.self.query.matmul",
        "encoder.layer.1.attention.self.query.add", "encoder.layer.1.mul",
        "inline.attention.self.query.weight_t", "inline.attention.self.query.matmul",
        "inline.attention.self.query.add", "inline.mul", "head-act"]


def test_a_path_changes_names_not_numbers(tmp_path):
    """The same network without paths, its weights renamed by hand, computes the same outputs."""
    plain = LINEAR.replace(', path: "scale{suffix}"', "").replace(', path: "attention.self.query"', "")
    plain = plain.replace(", path: 0", "").replace(', path: "encoder.layer.{index}"', "")
    plain = plain.replace(', path: ""', "").replace(', path: "head-act"', "")
    a, b = gn.load(_spec(tmp_path, LINEAR, "a.yaml")), gn.load(_spec(tmp_path, plain, "b.yaml"))
    wb = b.init_weights(seed=3)
    rng = np.random.default_rng(0)
    wb = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in wb.items()}
    # params are made in the same order, so the k-th of one is the k-th of the other
    assert [p.type for p in a.graph.params.values()] == [p.type for p in b.graph.params.values()]
    wa = dict(zip(a.graph.params, wb.values()))
    x = rng.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(a.run({"x": x}, weights=wa)["y"], b.run({"x": x}, weights=wb)["y"])


def test_numbering_that_skips_an_optional_layer(tmp_path):
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: net
        use: [std]
        dims: {B: ~}
        inputs:
          x: [B, 4, 8, 8]
        blocks:
          unit:
            args: {expand: bool}
            inputs: {x: [N, C, H, W]}
            nodes:
              - {name: expand, block: std.conv2d, path: 0, args: {out: C, kernel: 1}, if: expand}
              - {name: dw, block: std.conv2d, path: "{1 if expand else 0}", args: {out: C, kernel: 3, padding: 1, groups: C}}
              - {name: project, block: std.conv2d, path: "{2 if expand else 1}", args: {out: C, kernel: 1}}
            outputs: {y: project}
        nodes:
          - {name: a, block: unit, path: "features.1.conv", args: {expand: false}}
          - {name: b, block: unit, path: "features.2.conv", args: {expand: true}}
        outputs: {y: b}
    """))
    assert [p for p in net.graph.params if p.endswith("weight")] == [
        "features.1.conv.0.weight", "features.1.conv.1.weight",
        "features.2.conv.0.weight", "features.2.conv.1.weight", "features.2.conv.2.weight"]
    assert net.graph.params["features.1.conv.0.weight"].type.shape[1] == 1          # the depthwise conv
    assert net.graph.params["features.2.conv.1.weight"].type.shape[1] == 1


def test_a_scan_whose_path_is_empty_names_its_params_at_the_caller(tmp_path):
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: net
        use: [std]
        dims: {B: ~, T: ~}
        inputs:
          x: [B, T, 3]
        nodes:
          - {name: h0, op: constant, attrs: {value: 0.0, shape: [B, 5]}}
          - {name: l0, scan: std.rnn_cell, path: "", args: {hidden: 5, suffix: _l0}, over: [x], inputs: {x: x, h: h0}}
          - {name: cell, scan: std.rnn_cell, args: {hidden: 5}, over: [x], inputs: {x: l0.y, h: h0}}
        outputs: {y: cell.y}
    """))
    assert list(net.graph.params) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                      "cell.weight_ih", "cell.weight_hh", "cell.bias_ih", "cell.bias_hh"]
    scan = next(n for n in net.graph.nodes if n.name == "l0")
    assert all(n.name.startswith("l0.") for n in scan.op.body.nodes)
    assert set(scan.op.params) == {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}


def test_mistakes_in_paths_are_located(tmp_path):
    assert _errors(tmp_path, """
        graphnet: 1
        name: net
        use: [std]
        dims: {B: ~, D: 8}
        inputs:
          x: [B, D]
        blocks:
          named:
            args: {tag: any}
            inputs: {x: [N, F]}
            params:
              w: {shape: [F], init: ones, path: "w{tag}"}
            nodes:
              - {name: m, op: mul, inputs: [x, w]}
            outputs: {y: m}
        nodes:
          - {name: a, block: std.linear, repeat: 2, path: "layer{indx}", args: {out: D}}
          - {name: b, op: relu, repeat: 2, path: "act", inputs: [x]}
          - {name: c, block: named, args: {tag: 0.5}, inputs: [x]}
          - {name: d, op: relu, path: x, inputs: [x]}
          - {name: e, block: std.linear, path: head, args: {out: D}, inputs: [x]}
          - {name: f, block: std.linear, path: head, args: {out: D}, inputs: [x]}
          - {name: g, op: relu, path: "{'' if D > 1 else 'g'}", inputs: [x]}
        outputs: {a: a, b: b, c: c, d: d, e: e, f: f, g: g}
    """) == [
        "net.yaml:17:58: error: in name 'layer{indx}': unknown name 'indx'; did you mean 'index'?",
        "net.yaml:18:5: error: node 'act' (relu): the name 'act' is already taken by a node made before; "
        "every node and param needs its own path",
        "net.yaml:12:44: error: in name 'w{tag}': {tag} gives the float 0.5; a part of a name must be a "
        "whole number or a string\nnet.yaml:19:5: note: from 'c'",       # the call that passed tag
        "net.yaml:20:5: error: node 'x' (relu): the name 'x' is already taken by an input made before; "
        "every node and param needs its own path",
        "net.yaml:22:5: error: param 'weight': the name 'head.weight' is already taken by a param made "
        "before; every node and param needs its own path\n"
        "<std>/layers.yaml:15:15: note: in block 'std.linear' called at 'head'",
        "net.yaml:23:32: error: name '' (from '{'' if D > 1 else 'g'}') is empty; a name is one or more "
        "segments separated by '.', each of letters, digits, '_' and '-'",
    ]


def test_a_template_that_cannot_be_read_is_a_structural_error(tmp_path):
    assert _errors(tmp_path, """
        graphnet: 1
        name: net
        dims: {B: ~}
        inputs:
          x: [B, 8]
        params:
          w: {shape: [8], init: ones, path: "w{"}
        nodes:
          - {name: a, op: mul, inputs: [x, w], path: ""}
          - {name: b, op: relu, path: "b c"}
          - {name: c, op: relu, path: true}
        outputs: {y: c}
    """) == [
        "net.yaml:7:38: error: params.w.path: in name 'w{': '{' is never closed",
        "net.yaml:9:5: error: nodes.0: an op node's 'path' cannot be empty: it names the op",
        "net.yaml:10:32: error: nodes.1.path: in name 'b c': ' ' cannot be in a name; a name is one or more "
        "segments separated by '.', each of letters, digits, '_' and '-', written as text and {expr} parts",
        "net.yaml:11:31: error: nodes.2.path: Input should be a valid string",
    ]


def test_copies_may_share_a_path_or_add_no_segment(tmp_path):
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: net
        use: [std]
        dims: {B: ~}
        inputs:
          x: [B, 4]
        blocks:
          unit:
            args: {at: int}
            inputs: {x: [N, D]}
            nodes:
              - {name: fc, block: std.linear, path: "{at}", args: {out: D}}
              - {name: act, op: relu, path: "{at + 1}"}
            outputs: {y: act}
        nodes:
          - {name: features, block: unit, path: features, repeat: 2, args: {at: "2 * index"}}
          - {name: flat, block: unit, path: "", repeat: 2, args: {at: "10 + 2 * index"}}
        outputs: {y: flat}
    """))
    assert [p for p in net.graph.params if p.endswith("weight")] == [
        "features.0.weight", "features.2.weight", "10.weight", "12.weight"]
    assert [n.name for n in net.graph.nodes if n.op.name == "relu"] == [
        "features.1", "features.3", "flat.0.11", "flat.1.13"]
