"""Recurrent-cell fusion follows what a cell declares (`fuses_to:`), not its node names: a copy of
std's lstm cell with every node renamed still fuses, for the NumPy plan and the ONNX export alike; a
declaration that does not fit the cell is an error at validate, at the key it is about; a scan the
fused op cannot express runs as written, with the same results."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import graphnet as gn
from graphnet.backends import rewrites
from graphnet.transforms.derive import Known
from graphnet.transforms.recurrent import fuse_recurrent_cells

STD = Path(gn.__file__).parent / "std" / "recurrent.yaml"


def _write(tmp_path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _ops(graph) -> list[str]:
    return [n.op.name for n in graph.nodes]


def _renamed_lstm_cell() -> str:
    """std's lstm_cell as a block of one's own, every node name changed."""
    text = STD.read_text()
    block = text[text.index("  lstm_cell:"):text.index("  gru_cell:")]
    renames = {"pre": "affine", "gates": "parts", "keep": "kept", "write": "added", "c_next": "cell_out",
               "c_tanh": "squashed", "h_next": "hidden_out", "i": "gi", "f": "gf", "g": "gg", "o": "go"}
    head, nodes = block.split("    nodes:\n", 1)
    for old, new in renames.items():
        nodes = re.sub(rf"(?<![\w.]){old}(?=[.,\]}}\s])", new, nodes)
    nodes = nodes.replace("block: cell_preactivation", "block: std.cell_preactivation")
    return head.replace("  lstm_cell:", "  my_cell:") + "    nodes:\n" + nodes


def _lstm_spec(tmp_path, block: str) -> gn.Network:
    head = textwrap.dedent("""\
        graphnet: 1
        name: mine
        use: [std]
        dims: {B: ~, T: ~, I: 5, H: 6}
        blocks:
        """)
    tail = textwrap.dedent("""\
        inputs:
          x: [B, T, I]
          h0: [B, H]
          c0: [B, H]
        nodes:
          - {name: cell, scan: my_cell, args: {hidden: H}, over: [x], inputs: {x: x, h: h0, c: c0}}
        outputs: {y: cell.y, h: cell.h, c: cell.c}
        """)
    return gn.load(_write(tmp_path, head + block + tail))


def test_fusion_follows_the_declaration_not_the_node_names(tmp_path):
    block = _renamed_lstm_cell()
    assert "h_next" not in block and "c_next" not in block and "hidden_out" in block
    net = _lstm_spec(tmp_path, block)
    fused = fuse_recurrent_cells(net.graph, Known(net.init_weights(0)))
    assert _ops(net.graph) == ["scan"] and "lstm" in _ops(fused) and "scan" not in _ops(fused)
    weights = net.init_weights(seed=4)
    inputs = net.random_inputs({"B": 3, "T": 7}, seed=1)
    plain = net.session(weights, optimize=False).run(inputs)       # the cell's own ops, step by step
    np_fused = net.session(weights).run(inputs)
    model = net.to_onnx(weights)
    assert "LSTM" in [n.op_type for n in model.graph.node] and "Scan" not in [n.op_type for n in model.graph.node]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
    for name, value in plain.items():
        np.testing.assert_allclose(np_fused[name], value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(theirs[name], value, rtol=1e-5, atol=1e-6)


# (what is changed in the renamed cell's declaration, the key the error points at, the message)
MISFITS = [
    ("op: lstm", "op: lstmm", "op", "'lstmm' is not a recurrent op (rnn, lstm, gru)"),
    ("gates: [i, f, c, o]", "gates: [i, f, g, o]", "gates",
     "gates ['i', 'f', 'g', 'o'] are not the lstm op's gates in some order (i, o, f, c)"),
    ("states: [h, c]", "states: [h]", "states", "the lstm op carries 2 state(s) (h, c), not 1"),
    ("states: [h, c]", "states: [c, x]", "states", "state 'x' is not both an input and an output of the cell"),
    ("output: y", "output: c", "output", "output 'c' is not an output of the cell equal to its next 'h'"),
    ("weights: {w: weight_ih, r: weight_hh", "weights: {w: weight_hh, r: weight_ih", "weights",
     "weight w ('weight_hh') is float32[24, 6], the lstm op needs float32[24, 5]"),
    ("rb: bias_hh}", "rb: bias_ih, extra: bias_hh}", "weights", "weights must name w, r, wb, rb"),
    ("gates: [i, f, c, o]", "gates: [i, f, c, o]\n      attrs: {layout: 1}", "attrs",
     "attrs may not set hidden_size, layout or direction"),
    ("gates: [i, f, c, o]", "gates: [i, f, c, o]\n      attrs: {clip: 3}", "attrs",
     "attrs {'clip': 3} do not fit the lstm op"),
]


@pytest.mark.parametrize("old, new, key, message", MISFITS, ids=[m[2] + ":" + m[1][:24] for m in MISFITS])
def test_a_declaration_that_does_not_fit_is_an_error_at_validate(tmp_path, old, new, key, message):
    block = _renamed_lstm_cell()
    assert old in block, old
    with pytest.raises(gn.SpecError) as e:
        _lstm_spec(tmp_path, block.replace(old, new, 1))
    text = str(e.value)
    op = new.split()[1] if key == "op" else "lstm"
    assert f"error: block 'my_cell' declares fuses_to {op}, but {message}" in text
    line = int(re.search(r"spec\.yaml:(\d+):\d+: error: block 'my_cell' declares", text).group(1))
    written = (tmp_path / "spec.yaml").read_text().splitlines()[line - 1]
    assert f"{key}:" in written and written.startswith("      ")       # the key, inside fuses_to


def test_a_scan_the_op_cannot_express_runs_as_written(tmp_path):
    # std.rnn_cell scanned along the last axis of x [B, I, T]: the rnn op has no such layout, so the
    # scan stays, in the plan and the export; its results are those of the fused op on x [B, T, I]
    along_t = gn.load(_write(tmp_path, """\
        graphnet: 1
        name: last_axis
        use: [std]
        dims: {B: ~, T: ~, I: 5, H: 6}
        inputs:
          x: [B, I, T]
          h0: [B, H]
        nodes:
          - {name: cell, scan: std.rnn_cell, args: {hidden: H}, over: [x], axis: 2, inputs: {x: x, h: h0}}
        outputs: {y: cell.y, h: cell.h}
        """, "last.yaml"))
    batch_first = gn.load(_write(tmp_path, """\
        graphnet: 1
        name: batch_first
        use: [std]
        dims: {B: ~, T: ~, I: 5, H: 6}
        inputs:
          x: [B, T, I]
          h0: [B, H]
        nodes:
          - {name: cell, scan: std.rnn_cell, args: {hidden: H}, over: [x], inputs: {x: x, h: h0}}
        outputs: {y: cell.y, h: cell.h}
        """, "first.yaml"))
    weights = along_t.init_weights(seed=2)
    assert "scan" in _ops(rewrites.optimize(along_t.graph, {"B": 2, "T": 4}, Known(weights)))
    assert "rnn" in _ops(rewrites.optimize(batch_first.graph, {"B": 2, "T": 4}, Known(weights)))
    inputs = along_t.random_inputs({"B": 2, "T": 4}, seed=3)
    ours = along_t.session(weights).run(inputs)
    expected = batch_first.session(weights).run({"x": inputs["x"].transpose(0, 2, 1), "h0": inputs["h0"]})
    np.testing.assert_allclose(ours["y"], expected["y"].transpose(0, 2, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours["h"], expected["h"], rtol=1e-5, atol=1e-6)
    model = along_t.to_onnx(weights)
    assert "Scan" in [n.op_type for n in model.graph.node]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["y"], inputs)[0], ours["y"], rtol=1e-5, atol=1e-6)
