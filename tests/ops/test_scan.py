"""scan: std's cells written from primitives, stepped through a sequence, equal the fused ONNX
recurrent ops (and PyTorch's layers when it is installed); the export runs in onnxruntime with the
batch and sequence dims left free."""

import textwrap

import numpy as np
import onnxruntime as ort
import pytest

import graphnet as gn
from graphnet.ops.recurrent import Gru, Lstm, Rnn

# PyTorch's gate blocks (what std's cells use) in ONNX's order: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h
ONNX_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn": [0]}
STATES = {"lstm": ["h", "c"], "gru": ["h"], "rnn": ["h"]}


def _spec(tmp_path, kind: str, reverse: bool = False):
    states = STATES[kind]
    state_inputs = "\n".join(f"          {s}0: [B, H]" for s in states)
    wiring = ", ".join(f"{s}: {s}0" for s in states)
    outs = ", ".join(f"{s}: cell.{s}" for s in states)
    path = tmp_path / f"{kind}.yaml"
    path.write_text(textwrap.dedent(f"""\
        graphnet: 1
        name: {kind}_scan
        use: [std]
        dims: {{B: ~, T: ~, I: 5, H: 6}}
        inputs:
          x: [B, T, I]
{state_inputs}
        nodes:
          - {{name: cell, scan: std.{kind}_cell, args: {{hidden: H}}, over: [x], reverse: {str(reverse).lower()},
             inputs: {{x: x, {wiring}}}}}
        outputs: {{y: cell.y, {outs}}}
        """))
    return gn.load(path)


def _fused(kind: str, weights: dict, reverse: bool):
    def reorder(a):
        blocks = np.split(a, len(ONNX_ORDER[kind]), axis=0)
        return np.concatenate([blocks[i] for i in ONNX_ORDER[kind]], axis=0)

    w = reorder(weights["cell.weight_ih"])[None]
    r = reorder(weights["cell.weight_hh"])[None]
    b = np.concatenate([reorder(weights["cell.bias_ih"]), reorder(weights["cell.bias_hh"])])[None]
    attrs = dict(hidden_size=6, layout=1, direction="reverse" if reverse else "forward")
    op = {"lstm": Lstm(**attrs), "gru": Gru(linear_before_reset=True, **attrs), "rnn": Rnn(**attrs)}[kind]
    return op, (w, r, b)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("reverse", [False, True])
def test_scanned_cell_equals_fused_op_and_onnxruntime(tmp_path, kind, reverse):
    net = _spec(tmp_path, kind, reverse)
    weights = net.init_weights(seed=5)
    session = ort.InferenceSession(net.to_onnx(weights).SerializeToString(), providers=["CPUExecutionProvider"])
    op, fused_weights = _fused(kind, weights, reverse)
    for dims in ({"B": 2, "T": 7}, {"B": 3, "T": 1}):
        inputs = net.random_inputs(dims, seed=dims["T"])
        ours = net.run(inputs, weights)
        theirs = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
        states = [inputs[f"{s}0"][:, None] for s in STATES[kind]]     # [B, dirs=1, H]
        fused = op.compute(inputs["x"], *fused_weights, *states)
        np.testing.assert_allclose(ours["y"], fused[0][:, :, 0], rtol=1e-5, atol=1e-6)
        for k, s in enumerate(STATES[kind]):
            np.testing.assert_allclose(ours[s], fused[1 + k][:, 0], rtol=1e-5, atol=1e-6)
        for name, value in ours.items():
            np.testing.assert_allclose(value, theirs[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_scanned_cell_equals_pytorch_layer(tmp_path, kind):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
    net = _spec(tmp_path, kind)
    weights = net.init_weights(seed=6)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind](5, 6, batch_first=True)
    module.load_state_dict({f"{p}_l0": torch.from_numpy(weights[f"cell.{p}"])
                            for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
    inputs = net.random_inputs({"B": 2, "T": 5}, seed=0)
    state = tuple(torch.from_numpy(inputs[f"{s}0"])[None] for s in STATES[kind])
    with torch.no_grad():
        y, final = module(torch.from_numpy(inputs["x"]), state if kind == "lstm" else state[0])
    ours = net.run(inputs, weights)
    np.testing.assert_allclose(ours["y"], y.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours["h"], (final[0] if kind == "lstm" else final)[0].numpy(), rtol=1e-5, atol=1e-6)


def test_scan_counts_cell_params_once_and_macs_per_step(tmp_path):
    net = _spec(tmp_path, "lstm")
    assert net.graph.param_count() == 4 * 6 * (5 + 6) + 2 * 4 * 6       # torch.nn.LSTMCell(5, 6)
    assert net.graph.total_macs().subs({"B": 2, "T": 7}) == 2 * 7 * 4 * 6 * (5 + 6)
    assert net.outputs == {"y": ("B", "T", 6), "h": ("B", 6), "c": ("B", 6)}


@pytest.mark.parametrize("node,anchor,message", [
    ("{name: cell, scan: std.lstm_cell, args: {hidden: 6}, over: [xs], inputs: {x: x, h: h0, c: h0}}", "xs]",
     "block 'std.lstm_cell' has no input 'xs' to scan over; did you mean 'x'?"),
    ("{name: cell, scan: std.lstm_cell, args: {hidden: 6}, inputs: {x: x, h: h0, c: h0}}", "{name",
     "nodes.0: a scan node needs 'over': the block inputs to step through"),
    ("{name: cell, block: std.lstm_cell, args: {hidden: 6}, over: [x], inputs: {x: x, h: h0, c: h0}}", "{name",
     "nodes.0: 'over' is for scan nodes"),
    ("{name: cell, scan: std.gru_cell, args: {hidden: 6}, over: [x], axis: 3, inputs: {x: x, h: h0}}", "3,",
     "axis 3 is out of range for 'x' float32[B, T, 5]"),
])
def test_scan_mistakes_are_located(tmp_path, node, anchor, message):
    line = f"  - {node}"
    path = tmp_path / "bad.yaml"
    path.write_text("graphnet: 1\nname: bad\nuse: [std]\ndims: {B: ~, T: ~}\ninputs:\n  x: [B, T, 5]\n"
                    f"  h0: [B, 6]\nnodes:\n{line}\noutputs: {{y: cell.y}}\n")
    with pytest.raises(gn.SpecError) as info:
        gn.load(path)
    d = info.value.diagnostics[0]
    assert message in d.message
    assert (d.loc.line, d.loc.col) == (9, line.index(anchor) + 1)
