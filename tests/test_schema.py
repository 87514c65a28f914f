"""The JSON Schema for editors (`graphnet schema`): a valid draft 2020-12 schema, current in docs/,
accepting every spec and library graphnet accepts, and pointing at the key in the mistakes it can
see. Checked with the `jsonschema` package, as an editor would check with its own validator."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import jsonschema
import pytest

import graphnet as gn
from graphnet.cli import main
from graphnet.errors import SpecError
from graphnet.ops import OPS
from graphnet.schema import schema_json, spec_schema
from graphnet.source import parse_yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
STD = sorted((ROOT / "graphnet" / "std").glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=../docs/graphnet.schema.json"
FENCE = re.compile(r"(?:<!--\s*(.*?)\s*-->\s*\n)?```(\w*)\n(.*?)\n```", re.S)

SPEC = jsonschema.Draft202012Validator(spec_schema())
LIBRARY = jsonschema.Draft202012Validator(spec_schema(library=True))


def errors(text: str, validator=SPEC) -> list:
    """The schema's errors for a YAML text, read by graphnet's own YAML reader."""
    data = parse_yaml(textwrap.dedent(text), "<test>")
    return sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))


def loads(tmp_path: Path, text: str) -> bool:
    """Whether graphnet validates the spec."""
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    try:
        gn.load(path)
    except SpecError:
        return False
    return True


# -- the schema itself ---------------------------------------------------------------------------

@pytest.mark.parametrize("library", [False, True])
def test_is_a_valid_draft_2020_12_schema(library):
    schema = spec_schema(library)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("library, name", [(False, "graphnet.schema.json"), (True, "graphnet-library.schema.json")])
def test_committed_schema_is_current(library, name):
    assert (ROOT / "docs" / name).read_text() == schema_json(library), \
        f"regenerate: graphnet schema{' --library' if library else ''} > docs/{name}"


@pytest.mark.parametrize("library", [False, True])
def test_cli_prints_the_schema(capsys, library):
    assert main(["schema", *(["--library"] if library else [])]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == spec_schema(library)
    assert out == schema_json(library)


def test_keywords_an_editor_understands():
    # VS Code's YAML extension validates with a draft-07 engine: keep to keywords that mean the same
    # there, and never constrain beside a $ref (draft-07 ignores a $ref's siblings).
    newer = {"prefixItems", "dependentSchemas", "dependentRequired", "unevaluatedProperties",
             "unevaluatedItems", "$dynamicRef", "$anchor", "minContains", "maxContains"}

    def walk(node, where):
        if isinstance(node, dict):
            assert not newer & set(node), where
            if "$ref" in node:
                assert set(node) <= {"$ref", "description", "default"}, where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    for library in (False, True):
        walk(spec_schema(library), "#")


def test_op_is_one_const_per_op_of_the_registry():
    # consts, not an enum: an editor's hover lists every value of an enum, and shows a const's own
    op = spec_schema()["$defs"]["NodeSpec"]["properties"]["op"]
    ops = [alt["const"] for alt in op["anyOf"]]
    # scan ops are made by scan nodes (`scan:`), with a block's graph as their body
    assert ops == sorted(name for name in OPS if name != "scan")
    assert "enum" not in op and "description" not in op
    assert all(alt["description"].startswith(f"{alt['const']}: ") for alt in op["anyOf"])


# -- what graphnet accepts, the schema accepts ----------------------------------------------------

def test_every_spec_names_the_schema_and_passes_it():
    assert SPECS
    for path in SPECS:
        text = path.read_text()
        assert text.splitlines()[0] == MODELINE, path.name
        assert not errors(text), (path.name, [e.message for e in errors(text)])


def test_every_std_library_file_passes_the_library_schema():
    assert STD
    for path in STD:
        found = errors(path.read_text(), LIBRARY)
        assert not found, (path.name, [(list(e.absolute_path), e.message) for e in found])


def test_every_doc_example_that_validates_passes():
    count = 0
    for m in FENCE.finditer((ROOT / "docs" / "spec.md").read_text()):
        comment, lang, body = m.group(1) or "", m.group(2), m.group(3)
        if lang != "yaml" or not re.search(r"^graphnet: \d", body, re.M) or "fails" in comment:
            continue
        found = errors(body, LIBRARY if "lib" in comment.split() else SPEC)
        assert not found, (comment, [(list(e.absolute_path), e.message) for e in found])
        count += 1
    assert count >= 10


def test_shorthands_expressions_and_optional_forms(tmp_path):
    spec = """\
        graphnet: 1
        name: forms
        dims: {B: ~, D: 8, half: D // 2}
        inputs:
          x: [B, D]                                   # shape shorthand
          m: {shape: [B, D], dtype: float32, optional: false, doc: a mask}
        params:
          z: {shape: [D], init: zeros}                # a scheme name
          c: {shape: [D], init: {constant: 0.5}}      # constant's value shorthand
          n: {shape: [D], init: {normal: {std: "1 / sqrt(D)"}}}
          k: {shape: [D, D], init: {kaiming_uniform: {a: "sqrt(5)", mode: fan_out}}}
          o: {shape: [D], init: {ones: ~}, trainable: false, if: "D > 4"}
        blocks:
          unit:
            args: {widths: list, scale: {type: float, default: 1.0}}   # arg type shorthand
            inputs: {h: ["...", F]}
            dims: {quarter: F // 4}
            nodes:
              - {name: r, op: relu, args: {}}         # empty args on an op node are allowed
            outputs: {y: r}
        nodes:
          - {name: a, op: add, inputs: [x, z]}
          - {name: b, op: mul, inputs: {a: a, b: c}}
          - {name: b2, op: add, inputs: [b, n]}
          - {name: b3, op: add, inputs: [b2, o]}
          - {name: mm, op: matmul, inputs: [b3, k]}
          - {name: g, op: add, inputs: [mm, m]}
          - {name: u, block: unit, args: {widths: [1]}}
          - {name: acts, op: leaky_relu, for_each: [{alpha: 0.1}, {alpha: "0.1 * 2"}]}
          - {name: s, op: reduce_sum, attrs: {axes: [-1], keepdims: 0}}
          - {name: cl, op: clip, inputs: [acts], attrs: {min: ~, max: "6"}}
          - {name: ge, op: gelu, inputs: [cl], attrs: {approximate: "'tanh' if D > 2 else 'none'"}}
          - {name: re, op: reshape, inputs: [ge], attrs: {shape: [B, half, 2]}}
          - {name: rep, op: relu, inputs: [re], repeat: 2}
        outputs: {y: s, z: rep, w: u}
        """
    assert loads(tmp_path, spec)
    assert not errors(spec), [(list(e.absolute_path), e.message) for e in errors(spec)]


# -- mistakes, pointed at ------------------------------------------------------------------------

def only(found: list):
    assert len(found) == 1, [(list(e.absolute_path), e.message) for e in found]
    return found[0]


def test_misspelled_node_key_points_at_the_key(tmp_path):
    spec = """\
        graphnet: 1
        name: typo
        dims: {B: ~}
        inputs: {x: [B, 4]}
        nodes:
          - {op: softmax, atrs: {axis: 1}}
        outputs: {y: "0"}
        """
    assert not loads(tmp_path, spec)
    e = only(errors(spec))
    assert e.validator == "additionalProperties"
    assert list(e.absolute_path) == ["nodes", 0]
    assert e.message == "Additional properties are not allowed ('atrs' was unexpected)"


def test_misspelled_top_level_key_points_at_the_key(tmp_path):
    spec = """\
        graphnet: 1
        name: typo
        dims: {B: ~}
        input: {x: [B, 4]}
        nodes:
          - {op: relu}
        outputs: {y: "0"}
        """
    assert not loads(tmp_path, spec)
    e = only(errors(spec))
    assert e.validator == "additionalProperties" and list(e.absolute_path) == []
    assert "'input' was unexpected" in e.message


def test_misspelled_keys_deeper_down(tmp_path):
    spec = """\
        graphnet: 1
        name: typo
        dims: {B: ~}
        inputs: {x: {shape: [B, 4], dtyp: float32}}
        params:
          w: {shape: [4], init: zeros, trainabel: false}
        blocks:
          blk:
            input: {h: [N, F]}
            nodes:
              - {op: relu}
            outputs: {y: "0"}
        nodes:
          - {op: mul, inputs: [x, w]}
        outputs: {y: "0"}
        """
    assert not loads(tmp_path, spec)
    found = [(list(e.absolute_path), e.message) for e in errors(spec)
             if e.validator == "additionalProperties"]
    assert (["blocks", "blk"], "Additional properties are not allowed ('input' was unexpected)") in found
    assert (["params", "w"], "Additional properties are not allowed ('trainabel' was unexpected)") in found
    # x is an input mapping or a shape list: the anyOf error is at the input
    assert any(e.validator == "anyOf" and list(e.absolute_path) == ["inputs", "x"] for e in errors(spec))
    context = [c.message for e in errors(spec) if list(e.absolute_path) == ["inputs", "x"] for c in e.context]
    assert "Additional properties are not allowed ('dtyp' was unexpected)" in context


def test_unknown_op_points_at_the_op(tmp_path):
    spec = """\
        graphnet: 1
        name: typo
        dims: {B: ~}
        inputs: {x: [B, 4]}
        nodes:
          - {op: rleu}
        outputs: {y: "0"}
        """
    assert not loads(tmp_path, spec)
    e = only(errors(spec))
    assert e.validator == "anyOf" and list(e.absolute_path) == ["nodes", 0, "op"]
    assert e.schema["errorMessage"] == "unknown op; the ops are listed in docs/spec.md#ops"


def test_op_attributes_are_checked_per_op(tmp_path):
    spec = """\
        graphnet: 1
        name: attrs
        dims: {B: ~}
        inputs: {x: [B, 4, 8, 8], w: [4, 4, 3, 3]}
        nodes:
          - {op: softmax, inputs: [x], attrs: {axes: 1}}
          - {op: conv, inputs: [x, w], attrs: {groups: 1.5, pads: same, strides: [1, "1 + 0"]}}
          - {op: concat, inputs: [x, x]}
          - {op: gelu, inputs: [x], attrs: {approximate: tanh}}
        outputs: {a: "0", b: "1", c: "2", d: "3"}
        """
    assert not loads(tmp_path, spec)
    found = {tuple(e.absolute_path): e for e in errors(spec)}
    assert set(found) == {("nodes", 0, "attrs"), ("nodes", 1, "attrs", "groups"), ("nodes", 2)}
    assert found["nodes", 0, "attrs"].message == "Additional properties are not allowed ('axes' was unexpected)"
    assert found["nodes", 1, "attrs", "groups"].validator == "anyOf"
    assert found["nodes", 2].message == "'attrs' is a required property"


def test_node_kind_rules(tmp_path):
    spec = """\
        graphnet: 1
        name: kinds
        use: [std]
        dims: {B: ~}
        inputs: {x: [B, 4]}
        nodes:
          - {op: relu, block: std.linear}
          - {name: n1, op: relu, args: {out: 2}}
          - {name: n2, block: std.linear, args: {out: 2}, axis: 2}
          - {name: n3, scan: std.rnn_cell}
          - {name: n4, op: relu, repeat: 2, for_each: [1, 2]}
          - {name: n5, doc: nothing to do}
        outputs: {y: n4}
        """
    assert not loads(tmp_path, spec)
    by_node: dict[int, list[tuple[str, str]]] = {}
    for e in errors(spec):
        by_node.setdefault(e.absolute_path[1], []).append((e.validator, e.message))
    # jsonschema reports a `false` property schema at its mapping, not at the key (editors mark the key)
    assert by_node == {
        # std.linear and std.rnn_cell also need their required args
        0: [(None, "False schema does not allow 'std.linear'"), ("required", "'args' is a required property")],
        1: [(None, "False schema does not allow {'out': 2}")],
        2: [(None, "False schema does not allow 2")],
        3: [("required", "'over' is a required property"), ("required", "'args' is a required property")],
        4: [(None, "False schema does not allow [1, 2]")],
        5: [("anyOf", "{'name': 'n5', 'doc': 'nothing to do'} is not valid under any of the given schemas")],
    }


def test_names_init_and_version(tmp_path):
    spec = """\
        graphnet: 2
        name: bad-name
        use: [std, /abs/lib.yaml]
        dims: {B: ~, 2D: 4}
        inputs: {x: [B, 4]}
        params:
          a: {shape: [4], init: kaiming}
          b: {shape: [4], init: {normal: {stdev: 0.1}}}
          c: {shape: [4], init: constant}
        nodes:
          - {name: 0first, op: relu}
        outputs: {y: 0first}
        """
    assert not loads(tmp_path, spec)
    paths = {tuple(e.absolute_path): e.validator for e in errors(spec)}
    assert paths == {("graphnet",): "const", ("name",): "pattern", ("use", 1): "pattern",
                     ("dims",): "pattern", ("params", "a", "init"): "anyOf",
                     ("params", "b", "init"): "anyOf", ("params", "c", "init"): "anyOf",
                     ("nodes", 0, "name"): "anyOf"}


def test_library_schema(tmp_path):
    lib = """\
        graphnet: 1
        name: mine
        use: [std]
        dims: {expansion: 4}
        blocks:
          mlp_block:
            args: {d: int}
            inputs: {x: ["...", D]}
            nodes:
              - {name: up, block: std.linear, args: {out: d * expansion}}
            outputs: {y: up}
        """
    assert not errors(lib, LIBRARY)
    # a library has no graph of its own; a spec needs one
    assert [e.message for e in errors(lib)] == ["'nodes' is a required property", "'outputs' is a required property"]
    with_nodes = lib + "nodes: []\n"
    assert only(errors(with_nodes, LIBRARY)).message == "Additional properties are not allowed ('nodes' was unexpected)"


# -- in the editor's own engine: yaml-language-server, which VS Code's YAML extension runs --------

JS = ROOT / "tests" / "js"
EDITOR_PACKAGES = ("yaml-language-server", "vscode-languageserver-textdocument")


def _editor(requests: list[dict]) -> list:
    import shutil
    import subprocess
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the YAML language server runs under Node.js: 'node' and 'npm' must be on PATH")
    if not all((JS / "node_modules" / name / "package.json").exists() for name in EDITOR_PACKAGES):
        r = subprocess.run([npm, "ci", "--prefix", str(JS), "--prefer-offline", "--no-audit", "--no-fund"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        assert r.returncode == 0, f"npm ci --prefix tests/js failed:\n{r.stdout[-3000:]}"
    r = subprocess.run([node, str(JS / "yaml_editor.mjs")], input=json.dumps({"schema": spec_schema(), "requests": requests}),
                       capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


EDITED = """\
graphnet: 1
name: edited
use: [std]
dims: {B: ~}
inputs: {x: [B, 4]}
nodes:
  - {name: a, op: conv, attrs: {groups: 1}}
  - {name: b, block: std.linear, args: {out: 3, bias: true}}
  - {name: c, block: std.lineer, args: {out: 3}}
  - {name: d, block: std.linear, args: {outs: 3}}
  - {name: e, block: std.linear, args: {out: [3]}}
  - name: f
    block: std.
outputs: {y: b}
"""


def _at(text: str, line: int, word: str) -> dict:
    return {"text": text, "line": line, "col": text.splitlines()[line].index(word) + 1}


def test_the_editor_completes_std_blocks_and_shows_one_block_or_op_on_hover():
    from graphnet.load import load_std
    hover_op, hover_block, completed = _editor([
        {**_at(EDITED, 6, "conv"), "kind": "hover"},
        {**_at(EDITED, 7, "std.linear"), "kind": "hover"},
        {"text": EDITED, "line": 12, "col": len("    block: std."), "kind": "complete"},
    ])
    hover_op, hover_block = (h.replace("\\", "") for h in (hover_op, hover_block))    # markdown escapes
    # the op's own description, and no other op's
    assert "conv: inputs" in hover_op and "relu" not in hover_op and "Allowed" not in hover_op
    # the block's inputs, outputs, args and doc, and no other block's
    assert "std.linear: inputs (x) -> (y); arguments: out (int), bias (bool, default true)." in hover_block
    assert " ".join(load_std().blocks["linear"].doc.split()) in hover_block
    assert "std.conv2d" not in hover_block
    assert set(completed) >= {f"std.{name}" for name in load_std().blocks}


def test_the_editor_marks_unknown_blocks_and_wrong_args():
    (found,) = _editor([{"text": EDITED, "kind": "validate"}])
    lines = {}
    for line, _col, message in found:
        lines.setdefault(line, []).append(message)
    assert set(lines) == {8, 9, 10, 12}, found                   # nodes c, d, e and the unfinished f
    assert any("std.linear" in m for m in lines[8])               # std.lineer: the names it could be
    assert any('Missing property "out"' in m for m in lines[9])   # outs for out: out missing, outs extra
    assert len(lines[9]) == 2
    assert any("Incorrect type" in m or "integer" in m for m in lines[10])
