"""Every user mistake is one located diagnostic, `FILE:LINE:COL: error: message`, and exit status 1.

Each row of CASES is one mistake in a small spec: where it must be reported and a specific part of
the message. Each is checked twice, through `graphnet.load` (the diagnostics themselves) and through
the CLI in-process (status 1, the rendered first line, no traceback). Line and column are 1-based and
count from the first line of the dedented YAML text.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphnet
from graphnet.cli import main

MARKER = "PWNED"   # a file the python-tag case would create if YAML tags were ever constructed


def write_spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    """Write a dedented YAML spec; `@TMP@` stands for tmp_path (used by the python-tag case)."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n").replace("@TMP@", str(tmp_path)))
    return path


def load_error(path: Path, dims: dict | None = None) -> graphnet.SpecError:
    with pytest.raises(graphnet.SpecError) as info:
        graphnet.load(path, dims)
    return info.value


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop anything printed before
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_cli_error(capsys, argv, where: str, message: str) -> str:
    code, _, err = run_cli(capsys, *argv)
    assert code == 1, err
    assert "Traceback" not in err
    first = err.splitlines()[0]
    assert first.startswith(f"{where}: error: "), err
    assert message in first, err
    return err


# (id, yaml_text, line, col, message substring)
CASES = [
    ("matmul_inner_dim", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        params:
          w: {shape: [5, 3], init: zeros}
        nodes:
          - {name: mm, op: matmul, inputs: [x, w]}
        outputs: {y: mm}
        """, 9, 5,
     "node 'mm' (matmul): inner dims differ: a[B, 4] has 4 columns but b[5, 3] has 5 rows"),

    ("unknown_op", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: a, op: rleu}
        outputs: {y: a}
        """, 7, 19, "unknown op 'rleu'; did you mean 'relu'?"),

    ("unknown_block", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: a, block: std.lienar, args: {out: 3}}
        outputs: {y: a}
        """, 8, 22, "unknown block 'std.lienar'; did you mean 'std.linear'?"),

    ("unknown_library", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: a, block: std.linear, args: {out: 3}}
        outputs: {y: a}
        """, 7, 22, "unknown library 'std' in block 'std.linear'; add it to 'use:'"),

    ("unknown_block_arg", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: a, block: std.linear, args: {out: 3, bais: false}}
        outputs: {y: a}
        """, 8, 49, "block 'std.linear' has no argument 'bais'; did you mean 'bias'? (arguments: out, bias)"),

    ("missing_block_arg", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: a, block: std.linear}
        outputs: {y: a}
        """, 8, 5, "block 'std.linear' needs argument 'out' (int)"),

    ("block_arg_wrong_type", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: a, block: std.linear, args: {out: "three"}}
        outputs: {y: a}
        """, 8, 47, "argument 'out' of block 'std.linear' must be int, got 'three' (unknown name 'three')"),

    ("dangling_input", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: first, op: relu, inputs: [x]}
          - {name: second, op: relu, inputs: [frist]}
        outputs: {y: second}
        """, 8, 39, "unknown name 'frist' in inputs; did you mean 'first'?"),

    ("dangling_output", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: act, op: relu}
        outputs: {y: atc}
        """, 8, 14, "unknown name 'atc' in outputs; did you mean 'act'?"),

    ("missing_block_input", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~, T: ~}
        inputs:
          x: [B, T, 8]
        nodes:
          - {name: att, block: std.mha, args: {heads: 2}, inputs: {q: x}}
        outputs: {y: att}
        """, 8, 59, "block 'std.mha' needs input 'kv'"),

    ("too_many_op_inputs", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: r, op: relu, inputs: [x, x]}
        outputs: {y: r}
        """, 7, 33, "op 'relu' takes 1 input (x), got 2"),

    ("node_cycle", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: a, op: add, inputs: [x, b]}
          - {name: b, op: relu, inputs: [a]}
        outputs: {y: b}
        """, 7, 5, "nodes form a cycle: a -> b -> a"),

    ("expression_syntax", """
        graphnet: 1
        name: t
        dims: {B: ~, d_model: 8}
        inputs:
          x: [B, d_model //]
        nodes:
          - {name: r, op: relu}
        outputs: {y: r}
        """, 5, 20, "in expression 'd_model //': expected a value but found the end of the expression"),

    ("expression_unknown_name", """
        graphnet: 1
        name: t
        dims: {B: ~, d_model: 8}
        inputs:
          x: [B, d_modle * 2]
        nodes:
          - {name: r, op: relu}
        outputs: {y: r}
        """, 5, 10, "unknown name 'd_modle'; did you mean 'd_model'?"),

    # quoted: the column is that of '//' inside the quotes, not one short of it
    ("shape_division_by_zero", """
        graphnet: 1
        name: t
        dims: {B: ~, d_model: 8}
        inputs:
          x: [B, "d_model // (d_model - 8)"]
        nodes:
          - {name: r, op: relu}
        outputs: {y: r}
        """, 5, 19, "in expression 'd_model // (d_model - 8)': division by zero"),

    ("unknown_node_key", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: s, op: softmax, atrs: {axis: -1}}
        outputs: {y: s}
        """, 7, 28, "unknown key 'atrs' in 'nodes.0'; did you mean 'attrs'?"),

    ("unknown_op_attribute", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: s, op: softmax, attrs: {axsi: -1}}
        outputs: {y: s}
        """, 7, 36, "node 's' (softmax): unknown attribute 'axsi'; did you mean 'axis'? (attributes: axis)"),

    ("unknown_top_level_key", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inptus:
          x: [B, 4]
        nodes:
          - {name: r, op: relu}
        outputs: {y: r}
        """, 4, 1, "unknown key 'inptus' in the spec; did you mean 'inputs'?"),

    ("duplicate_yaml_key", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        inputs:
          z: [B, 4]
        nodes:
          - {name: r, op: relu}
        outputs: {y: r}
        """, 6, 1, "duplicate key 'inputs' (first given at line 4)"),

    ("duplicate_node_name", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: r, op: relu}
          - {name: r, op: tanh}
        outputs: {y: r}
        """, 8, 12, "duplicate node name 'r' (first at line 7)"),

    ("yaml_tab", "graphnet: 1\nname: t\ninputs:\n\tx: [2, 4]\n", 4, 1,
     "invalid YAML: found character '\\t' that cannot start any token"),

    ("yaml_unclosed_bracket", """
        graphnet: 1
        name: t
        inputs:
          x: [2, 4
        nodes:
          - {name: r, op: relu}
        """, 5, 6, "invalid YAML: expected ',' or ']', but got ':'"),

    ("yaml_control_character", "graphnet: 1\nname: t\x07\n", 2, 8,
     "invalid YAML: unacceptable character #x0007: special characters are not allowed"),

    ("empty_file", "", 1, 1, "the file is empty"),

    ("comment_only_file", "# nothing here yet\n", 1, 1, "the file is empty"),

    ("top_level_list", """
        - graphnet: 1
        - name: t
        """, 1, 1, "a spec file must be a YAML mapping at the top level"),

    ("python_tag", """
        graphnet: 1
        name: t
        dims: {B: !!python/object/apply:os.system ["touch @TMP@/PWNED"]}
        inputs:
          x: [B, 4]
        nodes:
          - {name: r, op: relu}
        outputs: {y: r}
        """, 3, 11,
     "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed in specs (only plain values)"),

    ("yaml_alias", """
        graphnet: 1
        name: t
        dims: &shared {B: ~}
        inputs:
          x: [B, 4]
        blocks: *shared
        nodes:
          - {name: r, op: relu}
        outputs: {y: r}
        """, 6, 9, "YAML aliases (*name) are not supported in specs; write the value out"),

    ("unused_input", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
          z: [B, 4]
        nodes:
          - {name: r, op: relu, inputs: [x]}
        outputs: {y: r}
        """, 6, 6, "input 'z' of the spec is never used"),

    ("unused_param", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        params:
          w: {shape: [4], init: zeros}
        nodes:
          - {name: r, op: relu, inputs: [x]}
        outputs: {y: r}
        """, 7, 6, "param 'w' of the spec is never used"),

    ("failed_require_mha", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~, T: ~}
        inputs:
          x: [B, T, 510]
        nodes:
          - {name: att, block: std.mha, args: {heads: 8}, inputs: {q: x, kv: x}}
        outputs: {y: att}
        """, 8, 5,
     "block 'std.mha' called at 'att': requirement 'D % heads == 0' does not hold (D = 510, heads = 8)"),

    ("failed_require_ffn_activation", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~}
        inputs:
          x: [B, 8]
        nodes:
          - {name: f, block: std.ffn, args: {d_ff: 16, activation: gleu}}
        outputs: {y: f}
        """, 8, 5, "requirement 'activation == 'relu' or activation == 'gelu' or activation == 'gelu_tanh'' does not "
                   "hold (activation = 'gleu')"),

    ("concat_mismatch", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4, 3]
          z: [B, 5, 2]
        nodes:
          - {name: c, op: concat, inputs: [x, z], attrs: {axis: 1}}
        outputs: {y: c}
        """, 8, 5,
     "node 'c' (concat): inputs differ in dim 2 (not the concat axis 1): float32[B, 4, 3], float32[B, 5, 2]"),

    ("reshape_element_count", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4, 3]
        nodes:
          - {name: r, op: reshape, attrs: {shape: [B, 5]}}
        outputs: {y: r}
        """, 7, 5, "node 'r' (reshape): cannot reshape [B, 4, 3] (12*B elements) to [B, 5] (5*B elements)"),

    # The conv inside std.conv2d fails; the error is at the user's call, the std line is a note.
    ("conv_inside_std_conv2d", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~}
        inputs:
          image: [B, 3, 4, 4]
        nodes:
          - {name: c1, block: std.conv2d, args: {out: 6, kernel: 7}}
        outputs: {y: c1}
        """, 8, 5, "node 'c1.conv' (conv): window of 7 does not fit spatial dim 4 (padded to 4)"),

    ("conv_channel_mismatch_in_user_block", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          image: [B, 3, 32, 32]
        blocks:
          stem:
            inputs:
              x: [N, C, H, W]
            params:
              w: {shape: [8, 4, 3, 3], init: zeros}
            nodes:
              - {name: conv, op: conv, inputs: [x, w]}
            outputs: {y: conv}
        nodes:
          - {name: s, block: stem}
        outputs: {y: s}
        """, 13, 9,
     "node 's.conv' (conv): input has 3 channels but w float32[8, 4, 3, 3] expects 4 per group x 1 group = 4"),

    ("free_channel_dim_into_std_conv2d", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~, C: ~}
        inputs:
          image: [B, C, 32, 32]
        nodes:
          - {name: c1, block: std.conv2d, args: {out: 6, kernel: 3}}
        outputs: {y: c1}
        """, 8, 5, "param 'c1.weight' has shape [6, C, 3, 3], which depends on the free dim(s) C"),

    ("bad_padding_into_std_conv2d", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~}
        inputs:
          image: [B, 3, 32, 32]
        nodes:
          - {name: c1, block: std.conv2d, args: {out: 6, kernel: 3, padding: smae}}
        outputs: {y: c1}
        """, 8, 5, "attribute 'pads': Input should be a valid integer, unable to parse string as an integer; "
                   "or Input should be a valid list; or Input should be 'same', 'same_upper', 'same_lower' or 'valid' "
                   "(got 'smae'); did you mean 'same'?"),

    ("block_input_rank", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~}
        inputs:
          x: [B, 3, 32]
        nodes:
          - {name: c, block: std.conv2d, args: {out: 6, kernel: 3}}
        outputs: {y: c}
        """, 8, 5, "input 'x' of block 'std.conv2d' must be [N, C_in, H, W], got float32[B, 3, 32]: rank is 3, not 4"),

    ("block_input_dtype", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~}
        inputs:
          image: {shape: [B, 3, 8, 8], dtype: float64}
        nodes:
          - {name: c, block: std.conv2d, args: {out: 6, kernel: 3}}
        outputs: {y: c}
        """, 8, 5, "got float64[B, 3, 8, 8]: dtype is float64, not float32"),

    ("multi_output_without_name", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: s, op: split, attrs: {axis: 1, sizes: [2, 2]}}
          - {name: r, op: relu, inputs: [s]}
        outputs: {y: r}
        """, 8, 34, "node 's' has several outputs (y0, y1); say which, e.g. 's.y0'"),

    ("init_scheme_typo", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        params:
          w: {shape: [4], init: zeors}
        nodes:
          - {name: a, op: add, inputs: [x, w]}
        outputs: {y: a}
        """, 7, 25, "unknown init scheme 'zeors'; did you mean 'zeros'?"),

    ("format_version_2", """
        graphnet: 2
        name: t
        inputs:
          x: [2, 4]
        nodes:
          - {name: r, op: relu}
        outputs: {y: r}
        """, 1, 11, "unsupported format version; this graphnet reads 'graphnet: 1'"),

    ("op_and_block", """
        graphnet: 1
        name: t
        use: [std]
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: r, op: relu, block: std.linear}
        outputs: {y: r}
        """, 8, 5, "a node needs exactly one of 'op', 'block' or 'scan'"),

    ("block_uses_itself", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        blocks:
          loop:
            inputs:
              x: [B, D]
            nodes:
              - {name: inner, block: loop}
            outputs: {y: inner}
        nodes:
          - {name: l, block: loop}
        outputs: {y: l}
        """, 11, 30, "block 'loop' uses itself (through loop -> loop)"),

    # a failed repeat must not also make 'x' look unused
    ("repeat_zero", """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: r, op: relu, repeat: 0}
        outputs: {y: r}
        """, 7, 33, "repeat must be between 1 and 10000, got 0"),
]

# Mistakes whose note must point into the std library while the error points at the user's line.
STD_NOTES = {
    "failed_require_mha": ("<std>/transformer.yaml", "required here"),
    "conv_inside_std_conv2d": ("<std>/layers.yaml", "in block 'std.conv2d' at node 'c1.conv'"),
    "free_channel_dim_into_std_conv2d": ("<std>/layers.yaml", "in block 'std.conv2d' called at 'c1'"),
    "bad_padding_into_std_conv2d": ("<std>/layers.yaml", "in block 'std.conv2d' called at 'c1'"),
}


def test_there_are_at_least_30_distinct_mistakes():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 30


@pytest.mark.parametrize("text, line, col, message", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_mistake_is_one_located_diagnostic(tmp_path, text, line, col, message):
    path = write_spec(tmp_path, text)
    error = load_error(path)
    # One mistake, one diagnostic: no echoes from nodes downstream or inputs left unused.
    assert [d.render() for d in error.diagnostics][1:] == []
    d = error.diagnostics[0]
    assert (d.loc.file, d.loc.line, d.loc.col) == (str(path), line, col), d.render()
    assert message in d.message
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("text, line, col, message", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_mistake_through_cli(tmp_path, capsys, text, line, col, message):
    path = write_spec(tmp_path, text)
    assert_cli_error(capsys, ["validate", path], f"{path}:{line}:{col}", message)
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("case_id", ["expression_syntax", "python_tag", "yaml_control_character"])
def test_mistake_in_a_real_process(tmp_path, case_id):
    # The same contract from a separate `python -m graphnet` process: status 1, no traceback.
    text, line, col, message = next(c[1:] for c in CASES if c[0] == case_id)
    path = write_spec(tmp_path, text)
    done = subprocess.run([sys.executable, "-m", "graphnet", "validate", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[0].startswith(f"{path}:{line}:{col}: error: {message}")
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("case_id", sorted(STD_NOTES))
def test_std_errors_point_at_the_call_with_a_note_into_std(tmp_path, capsys, case_id):
    text, line, col, _ = next(c[1:] for c in CASES if c[0] == case_id)
    std_file, note = STD_NOTES[case_id]
    path = write_spec(tmp_path, text)
    d = load_error(path).diagnostics[0]
    assert d.loc.file == str(path) and d.loc.line == line
    assert [(n.loc.file, n.message) for n in d.notes] == [(std_file, note)]
    err = assert_cli_error(capsys, ["validate", path], f"{path}:{line}:{col}", "")
    assert err.splitlines()[1].startswith(f"{std_file}:") and err.splitlines()[1].endswith(f": note: {note}")


def test_user_block_error_notes_the_call_site(tmp_path):
    text = next(c[1] for c in CASES if c[0] == "conv_channel_mismatch_in_user_block")
    path = write_spec(tmp_path, text)
    d = load_error(path).diagnostics[0]
    assert [(n.loc.line, n.loc.col, n.message) for n in d.notes] == [(16, 5, "from 's'")]


@pytest.mark.parametrize("tagged", [
    "!!python/object/apply:os.system {args: ['touch @TMP@/PWNED']}",
    "!!python/name:os.system",
    "!!set {a: null}",
])
def test_other_yaml_tags_are_refused_and_never_run(tmp_path, tagged):
    path = write_spec(tmp_path, f"""
        graphnet: 1
        name: t
        doc: {tagged}
        inputs:
          x: [2, 4]
        nodes:
          - {{name: r, op: relu}}
        outputs: {{y: r}}
        """)
    d, = load_error(path).diagnostics
    assert (d.loc.line, d.loc.col) == (3, 6)
    assert d.message.startswith("YAML tag '") and d.message.endswith("' is not allowed in specs (only plain values)")
    assert not (tmp_path / MARKER).exists()


# -- several mistakes at once ---------------------------------------------------------------------

def test_independent_mistakes_are_all_reported(tmp_path, capsys):
    path = write_spec(tmp_path, """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: a, op: rleu, inputs: [x]}
          - {name: b, op: tahn, inputs: [x]}
          - {name: c, op: add, inputs: [a, b]}
        outputs: {y: c}
        """)
    got = [(d.loc.line, d.loc.col, d.message) for d in load_error(path).diagnostics]
    assert got == [(7, 19, "unknown op 'rleu'; did you mean 'relu'?"),
                   (8, 19, "unknown op 'tahn'; did you mean 'tanh'?")]
    err = assert_cli_error(capsys, ["validate", path], f"{path}:7:19", "unknown op 'rleu'")
    assert err.splitlines()[1] == f"{path}:8:19: error: unknown op 'tahn'; did you mean 'tanh'?"


def test_nodes_downstream_of_a_failed_node_are_not_reported(tmp_path):
    path = write_spec(tmp_path, """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, 4]
        params:
          w: {shape: [5, 3], init: zeros}
        nodes:
          - {name: mm, op: matmul, inputs: [x, w]}
          - {name: r, op: relu}
          - {name: s, op: softmax, attrs: {axis: -1}}
          - {name: t, op: add, inputs: [s, mm]}
        outputs: {y: t}
        """)
    d, = load_error(path).diagnostics
    assert (d.loc.line, d.loc.col) == (9, 5) and d.message.startswith("node 'mm' (matmul): inner dims differ")


def test_a_failed_input_shape_poisons_its_readers_without_a_crash(tmp_path):
    # The first node reads the input implicitly; a bad input shape must not crash it.
    path = write_spec(tmp_path, """
        graphnet: 1
        name: t
        dims: {B: ~}
        inputs:
          x: [B, hiddn]
          z: [B, 4]
        nodes:
          - {name: r, op: relu}
          - {name: s, op: tanh, inputs: [z]}
        outputs: {y: r, w: s}
        """)
    d, = load_error(path).diagnostics
    assert (d.loc.line, d.loc.col, d.message) == (5, 10, "unknown name 'hiddn'")


# -- command line mistakes ------------------------------------------------------------------------

MLP = """
    graphnet: 1
    name: mlp
    use: [std]
    dims: {B: ~, hidden: 16}
    inputs:
      x: [B, 8]
    nodes:
      - {name: fc1, block: std.linear, args: {out: hidden}}
      - {name: relu1, op: relu}
      - {name: fc2, block: std.linear, args: {out: 3}}
    outputs: {logits: fc2}
    """


def test_dim_for_an_unknown_dim(tmp_path, capsys):
    path = write_spec(tmp_path, MLP)
    message = "--dim hiden: the spec has no dim 'hiden'; did you mean 'hidden'?"
    d, = load_error(path, {"hiden": 3}).diagnostics
    assert (d.loc.file, d.loc.line, d.loc.col, d.message) == (str(path), 4, 1, message)
    assert_cli_error(capsys, ["validate", path, "--dim", "hiden=3"], f"{path}:4:1", message)


def test_dim_that_is_not_a_number(tmp_path, capsys):
    path = write_spec(tmp_path, MLP)
    assert_cli_error(capsys, ["validate", path, "--dim", "B=x"], "<command line>:1:1",
                     "--dim B: 'x' is not a whole number")


def test_validate_a_missing_file(tmp_path, capsys):
    path = tmp_path / "nope.yaml"
    assert_cli_error(capsys, ["validate", path], f"{path}:1:1", "cannot read file: No such file or directory")


# -- weight files ---------------------------------------------------------------------------------

@pytest.fixture
def mlp_weights(tmp_path, capsys):
    """The MLP spec and a weight file that `graphnet init-weights` wrote for it, as a dict."""
    spec = write_spec(tmp_path, MLP)
    out = tmp_path / "w.npz"
    code, _, err = run_cli(capsys, "init-weights", spec, "-o", out)
    assert code == 0, err
    with np.load(out) as data:
        weights = {k: data[k] for k in data.files}
    assert sorted(weights) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    return spec, weights


def _save(tmp_path, weights, name) -> Path:
    path = tmp_path / name
    np.savez(path, **weights)
    return path


def test_weights_missing_a_param(tmp_path, capsys, mlp_weights):
    spec, weights = mlp_weights
    del weights["fc2.weight"]
    bad = _save(tmp_path, weights, "missing.npz")
    assert_cli_error(capsys, ["run", spec, "--weights", bad], f"{bad}:1:1", "weight 'fc2.weight' is missing")


def test_weights_with_an_extra_array(tmp_path, capsys, mlp_weights):
    spec, weights = mlp_weights
    weights["fc3.weight"] = np.zeros((3, 3), np.float32)
    bad = _save(tmp_path, weights, "extra.npz")
    assert_cli_error(capsys, ["run", spec, "--weights", bad], f"{bad}:1:1",
                     "weight 'fc3.weight' is not a param of 'mlp'; did you mean 'fc2.weight'?")


def test_weights_with_a_wrong_shape(tmp_path, capsys, mlp_weights):
    spec, weights = mlp_weights
    weights["fc1.weight"] = np.zeros((16, 9), np.float32)
    bad = _save(tmp_path, weights, "shape.npz")
    assert_cli_error(capsys, ["run", spec, "--weights", bad], f"{bad}:1:1",
                     "weight 'fc1.weight' has shape [16, 9] but the spec declares [16, 8]")


def test_weights_with_a_wrong_dtype(tmp_path, capsys, mlp_weights):
    # float64 values off float32's grid: the cast would change them (float32 values would load)
    spec, weights = mlp_weights
    weights["fc2.bias"] = weights["fc2.bias"].astype(np.float64) + 1e-9
    bad = _save(tmp_path, weights, "dtype.npz")
    assert_cli_error(capsys, ["run", spec, "--weights", bad], f"{bad}:1:1",
                     "weight 'fc2.bias' has dtype float64 but the spec declares float32")


@pytest.mark.parametrize("content", [
    pytest.param(np.random.default_rng(0).bytes(512), id="random-bytes"),
    pytest.param(b"", id="empty"),
    pytest.param(b"PK\x03\x04 truncated zip", id="truncated-zip"),
])
def test_corrupt_weight_file(tmp_path, capsys, mlp_weights, content):
    spec, _ = mlp_weights
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(content)
    err = assert_cli_error(capsys, ["run", spec, "--weights", bad], f"{bad}:1:1",
                           "not a .npz file (a zip archive of arrays, as numpy.savez writes)")
    assert "allow_pickle" not in err   # never advise loading an unknown file as a pickle


def test_npy_file_given_as_weights(tmp_path, capsys, mlp_weights):
    spec, _ = mlp_weights
    bad = tmp_path / "w.npy"
    np.save(bad, np.zeros(3, np.float32))
    assert_cli_error(capsys, ["run", spec, "--weights", bad], f"{bad}:1:1", "not a .npz file")


def test_weights_with_a_pickled_object_array(tmp_path, capsys, mlp_weights):
    spec, weights = mlp_weights
    weights["fc1.bias"] = np.array([object()], dtype=object)
    bad = _save(tmp_path, weights, "pickled.npz")
    assert_cli_error(capsys, ["run", spec, "--weights", bad], f"{bad}:1:1",
                     "not a readable .npz file: Object arrays cannot be loaded when allow_pickle=False")


def test_writing_weights_into_a_missing_folder_names_the_target(tmp_path, capsys):
    spec = write_spec(tmp_path, MLP)
    target = tmp_path / "no" / "such" / "w.npz"
    assert_cli_error(capsys, ["init-weights", spec, "-o", target], f"{target}:1:1", "No such file or directory")


# -- input files ----------------------------------------------------------------------------------

@pytest.mark.parametrize("arrays,message", [
    pytest.param({"x": np.zeros((2, 7), np.float32)}, "input 'x' dim 1 must be 8, got 7", id="shape"),
    pytest.param({"x": np.zeros((2, 8, 1), np.float32)},
                 "input 'x' must have rank 2 float32[B, 8], got shape (2, 8, 1)", id="rank"),
    pytest.param({"y": np.zeros((2, 8), np.float32)}, "input 'x' was not given", id="missing"),
    pytest.param({"x": np.zeros((2, 8), np.float64)}, "input 'x' must be float32, got float64", id="dtype"),
])
def test_run_with_inputs_that_do_not_fit(tmp_path, capsys, arrays, message):
    # reported at the input's declaration, line 6 col 6 of the spec
    spec = write_spec(tmp_path, MLP)
    bad = tmp_path / "in.npz"
    np.savez(bad, **arrays)
    assert_cli_error(capsys, ["run", spec, "--inputs", bad], f"{spec}:6:6", message)


def test_run_with_a_corrupt_inputs_file(tmp_path, capsys):
    spec = write_spec(tmp_path, MLP)
    bad = tmp_path / "in.npz"
    bad.write_bytes(b"not an archive at all")
    assert_cli_error(capsys, ["run", spec, "--inputs", bad], f"{bad}:1:1", "not a .npz file")


def test_consumers_of_a_failed_block_are_skipped_and_later_mistakes_still_reported(tmp_path, capsys):
    # fc reads the failed conv block's output implicitly; bad names an unknown op after it
    path = tmp_path / "chain.yaml"
    path.write_text(
        "graphnet: 1\nname: chain\nuse: [std]\ndims: {B: ~}\ninputs:\n  x: [B, 3, 4, 4]\nnodes:\n"
        "  - {name: conv, block: std.conv2d, args: {out: 8, kernel: 7}}\n"
        "  - {name: fc, block: std.linear, args: {out: 10}}\n"
        "  - {name: bad, op: rleu}\n"
        "outputs: {y: fc}\n")
    with pytest.raises(graphnet.SpecError) as info:
        graphnet.load(path)
    found = [(d.loc.line, d.loc.col, d.message) for d in info.value.diagnostics]
    assert [(line, col) for line, col, _ in found] == [(8, 5), (10, 21)]
    assert found[0][2].startswith("node 'conv.conv' (conv): window of 7 does not fit spatial dim 4")
    assert found[1][2] == "unknown op 'rleu'; did you mean 'relu'?"
    assert main(["validate", str(path)]) == 1
    assert "Traceback" not in capsys.readouterr().err


# -- libraries and paths (issue 13) --------------------------------------------------------------

def test_a_chain_of_600_libraries_is_refused_at_the_level_past_the_bound(tmp_path, capsys):
    from graphnet.load import MAX_USE_DEPTH
    for i in range(600):          # each uses the next: this recursed past Python's stack
        use = f"use: [l{i + 1}.yaml]\n" if i < 599 else ""
        (tmp_path / f"l{i}.yaml").write_text(f"graphnet: 1\nname: l{i}\n{use}blocks: {{}}\n")
    spec = write_spec(tmp_path, """
        graphnet: 1
        name: t
        use: [l0.yaml]
        inputs: {x: [4]}
        nodes:
          - {name: r, op: relu}
        outputs: {y: r}
        """)
    assert_cli_error(capsys, ["validate", spec], f"{tmp_path / f'l{MAX_USE_DEPTH - 1}.yaml'}:3:7",
                     f"libraries use each other more than {MAX_USE_DEPTH} levels deep (load.MAX_USE_DEPTH)")


def test_a_chain_within_the_bound_loads(tmp_path):
    from graphnet.load import MAX_USE_DEPTH
    for i in range(MAX_USE_DEPTH):
        use = f"use: [l{i + 1}.yaml]\n" if i < MAX_USE_DEPTH - 1 else ""
        (tmp_path / f"l{i}.yaml").write_text(f"graphnet: 1\nname: l{i}\n{use}blocks: {{}}\n")
    spec = write_spec(tmp_path, "graphnet: 1\nname: t\nuse: [l0.yaml]\ninputs: {x: [4]}\n"
                                "nodes:\n  - {name: r, op: relu}\noutputs: {y: r}\n")
    assert graphnet.load(spec).name == "t"


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_library_that_is_not_a_regular_file_says_so(tmp_path, capsys, kind):
    import os
    target = tmp_path / "lib.yaml"
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    spec = write_spec(tmp_path, "graphnet: 1\nname: t\nuse: [lib.yaml]\ninputs: {x: [4]}\n"
                                "nodes:\n  - {name: r, op: relu}\noutputs: {y: r}\n")
    assert_cli_error(capsys, ["validate", spec], f"{spec}:3:7",
                     "library file 'lib.yaml' is not a regular file (a FIFO, a device or a folder)")


def test_a_missing_library_still_does_not_exist(tmp_path, capsys):
    spec = write_spec(tmp_path, "graphnet: 1\nname: t\nuse: [gone.yaml]\ninputs: {x: [4]}\n"
                                "nodes:\n  - {name: r, op: relu}\noutputs: {y: r}\n")
    assert_cli_error(capsys, ["validate", spec], f"{spec}:3:7", "library file 'gone.yaml' does not exist")


@pytest.mark.parametrize("path", ["", "a\0b.yaml"])
def test_paths_no_file_can_have_are_spec_errors_in_python_too(path):
    with pytest.raises(graphnet.SpecError):
        graphnet.load(path)
