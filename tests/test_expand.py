"""Spec-language semantics: repetition, for_each, conditionals, named outputs, patterns, libraries."""

import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn


def _spec(tmp_path, text: str, name: str = "net.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_repeat_chains_copies_with_index(tmp_path):
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: chain
        dims: {B: ~}
        inputs: {x: [B, 4]}
        blocks:
          scale:
            args: {k: int}
            inputs: {x: [N, D]}
            nodes:
              - {name: c, op: constant, attrs: {value: "float(k)"}}
              - {name: m, op: mul, inputs: [x, c]}
            outputs: {y: m}
        nodes:
          - {name: s, block: scale, repeat: 3, args: {k: "index + 2"}}
        outputs: {y: s}
    """))
    assert [n.name for n in net.graph.nodes] == ["s.0.c", "s.0.m", "s.1.c", "s.1.m", "s.2.c", "s.2.m"]
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(net.run({"x": x})["y"], x * 2 * 3 * 4)


def test_for_each_scalars_and_mappings_and_skipped_nodes(tmp_path):
    path = _spec(tmp_path, """
        graphnet: 1
        name: cfg
        use: [std]
        dims: {B: ~}
        inputs: {x: [B, 3, 8, 8]}
        blocks:
          unit:
            args: {v: any, pad: {type: int, default: 1}}
            inputs: {x: [N, C, H, W]}
            nodes:
              - {name: conv, block: std.conv2d, args: {out: v, kernel: 3, padding: pad}, if: "v != 'M'"}
              - {name: pool, op: max_pool, attrs: {kernel: 2}, if: "v == 'M'"}
            outputs: {y: pool}
        nodes:
          - {name: f, block: unit, for_each: [4, M, 6], args: {v: item}}
          - {name: g, block: unit, for_each: [{v: 5, pad: 0}], args: {v: 1}}
        outputs: {y: g}
    """)
    net = gn.load(path)
    assert net.outputs == {"y": ("B", 5, 2, 2)}
    assert [n.name for n in net.graph.nodes] == ["f.0.conv.conv", "f.1.pool", "f.2.conv.conv", "g.0.conv.conv"]
    assert set(net.graph.params) == {"f.0.conv.weight", "f.0.conv.bias", "f.2.conv.weight", "f.2.conv.bias",
                                     "g.0.conv.weight", "g.0.conv.bias"}


def test_named_outputs_optional_inputs_and_ellipsis_patterns(tmp_path):
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: parts
        dims: {B: ~, T: ~}
        inputs: {x: [B, T, 6]}
        blocks:
          halves:
            inputs:
              x: ["...", D]
              extra: {shape: ["...", D2], optional: true}
            require: ["D % 2 == 0"]
            dims: {half: D // 2}
            nodes:
              - {name: s, op: split, attrs: {axis: -1, sizes: [half, half]}}
              - {name: sum, op: add, inputs: [s.y0, s.y1]}
            outputs: {lo: s.y0, total: sum}
        nodes:
          - {name: h, block: halves}
          - {name: out, op: mul, inputs: [h.lo, h.total]}
        outputs: {y: out}
    """))
    assert net.outputs == {"y": ("B", "T", 3)}
    x = np.arange(12, dtype=np.float32).reshape(1, 2, 6)
    np.testing.assert_array_equal(net.run({"x": x})["y"], x[..., :3] * (x[..., :3] + x[..., 3:]))


def test_distinct_free_dims_are_not_assumed_equal(tmp_path):
    with pytest.raises(gn.SpecError) as info:
        gn.load(_spec(tmp_path, """
            graphnet: 1
            name: ts
            dims: {B: ~, T: ~, S: ~}
            inputs: {a: [B, T, 4], b: [B, S, 4]}
            nodes:
              - {name: sum, op: add, inputs: [a, b]}
            outputs: {y: sum}
        """))
    assert "dim -2 is T in one and S in another (not provably equal)" in str(info.value)


def test_local_library_files(tmp_path):
    (tmp_path / "blocks").mkdir()
    _spec(tmp_path, """
        graphnet: 1
        name: mylib
        blocks:
          double:
            inputs: {x: ["..."]}
            nodes:
              - {name: y, op: add, inputs: [x, x]}
            outputs: {y: y}
    """, "blocks/mylib.yaml")
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: uses
        use: [blocks/mylib.yaml]
        inputs: {x: [3]}
        nodes:
          - {name: d, block: mylib.double}
        outputs: {y: d}
    """))
    np.testing.assert_array_equal(net.run({"x": np.ones(3, np.float32)})["y"], 2 * np.ones(3))


@pytest.mark.parametrize("entry,message", [
    ("../outside.yaml", "library path '../outside.yaml' leaves the spec's folder"),
    ("/etc/passwd", "library path '/etc/passwd' must be relative to the spec's folder"),
    ("missing.yaml", "library file 'missing.yaml' does not exist"),
])
def test_library_paths_stay_inside_the_spec_folder(tmp_path, entry, message):
    (tmp_path / "outside.yaml").write_text("graphnet: 1\nblocks: {}\n")
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    with pytest.raises(gn.SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gn.load(_spec(spec_dir, f"""
            graphnet: 1
            name: bad
            use: ["{entry}"]
            inputs: {{x: [3]}}
            nodes:
              - {{name: r, op: relu}}
            outputs: {{y: r}}
        """))


def test_dims_overrides_make_reduced_variants():
    net = gn.load(Path(__file__).resolve().parent.parent / "specs" / "transformer_encoder.yaml", dims={"d_model": 64, "d_ff": 128, "layers": 2, "heads": 4})
    assert net.inputs == {"x": ("B", "T", 64)}
    assert net.graph.param_count() == 2 * (4 * (64 * 64 + 64) + 64 * 128 + 128 + 128 * 64 + 64 + 4 * 64)


def test_library_dims_init_words_and_for_each_on_ops(tmp_path):
    (tmp_path / "lib").mkdir()
    _spec(tmp_path, """
        graphnet: 1
        name: l
        dims: {base: 3, twice: "base * 2"}
        blocks:
          b:
            inputs: {x: [N, D]}
            params:
              w: {shape: [D, twice], init: {kaiming_normal: {mode: fan_out}}}
            nodes:
              - {name: m, op: matmul, inputs: [x, w]}
              - {name: a, op: leaky_relu, for_each: [{alpha: 0.1}, {alpha: 0.2}]}
            outputs: {y: a}
    """, "lib/l.yaml")
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: uselib
        use: [lib/l.yaml]
        dims: {B: ~, hidden: 4}
        inputs: {x: [B, hidden]}
        nodes:
          - {name: blk, block: l.b}
          - {name: f, block: l.b, for_each: [hidden, M]}
        outputs: {y: f}
    """))
    assert net.outputs == {"y": ("B", 6)}
    assert net.graph.params["blk.w"].init.mode == "fan_out"
    assert [n.op.alpha for n in net.graph.nodes if n.op.name == "leaky_relu"][:2] == [0.1, 0.2]


def test_for_each_items_are_evaluated_and_words_stay_strings(tmp_path):
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: items
        use: [std]
        dims: {B: ~, hidden: 4}
        inputs: {x: [B, 3]}
        nodes:
          - {name: fc, block: std.linear, for_each: [hidden, 2 * hidden], args: {out: item}}
        outputs: {y: fc}
    """))
    assert net.outputs == {"y": ("B", 8)}


def test_a_false_top_level_requirement_is_a_located_error(tmp_path):
    with pytest.raises(gn.SpecError) as info:
        gn.load(_spec(tmp_path, """
            graphnet: 1
            name: req
            dims: {B: ~, D: 6}
            require: ["D % 4 == 0"]
            inputs: {x: [B, D]}
            nodes:
              - {name: r, op: relu}
            outputs: {y: r}
        """))
    d = info.value.diagnostics[0]
    assert (d.loc.line, d.loc.col, d.message) == (5, 12, "requirement 'D % 4 == 0' does not hold (D = 6)")


def test_text_attributes_are_never_expressions(tmp_path):
    # 'btd,de->bte' would be a bad expression, 'tanh' a name; text-typed attributes take them as written
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: ein
        dims: {B: ~}
        inputs: {a: [B, 3, 4], b: [4, 5]}
        nodes:
          - name: e
            op: einsum
            inputs: [a, b]
            attrs: {equation: "btd,de->bte"}
          - {name: g, op: gelu, attrs: {approximate: tanh}}
        outputs: {y: g}
    """))
    assert net.outputs == {"y": ("B", 3, 5)}
    assert net.graph.nodes[0].op.equation == "btd,de->bte"


def test_named_inputs_with_repeat_and_skip(tmp_path):
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: mapinp
        use: [std]
        dims: {B: ~, T: ~}
        inputs: {x: [B, T, 8]}
        nodes:
          - {name: attn, block: std.mha, args: {heads: 2}, repeat: 2, inputs: {q: x, kv: x}}
          - {name: skip, block: std.mha, args: {heads: 2}, if: false, inputs: {q: attn, kv: x}}
        outputs: {y: skip}
    """))
    # the second copy reads the first copy's output as q (its first named input), x as kv
    second = [n for n in net.graph.nodes if n.name == "attn.1.q_packed"][0]
    assert second.inputs[0] == "attn.0.out_proj.add"
    assert net.graph.outputs == {"y": "attn.1.out_proj.add"}


def test_slicing_the_first_step_of_a_free_dim(tmp_path):
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: first
        dims: {B: ~, T: ~}
        inputs: {x: [B, T, 8]}
        nodes:
          - {name: s, op: slice, attrs: {starts: [0], ends: [1], axes: [1]}}
          - {name: r, op: reshape, attrs: {shape: [B, 8]}}
        outputs: {y: r}
    """))
    assert net.outputs == {"y": ("B", 8)}


def test_only_the_core_recurses():
    """The package's leaf modules never import the core, and each imports only modules below it in
    the order the package's docstring gives (read from the source, not from a list of imports)."""
    import ast
    order = ["state", "scope", "names", "refs", "params", "op_nodes", "blocks", "scan", "core"]
    folder = Path(gn.__file__).parent / "expand"
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted(order + ["__init__"])
    for i, name in enumerate(order):
        tree = ast.parse((folder / f"{name}.py").read_text())
        siblings = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
        assert siblings <= set(order[:i]), f"{name} imports {sorted(siblings - set(order[:i]))}"


def test_a_strided_stack_on_a_free_dim_is_one_formula(tmp_path):
    # issue 13: 26 stride-2 pools on a free H took minutes (x1.9 a layer); the NumPy run is the oracle
    net = gn.load(_spec(tmp_path, """
        graphnet: 1
        name: t
        dims: {B: ~, H: ~}
        inputs:
          x: [B, 1, H]
        nodes:
          - {name: p, op: max_pool, attrs: {kernel: 1, strides: 2}, repeat: 26}
        outputs: {y: p}
        """))
    assert net.outputs["y"] == ("B", 1, "(H - 1)//67108864 + 1")
    for h in (1, 5, 1000, 4097):
        x = np.zeros((1, 1, h), np.float32)
        assert net.run({"x": x})["y"].shape == (1, 1, (h - 1) // 67108864 + 1)


def test_dims_defined_by_halving_the_one_before(tmp_path):
    lines = "\n".join(f"  D{i}: (D{i - 1} + 1) // 2 + 1" for i in range(1, 27))
    net = gn.load(_spec(tmp_path, "graphnet: 1\nname: t\ndims:\n  D0: ~\n" + lines +
                        "\ninputs:\n  x: [D26]\nnodes:\n  - {name: r, op: relu}\noutputs: {y: r}\n"))
    (formula,) = net.inputs["x"]
    assert formula.count("//") == 1
    for d0 in (1, 2, 77, 10 ** 9):
        d = d0
        for _ in range(26):
            d = (d + 1) // 2 + 1
        assert gn.load(_spec(tmp_path, "graphnet: 1\nname: t\ndims:\n  D0: ~\n" + lines +
                             "\ninputs:\n  x: [D26]\nnodes:\n  - {name: r, op: relu}\noutputs: {y: r}\n",
                             "again.yaml"), {"D0": d0}).inputs["x"] == (d,)


def test_an_error_at_a_line_of_a_users_block_names_the_calls(tmp_path):
    # The bad value is written at the call (`padding: sme`), the attribute that refuses it in the
    # block: the error is at the block's line and a note points at each call, innermost first, as
    # a node's shape error's notes do; each of the two calls is named.
    with pytest.raises(gn.SpecError) as info:
        gn.load(_spec(tmp_path, """
            graphnet: 1
            name: calls
            dims: {B: ~, T: ~}
            inputs: {x: [B, 4, T]}
            blocks:
              conv1d:
                args: {padding: any}
                inputs: {x: [N, C, L]}
                params:
                  w: {shape: [C, C, 3], init: ones}
                nodes:
                  - {name: conv, op: conv, inputs: [x, w], attrs: {pads: padding}}
                outputs: {y: conv}
              stage:
                inputs: {x: [N, C, L]}
                nodes:
                  - {name: inner, block: conv1d, args: {padding: sme}}
                outputs: {y: inner}
            nodes:
              - {name: a, block: stage}
              - {name: b, block: conv1d, args: {padding: sme}, inputs: [x]}
            outputs: {a: a, b: b}
        """))
    got = [(d.loc.line, [(n.loc.line, n.message) for n in d.notes]) for d in info.value.diagnostics]
    assert got == [(13, [(18, "from 'a.inner'"), (21, "from 'a'")]), (13, [(22, "from 'b'")])]
    assert all("attribute 'pads'" in d.message and "'sme'" in d.message for d in info.value.diagnostics)
