"""The spec language's round 2 (issue 12), at the level of specs: list dims computed by
comprehensions, shape plumbing, free dims with facts, explicit SAME padding, and the messages
that used to explain nothing, each with its exact text and location."""

import textwrap

import numpy as np
import pytest

import graphnet as gn
from graphnet.errors import SpecError


def _write(tmp_path, text: str, name: str = "spec.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _errors(tmp_path, text: str) -> list[str]:
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as e:
        gn.load(path)
    return [line.replace(str(path), "spec.yaml") for line in str(e.value).splitlines()]


def test_a_list_dim_computed_by_a_comprehension_drives_for_each(tmp_path):
    net = gn.load(_write(tmp_path, """\
        graphnet: 1
        name: widths
        use: [std]
        dims:
          B: ~
          depth: 6
          widths: "[int(round(16 * 2 ** round(log((i * 12 + 16) / 16) / log(2)) / 8) * 8) for i in range(depth)]"
          stages: "[widths[i] for i in range(depth) if i == 0 or widths[i] != widths[i - 1]]"
        inputs:
          x: [B, 8]
        nodes:
          - {name: fc, block: std.linear, for_each: stages, args: {out: item}}
          - {name: mean_width, block: std.linear, args: {out: "sum(stages) // len(stages)"}}
        outputs: {y: mean_width}
        """))
    # the widths by the same rule in Python: 16, 32, 32, 64, 64, 64 -> stages 16, 32, 64
    import math
    widths = [int(round(16 * 2 ** round(math.log((i * 12 + 16) / 16) / math.log(2)) / 8) * 8) for i in range(6)]
    stages = [w for i, w in enumerate(widths) if i == 0 or w != widths[i - 1]]
    shapes = {k: v.shape for k, v in net.init_weights().items()}
    assert [shapes[f"fc.{i}.weight"][0] for i in range(len(stages))] == stages
    assert net.outputs["y"][-1] == sum(stages) // len(stages)


# -- shape plumbing (issue 12, point 3) -------------------------------------------------------------

def test_reshape_zero_copies_the_input_dim(tmp_path):
    net = gn.load(_write(tmp_path, """\
        graphnet: 1
        name: zero
        dims: {B: ~, T: ~}
        inputs:
          x: [B, T, 8]
        nodes:
          - {name: r, op: reshape, attrs: {shape: [0, 0, 2, 4]}}
        outputs: {y: r}
        """))
    assert [str(d) for d in net.outputs["y"]] == ["B", "T", "2", "4"]
    import numpy as np
    x = np.arange(3 * 5 * 8, dtype=np.float32).reshape(3, 5, 8)
    np.testing.assert_array_equal(net.run({"x": x}, {})["y"], x.reshape(3, 5, 2, 4))


def test_reshape_zero_past_the_input_rank_is_located(tmp_path):
    errors = _errors(tmp_path, """\
        graphnet: 1
        name: zero
        dims: {B: ~}
        inputs:
          x: [B, 8]
        nodes:
          - {name: r, op: reshape, attrs: {shape: [2, -1, 0]}}
        outputs: {y: r}
        """)
    assert errors == ["spec.yaml:7:5: error: node 'r' (reshape): shape [2, -1, 0] has a 0 at position 2, which "
                      "copies the input's dim 2 (ONNX's rule), but the input has rank 2 (inputs: x: float32[B, 8])"]


def test_binds_names_the_dims_of_an_intermediate_tensor(tmp_path):
    net = gn.load(_write(tmp_path, """\
        graphnet: 1
        name: binds
        use: [std]
        dims: {B: ~, H: ~, W: ~}
        inputs:
          x: [B, 3, H, W]
        nodes:
          - {name: conv, block: std.conv2d, args: {out: 8, kernel: 3, stride: 2, padding: 1}, binds: [N, C, H2, W2]}
          - {name: split, op: reshape, attrs: {shape: [N, 2, C // 2, H2, W2]}}
          - {name: swap, op: transpose, attrs: {perm: [0, 2, 1, 3, 4]}}
          - {name: back, op: reshape, attrs: {shape: [N, C, H2, W2]}}
        outputs: {y: back}
        """))
    assert [str(d) for d in net.outputs["y"]] == ["B", "8", "(H - 1)//2 + 1", "(W - 1)//2 + 1"]


def test_binds_checks_a_known_name_at_its_entry(tmp_path):
    errors = _errors(tmp_path, """\
        graphnet: 1
        name: binds
        dims: {B: ~, C: 8}
        inputs:
          x: [B, 6]
        nodes:
          - {name: r, op: relu, binds: [B, C]}
        outputs: {y: r}
        """)
    assert errors == ["spec.yaml:7:36: error: node 'r' gives float32[B, 6]: dim 1 is 6, but binds expects C = 8"]


def test_a_skipped_split_says_it_forwards_its_input(tmp_path):
    errors = _errors(tmp_path, """\
        graphnet: 1
        name: skipped
        dims: {B: ~, gated: 2}
        inputs:
          x: [B, 8]
        nodes:
          - {name: halves, op: split, attrs: {axis: -1, num: 2}, if: gated == 1}
          - {name: gate, op: sigmoid, inputs: halves.y1}
        outputs: {y: gate}
        """)
    assert errors == ["spec.yaml:8:39: error: node 'halves' is skipped (its 'if' is false), so it has no output "
                      "'y1': a skipped node forwards its first input as 'halves'; give this node the same 'if', "
                      "or reference 'halves'"]


def test_a_block_that_takes_no_inputs_is_not_chained_into(tmp_path):
    net = gn.load(_write(tmp_path, """\
        graphnet: 1
        name: table
        dims: {B: ~}
        inputs:
          x: [B, 4]
        blocks:
          bias_table:
            params:
              table: {shape: [4], init: ones}
            nodes:
              - {name: t, op: identity, inputs: [table]}
            outputs: {y: t}
        nodes:
          - {name: relu, op: relu}
          - {name: table, block: bias_table}
          - {name: add, op: add, inputs: [relu, table]}
        outputs: {y: add}
        """))
    assert sorted(net.init_weights()) == ["table.table"]


# -- padding same (issue 12, point 6) -----------------------------------------------------------

SAME_SPEC = """\
    graphnet: 1
    name: same
    use: [std]
    dims: {{B: ~, H: {h}}}
    inputs:
      x: [B, 3, H, H]
    nodes:
      - {{name: c, block: std.conv2d, args: {{out: 4, kernel: 3, stride: 2, padding: {padding}}}}}
    outputs: {{y: c}}
    """


def test_same_with_a_stride_that_makes_the_ends_differ_asks_which(tmp_path):
    errors = _errors(tmp_path, SAME_SPEC.format(h=32, padding="same"))
    assert errors == ["spec.yaml:8:5: error: node 'c.conv' (conv): pads 'same' with stride 2: pads 0 + 1 on spatial "
                      "axis 0 (32 cells), so the odd cell could go at either end; write same_upper (at the end, "
                      "TensorFlow's SAME; PyTorch refuses padding='same' with a stride) or same_lower (at the "
                      "start), or explicit pads (inputs: x: float32[B, 3, 32, 32], w: float32[4, 3, 3, 3], "
                      "b: float32[4])",
                      "<std>/layers.yaml:50:9: note: in block 'std.conv2d' at node 'c.conv'"]


@pytest.mark.parametrize("padding,pads", [("same_upper", (0, 1)), ("same_lower", (1, 0))])
def test_same_upper_and_lower_are_tensorflows_and_its_mirror(tmp_path, padding, pads):
    torch = pytest.importorskip("torch")
    import numpy as np
    net = gn.load(_write(tmp_path, SAME_SPEC.format(h=8, padding=padding)))
    weights = net.init_weights()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    padded = torch.nn.functional.pad(torch.from_numpy(x), (pads[0], pads[1], pads[0], pads[1]))
    want = torch.nn.functional.conv2d(padded, torch.from_numpy(weights["c.weight"]), torch.from_numpy(weights["c.bias"]),
                                      stride=2).numpy()
    np.testing.assert_allclose(net.run({"x": x}, weights)["y"], want, rtol=1e-5, atol=1e-5)
    import onnxruntime as ort
    session = ort.InferenceSession(net.to_onnx(weights).SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-5)


def test_same_where_both_ends_agree_is_accepted(tmp_path):
    # 9 cells, kernel 3, stride 2: 5 outputs need 1 + 1 pads, the same either way
    net = gn.load(_write(tmp_path, SAME_SPEC.format(h=9, padding="same")))
    assert net.outputs["y"][2:] == (5, 5)


# -- summary labels follow block calls (issue 12, point 7) ------------------------------------------

def test_summary_folds_by_block_calls_not_name_prefixes(tmp_path):
    net = gn.load(_write(tmp_path, """\
        graphnet: 1
        name: folds
        use: [std]
        dims: {B: ~}
        inputs:
          x: [B, 8]
        blocks:
          features:
            inputs:
              x: [N, F]
            nodes:
              - {block: std.linear, args: {out: 8}}
              - {op: relu}
              - {block: std.linear, repeat: 1, args: {out: 8}}
            outputs: {y: "2"}
        nodes:
          - {name: features, block: features}
          - {name: head, block: std.linear, repeat: 2, args: {out: 4}}
        outputs: {y: head}
        """))
    rows = {line.split()[0]: line.split()[1:3] for line in net.summary(depth=2).splitlines()[3:10]}
    assert rows["features"][0] == "features"            # one call, not `features x3`
    assert rows["features.2"] == ["std.linear", "x1"]   # a repeat of one copy: what the copy is
    assert rows["head"] == ["std.linear", "x2"]


def test_a_path_group_of_a_call_and_a_repeat_is_not_labelled_as_the_call(tmp_path):
    # torchvision's `features`: a stem call, then stages that are repeats (groups of their own)
    net = gn.load(_write(tmp_path, """\
        graphnet: 1
        name: groups
        use: [std]
        dims: {B: ~}
        inputs:
          x: [B, 8]
        blocks:
          stage:
            inputs:
              x: [N, F]
            nodes:
              - {name: fc, block: std.linear, args: {out: 8}}
            outputs: {y: fc}
        nodes:
          - {name: stem, block: std.linear, path: features.0, args: {out: 8}}
          - {name: stages, block: stage, repeat: 3, path: "features.1.{index}"}
        outputs: {y: stages}
        """))
    rows = {line.split()[0]: line.split()[1:3] for line in net.summary(depth=2).splitlines()[3:6]}
    assert rows["features"] == ["block", "x2"]             # not `std.linear x2`: features.1 is no linear
    assert rows["features.0"][0] == "std.linear" and rows["features.1"] == ["stage", "x3"]


# -- messages (issue 12, point 8) ---------------------------------------------------------------

def test_a_bad_node_name_states_the_rule(tmp_path):
    errors = _errors(tmp_path, """\
        graphnet: 1
        name: names
        dims: {B: ~}
        inputs:
          x: [B, 4]
        nodes:
          - {name: 1st-relu, op: relu}
        outputs: {y: "0"}
        """)
    assert errors == ["spec.yaml:7:12: error: nodes.0.name: '1st-relu' is not a valid name: a name is letters, "
                      "digits and _, and does not start with a digit"]


def test_a_spec_dim_inside_a_block_says_to_pass_it(tmp_path):
    errors = _errors(tmp_path, """\
        graphnet: 1
        name: scope
        use: [std]
        dims: {B: ~, width: 16}
        inputs:
          x: [B, 8]
        blocks:
          widen:
            inputs:
              x: [N, F]
            nodes:
              - {name: fc, block: std.linear, args: {out: width}}
            outputs: {y: fc}
        nodes:
          - {name: w, block: widen}
        outputs: {y: w}
        """)
    assert errors == ["spec.yaml:12:51: error: argument 'out' of block 'std.linear' must be int, got 'width' "
                      "(unknown name 'width'; 'width' is a dim of the spec, and a block sees only its args, the "
                      "dims its inputs bind and its own dims: pass it as an arg (args: {width: width}))",
                      "spec.yaml:15:5: note: from 'w'"]


LINEAR = """\
    graphnet: 1
    name: lin
    dims: {B: ~, h: ~}
    inputs:
      image: [B, 3, 16*h, 16*h]
    nodes:
      - {name: pool, op: avg_pool, attrs: {kernel: 16}}
    outputs: {y: pool}
    """


def test_run_inputs_binds_a_linear_dim(tmp_path):
    import numpy as np
    net = gn.load(_write(tmp_path, LINEAR))
    assert net.run({"image": np.ones((2, 3, 64, 64), np.float32)}, {})["y"].shape == (2, 3, 4, 4)


def test_a_linear_dim_that_does_not_divide_says_so(tmp_path):
    import numpy as np
    from graphnet.backends.numpy_backend import InputMismatch, bind_dims
    net = gn.load(_write(tmp_path, LINEAR))
    with pytest.raises(InputMismatch) as e:
        bind_dims(net.graph, {"image": (2, 3, 60, 60)})
    assert str(e.value) == ("input 'image' dim 2 is 60, but 16*h = 60 gives no positive whole h "
                            "(60 is not a multiple of 16)")


def test_a_dim_no_input_binds_says_what_to_do(tmp_path):
    from graphnet.backends.numpy_backend import InputMismatch, bind_dims
    net = gn.load(_write(tmp_path, LINEAR.replace("16*h, 16*h", "h*h, 16")))
    with pytest.raises(InputMismatch) as e:
        bind_dims(net.graph, {"image": (2, 3, 64, 16)})
    assert str(e.value) == ("input 'image' dim 2 (h^2) cannot be bound from the inputs: no input axis is h alone "
                            "or linear in one free dim (as 16*h is); give --dim h=N")


# -- free dims with facts (issue 12, point 5) -----------------------------------------------------

FACTS = """\
    graphnet: 1
    name: facts
    dims: {B: ~, T: {max: 1024}, H: {multiple_of: 16}}
    inputs:
      x: [B, T, H]
    nodes:
      - {name: r, op: relu}
    outputs: {y: r}
    """


def test_facts_are_checked_at_a_dim_binding_with_its_location(tmp_path):
    path = _write(tmp_path, FACTS)
    with pytest.raises(SpecError) as e:
        gn.load(path, {"T": 2000, "H": 20})
    assert str(e.value).replace(str(path), "spec.yaml").splitlines() == [
        "spec.yaml:3:17: error: --dim T=2000: T must be at most 1024 (max 1024)",
        "spec.yaml:3:33: error: --dim H=20: H must be a multiple of 16 (multiple_of 16)"]
    assert gn.load(path, {"T": 1024, "H": 32}).outputs["y"][1:] == (1024, 32)


def test_facts_are_checked_on_the_inputs_and_recorded_in_the_export(tmp_path):
    import numpy as np
    from graphnet.backends.numpy_backend import InputMismatch, bind_dims
    net = gn.load(_write(tmp_path, FACTS))
    with pytest.raises(InputMismatch) as e:
        bind_dims(net.graph, {"x": (1, 4, 20)})
    assert str(e.value) == "input 'x' dim 2 binds H = 20, but H must be a multiple of 16 (multiple_of 16)"
    assert net.run({"x": np.ones((1, 4, 32), np.float32)}, {})["y"].shape == (1, 4, 32)
    model = net.to_onnx({})
    assert {p.key: p.value for p in model.metadata_props}["graphnet.dim_facts"] == "H: multiple_of 16; T: max 1024"
    assert [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim] == ["B", "T", "H"]



UNET = """\
    graphnet: 1
    name: unet
    use: [std]
    dims: {B: ~, H: FACT, W: FACT}
    inputs:
      image: [B, 3, H, W]
    blocks:
      down:
        args: {out: int}
        inputs:
          x: [N, C, H, W]
        nodes:
          - {name: conv, block: std.conv2d, args: {out: out, kernel: 3, padding: 1}}
          - {name: act, op: relu}
          - {name: pool, op: max_pool, attrs: {kernel: 2, strides: 2}}
        outputs: {skip: act, y: pool}
    nodes:
      - {name: d1, block: down, args: {out: 4}}
      - {name: d2, block: down, args: {out: 8}, inputs: [d1.y]}
      - {name: up2, op: resize, inputs: [d2.y], attrs: {scales: [2, 2]}}
      - {name: cat2, op: concat, inputs: [up2, d2.skip], attrs: {axis: 1}}
      - {name: up1, op: resize, attrs: {scales: [2, 2]}}
      - {name: cat1, op: concat, inputs: [up1, d1.skip], attrs: {axis: 1}}
      - {name: exact, op: reshape, attrs: {shape: [B, 20, H // 16 * 16, W]}, if: FACT_16}
      - {name: head, block: std.conv2d, args: {out: 2, kernel: 1}}
    outputs: {y: head}
    """


def test_multiple_of_facts_let_a_unet_skip_concat_validate_with_free_dims(tmp_path):
    import onnxruntime as ort
    errors = _errors(tmp_path, UNET.replace("FACT_16", "false").replace("FACT", "~"))
    assert errors == ["spec.yaml:21:5: error: node 'cat2' (concat): inputs differ in dim 2 (not the concat axis 1): "
                      "float32[B, 8, 2*(H - 4)//4 + 2, 2*(W - 4)//4 + 2], float32[B, 8, (H - 2)//2 + 1, (W - 2)//2 + 1] "
                      "(inputs: xs[0]: float32[B, 8, 2*(H - 4)//4 + 2, 2*(W - 4)//4 + 2], "
                      "xs[1]: float32[B, 8, (H - 2)//2 + 1, (W - 2)//2 + 1])"]
    # with the facts, the pooled-and-upsampled map is H again, and H // 16 * 16 is H (the reshape)
    net = gn.load(_write(tmp_path, UNET.replace("FACT_16", "true").replace("FACT", "{multiple_of: 16}")))
    assert net.outputs["y"] == ("B", 2, "H", "W")
    assert [str(d) for d in net.graph.types["d2.pool"].shape[2:]] == ["4*H//16", "4*W//16"]   # H / 4, over H // 16
    weights = net.init_weights(seed=1)
    image = np.random.default_rng(0).standard_normal((1, 3, 32, 48)).astype(np.float32)
    ours = net.run({"image": image}, weights)["y"]
    session = ort.InferenceSession(net.to_onnx(weights).SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(ours, session.run(None, {"image": image})[0], rtol=1e-5, atol=1e-6)
    assert ours.shape == (1, 2, 32, 48)


def test_a_requirement_the_facts_imply_holds(tmp_path):
    text = """\
        graphnet: 1
        name: req
        dims: {B: ~, H: FACT}
        require:
          - H % 16 == 0
          - (H + 8) // 16 * 16 == H
        inputs:
          x: [B, H]
        nodes:
          - {name: r, op: relu}
        outputs: {y: r}
        """
    assert gn.load(_write(tmp_path, text.replace("FACT", "{multiple_of: 16}"))).outputs["y"] == ("B", "H")
    assert _errors(tmp_path, text.replace("FACT", "{multiple_of: 8}")) == [
        "spec.yaml:5:5: error: requirement 'H % 16 == 0' cannot be shown for every value of the free dim H; a fact in "
        "dims says what is known of a free dim (`H: {multiple_of: 16}`, `{min: 8, max: 1024}`), or --dim binds it"]


def test_the_gradient_graph_keeps_the_multiple_of_facts(tmp_path):
    # T // 8 * 8 is T in the forward; the backward, typed by autodiff, must see it so too
    net = gn.load(_write(tmp_path, """\
        graphnet: 1
        name: blocks
        dims: {B: ~, T: {multiple_of: 8}}
        inputs:
          x: [B, T]
        params:
          w: {shape: [8], init: ones}
        nodes:
          - {name: blocks, op: reshape, inputs: [x], attrs: {shape: [B, T // 8, 8]}}
          - {name: scaled, op: mul, inputs: [blocks, w]}
          - {name: back, op: reshape, attrs: {shape: [B, T // 8 * 8]}}
          - {name: y, op: add, inputs: [back, x]}
        outputs: {y: y}
        """))
    x = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    cot = np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32)
    _, weight_grads, input_grads = net.vjp({"x": x}, {"w": np.full(8, 3.0, np.float32)}, {"y": cot}, mode="eval")
    np.testing.assert_allclose(input_grads["x"], 4 * cot, rtol=1e-6)    # y = 3x + x
    np.testing.assert_allclose(weight_grads["w"], (cot * x).reshape(2, 2, 8).sum(axis=(0, 1)), rtol=1e-5)


POSITIONS = """\
    graphnet: 1
    name: pos
    dims: {B: ~, T: {max: MAX}}
    inputs:
      x: [B, T, 8]
    params:
      table: {shape: [1024, 8], init: {normal: {std: 0.02}}}
    nodes:
      - {name: positions, op: range, attrs: {limit: T}}
      - {name: pos, op: gather, inputs: [table, positions]}
      - {name: add, op: add, inputs: [x, pos]}
    outputs: {y: add}
    """


def test_a_max_fact_decides_whether_range_t_fits_a_position_table(tmp_path):
    net = gn.load(_write(tmp_path, POSITIONS.replace("MAX", "1024")))
    x = np.ones((1, 1024, 8), np.float32)
    assert net.run({"x": x}, net.init_weights())["y"].shape == (1, 1024, 8)
    assert _errors(tmp_path, POSITIONS.replace("MAX", "2000")) == [
        "spec.yaml:10:5: error: node 'pos' (gather): with T = 2000, the most its facts allow: indices reach 1999 "
        "(they run from 0 to 1999), out of range for the 1024 entries of data along axis 0 (valid: -1024 to 1023)"]


# -- params with given values (issue 12: Swin's relative position index) ---------------------------

def test_a_values_init_computes_torchvisions_relative_position_index(tmp_path):
    torch = pytest.importorskip("torch")
    swin = pytest.importorskip("torchvision.models.swin_transformer")
    net = gn.load(_write(tmp_path, """\
        graphnet: 1
        name: rel_index
        dims: {B: ~, w: 3, N: w * w}
        inputs:
          x: [B, 4]
        params:
          table: {shape: ["(2 * w - 1) * (2 * w - 1)", 4], init: ones}
          index:
            shape: [N * N]
            dtype: int64
            trainable: false
            init: {values: "[(p // N // w - p % N // w + w - 1) * (2 * w - 1) + p // N % w - p % N % w + w - 1 for p in range(N * N)]"}
          nested: {shape: [2, 2], init: {values: [[1, 2], [3, 4]]}}
        nodes:
          - {name: rows, op: gather, inputs: [table, index]}
          - {name: total, op: reduce_sum, attrs: {axes: [0], keepdims: false}}
          - {name: scaled, op: mul, inputs: [x, total]}
          - {name: flat, op: reshape, inputs: [nested], attrs: {shape: [4]}}
          - {name: y, op: add, inputs: [scaled, flat]}
        outputs: {y: y}
        """))
    attn = swin.ShiftedWindowAttention(8, [3, 3], [0, 0], 2)
    weights = net.init_weights(seed=5)
    assert weights["index"].dtype == np.int64
    assert np.array_equal(weights["index"], attn.relative_position_index.numpy())
    assert np.array_equal(weights["nested"], [[1.0, 2.0], [3.0, 4.0]])
    assert np.array_equal(net.init_weights(seed=6)["index"], weights["index"])   # no random stream
    assert net.graph.param_count(trainable=True) == 25 * 4 + 4   # the table and `nested`


def test_a_values_init_of_the_wrong_count_or_kind_is_located(tmp_path):
    errors = _errors(tmp_path, """\
        graphnet: 1
        name: bad_values
        dims: {B: ~}
        inputs:
          x: [B, 3]
        params:
          short: {shape: [3], init: {values: [1, 2]}}
          half: {shape: [2], dtype: int64, init: {values: [1, 2.5]}}
          word: {shape: [1], init: {values: [true]}}
        nodes:
          - {name: a, op: add, inputs: [x, short]}
          - {name: b, op: cast, inputs: [half], attrs: {to: float32}}
          - {name: c, op: add, inputs: [a, word]}
        outputs: {y: c, z: b}
        """)
    assert errors == [
        "spec.yaml:7:29: error: param 'short': values gives 2 numbers for a param of shape [3] (3 numbers)",
        "spec.yaml:8:42: error: param 'half': values holds fractions, which int64 cannot hold",
        "spec.yaml:9:28: error: init 'values' option 'values': values must be numbers, got True",
    ]


POOLS_SPEC = """\
    graphnet: 1
    name: pools
    dims: {{B: ~, H: {facts}}}
    inputs:
      x: [B, 4, H]
    nodes:
      - {{name: p, op: max_pool, attrs: {{kernel: 2}}}}
      - {{name: p2, op: max_pool, attrs: {{kernel: 2}}}}
    outputs: {{y: p2}}
    """


@pytest.mark.parametrize("facts, message", [
    ("{min: 5, max: 3}", "no value of H fits its facts (min 5, max 3): the least is 5, past the max 3"),
    ("{multiple_of: 16, min: 17, max: 31}",
     "no value of H fits its facts (min 17, max 31, multiple_of 16): the least is 32, past the max 31"),
])
def test_facts_no_value_fits_are_refused_at_the_dim(tmp_path, facts, message):
    assert _errors(tmp_path, POOLS_SPEC.format(facts=facts)) == [f"spec.yaml:3:17: error: {message}"]


@pytest.mark.parametrize("facts", ["~", "{}", "{max: 99999999999999999999999}"])
def test_a_summary_whose_default_binding_no_op_can_take_leaves_the_peak_out(tmp_path, facts):
    # two pools need H >= 4, and the summary's estimate is made at H = 1: it was a traceback
    net = gn.load(_write(tmp_path, POOLS_SPEC.format(facts=facts)))
    assert net.peak_memory() is None
    assert "peak memory" not in net.summary() and "MACs" in net.summary()
    assert net.peak_memory({"B": 1, "H": 4}) is not None
