"""The fused rnn/lstm/gru ops against PyTorch's layers: same numbers once PyTorch's gate blocks are
put in ONNX order (LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h), and shape-rule errors."""

import numpy as np
import pytest

from graphnet.ops import ShapeError, TensorType
from graphnet.ops.recurrent import Gru, Lstm, Rnn

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")

ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn": [0]}


def _onnx_weights(module, kind: str, dirs: int):
    """Stack PyTorch's per-direction weights as ONNX's w, r, b with the gates reordered."""
    def reorder(t):
        blocks = np.split(t.detach().numpy(), len(ORDER[kind]), axis=0)
        return np.concatenate([blocks[i] for i in ORDER[kind]], axis=0)

    suffixes = ["", "_reverse"][:dirs]
    w = np.stack([reorder(getattr(module, f"weight_ih_l0{s}")) for s in suffixes])
    r = np.stack([reorder(getattr(module, f"weight_hh_l0{s}")) for s in suffixes])
    b = np.stack([np.concatenate([reorder(getattr(module, f"bias_ih_l0{s}")),
                                  reorder(getattr(module, f"bias_hh_l0{s}"))]) for s in suffixes])
    return w, r, b


@pytest.mark.parametrize("kind,bidirectional", [("lstm", False), ("lstm", True), ("gru", False),
                                                 ("gru", True), ("rnn", True)])
def test_matches_pytorch(kind, bidirectional):
    torch.manual_seed(0)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
    module = cls(input_size=5, hidden_size=6, batch_first=True, bidirectional=bidirectional)
    dirs = 2 if bidirectional else 1
    x = np.random.default_rng(0).standard_normal((3, 7, 5)).astype(np.float32)
    h0 = np.random.default_rng(1).standard_normal((dirs, 3, 6)).astype(np.float32)
    c0 = np.random.default_rng(2).standard_normal((dirs, 3, 6)).astype(np.float32)
    with torch.no_grad():
        state = (torch.from_numpy(h0), torch.from_numpy(c0)) if kind == "lstm" else torch.from_numpy(h0)
        want_y, want_state = module(torch.from_numpy(x), state)
    w, r, b = _onnx_weights(module, kind, dirs)
    attrs = dict(hidden_size=6, direction="bidirectional" if bidirectional else "forward", layout=1)
    op = {"lstm": Lstm, "gru": lambda **a: Gru(linear_before_reset=True, **a), "rnn": Rnn}[kind](**attrs)
    states = [h0.transpose(1, 0, 2)] + ([c0.transpose(1, 0, 2)] if kind == "lstm" else [])
    outs = op.compute(x, w, r, b, *states)
    # y is [B, T, dirs, H]; PyTorch concatenates the directions on the last axis
    np.testing.assert_allclose(outs[0].reshape(3, 7, dirs * 6), want_y.numpy(), rtol=1e-5, atol=1e-5)
    want_h = want_state[0] if kind == "lstm" else want_state
    np.testing.assert_allclose(outs[1].transpose(1, 0, 2), want_h.numpy(), rtol=1e-5, atol=1e-5)
    if kind == "lstm":
        np.testing.assert_allclose(outs[2].transpose(1, 0, 2), want_state[1].numpy(), rtol=1e-5, atol=1e-5)


def test_weight_shape_errors_say_what_was_expected():
    op = Lstm(hidden_size=4, direction="bidirectional")
    x = TensorType("float32", (5, 2, 3))
    with pytest.raises(ShapeError, match=r"w must be \[2, 16, 3\] for 2 direction\(s\) and hidden size 4"):
        op.infer(x, TensorType("float32", (1, 16, 3)), TensorType("float32", (2, 16, 4)))


@pytest.mark.parametrize("cls", [Rnn, Lstm, Gru])
@pytest.mark.parametrize("direction, layout", [("forward", 0), ("bidirectional", 1)])
def test_scratch_estimate_bounds_what_the_kernel_allocates(cls, direction, layout):
    # the [T, B, gates*H] input projection and the per-step outputs dominate: what tracemalloc sees
    # the kernel hold beyond its outputs is within the estimate, and not far below it
    import tracemalloc

    from graphnet.types import nbytes
    steps, batch, size, hidden = 40, 8, 16, 32
    op = cls(hidden_size=hidden, direction=direction, layout=layout)
    dirs, gh = op.dirs, op.gates * hidden
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, size) if layout else (steps, batch, size)).astype(np.float32)
    w, r = (rng.standard_normal((dirs, gh, n)).astype(np.float32) * 0.1 for n in (size, hidden))
    b = np.zeros((dirs, 2 * gh), np.float32)
    ins = [TensorType(a.dtype.name, a.shape) for a in (x, w, r, b)]
    outs = list(op.infer(*ins))
    tracemalloc.start()
    try:
        op.compute(x, w, r, b)
        measured = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    scratch = op.scratch_bytes(ins, outs)
    assert measured <= sum(nbytes(t) for t in outs) + scratch <= 3 * measured


@pytest.mark.parametrize("batch", [1, 3])
def test_lstm_leaves_its_inputs_as_they_were(batch):
    # its steps update the cell state in place: a batch of one, whose [1, H] state transposed is
    # contiguous already, must still be copied first (a plan's folded zero state is reused)
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype(np.float32) for s in
            [(4, batch, 3), (1, 8, 3), (1, 8, 2), (1, 16), (1, batch, 2), (1, batch, 2)]]
    kept = [a.copy() for a in args]
    first = Lstm(hidden_size=2).compute(*args)
    for a, k in zip(args, kept):
        np.testing.assert_array_equal(a, k)
    for a, b in zip(first, Lstm(hidden_size=2).compute(*args)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind,bidirectional,layout", [("lstm", False, 1), ("lstm", True, 0), ("gru", True, 1),
                                                        ("gru", False, 0), ("rnn", True, 1)])
def test_gradients_match_pytorch_autograd(kind, bidirectional, layout):
    """The fused op's vjp (the gradient of the scan it fuses, transforms/unfuse.py) equals torch's
    autograd through torch.nn.LSTM/GRU/RNN in float64, for x, the initial states and every weight
    (gates put back in PyTorch's order); and onnxruntime on the exported gradient graph agrees."""
    import onnxruntime as ort

    from graphnet.backends.numpy_backend import compile_plan, run_plan
    from graphnet.backends.onnx_export import to_onnx
    from graphnet.errors import Location
    from graphnet.graph import Frame, Graph, Node
    from graphnet.transforms.autodiff import COTANGENT, GRAD, gradient_graph
    torch.manual_seed(0)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
    module = cls(input_size=4, hidden_size=3, batch_first=bool(layout), bidirectional=bidirectional).double()
    dirs, batch, steps = 1 + bidirectional, 2, 5
    rng = np.random.default_rng(3)
    x = rng.standard_normal((batch, steps, 4) if layout else (steps, batch, 4))
    states = [rng.standard_normal((dirs, batch, 3)) for _ in range(2 if kind == "lstm" else 1)]
    w, r, b = _onnx_weights(module, kind, dirs)
    attrs = dict(hidden_size=3, direction="bidirectional" if bidirectional else "forward", layout=layout)
    op = {"lstm": Lstm, "gru": lambda **a: Gru(linear_before_reset=True, **a), "rnn": Rnn}[kind](**attrs)
    ours_states = [s.transpose(1, 0, 2) for s in states] if layout else states    # [B, dirs, H] in layout 1
    arrays = dict(zip(["x", "w", "r", "b", "initial_h", "initial_c"], [x, w, r, b, *ours_states]))
    types = {k: TensorType("float64", v.shape) for k, v in arrays.items()}
    outs = op.infer(*types.values())
    names = tuple(op.output_names())
    types.update(zip(names, outs))
    node = Node("rec", op, tuple(arrays), names, (Frame(Location("<test>"), "rec", ""),))
    graph = Graph(kind, {k: types[k] for k in arrays}, {n: n for n in names}, {}, [node], types)
    cot = {n: rng.standard_normal([d.value for d in types[n].shape]) for n in names}
    grad = gradient_graph(graph, list(arrays))
    feed = {**arrays, **{COTANGENT + n: c for n, c in cot.items()}}
    got = run_plan(compile_plan(grad, {}, {}), feed)

    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    y, final = module(tx, tuple(ts) if kind == "lstm" else ts[0])
    finals = list(final) if kind == "lstm" else [final]
    # ours: y [T, dirs, B, H] (layout 0) or [B, T, dirs, H]; torch's the directions on the last axis
    y_cot = cot["y"].transpose(0, 2, 1, 3) if not layout else cot["y"]
    total = (y * torch.tensor(y_cot.reshape(y.shape))).sum()
    for f, n in zip(finals, names[1:]):
        c = cot[n].transpose(1, 0, 2) if layout else cot[n]
        total = total + (f * torch.tensor(c)).sum()
    total.backward()
    want = {"x": tx.grad.numpy(), **dict(zip(names[1:], [t.grad.numpy() for t in ts]))}
    from types import SimpleNamespace
    grads = SimpleNamespace(**{k: p.grad for k, p in module.named_parameters()})
    want_w, want_r, want_b = _onnx_weights(grads, kind, dirs)
    want.update({"w": want_w, "r": want_r, "b": want_b})
    for name, port in [("x", "x"), ("w", "w"), ("r", "r"), ("b", "b")] + [(n, f"initial_{n}") for n in names[1:]]:
        ours = got[GRAD + port]
        if layout and port.startswith("initial"):
            ours = ours.transpose(1, 0, 2)
        np.testing.assert_allclose(ours, want[name], rtol=1e-9, atol=1e-12, err_msg=f"{kind} d{port}")
    # onnxruntime's LSTM has no float64 kernel: the same gradient graph in float32, against NumPy's
    graph32 = Graph(kind, {k: TensorType("float32", t.shape) for k, t in graph.inputs.items()}, graph.outputs, {},
                    [node], {k: TensorType("float32", t.shape) for k, t in types.items()})
    grad32 = gradient_graph(graph32, list(arrays))
    feed32 = {k: v.astype(np.float32) for k, v in feed.items()}
    want32 = run_plan(compile_plan(grad32, {}, {}), feed32)
    session = ort.InferenceSession(to_onnx(grad32, {}).SerializeToString(), providers=["CPUExecutionProvider"])
    from_ort = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed32)))
    for port in arrays:
        np.testing.assert_allclose(from_ort[GRAD + port], want32[GRAD + port], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(want32[GRAD + port], got[GRAD + port], rtol=1e-4, atol=1e-5)


def test_an_imported_onnx_lstm_gets_torchs_gradients(tmp_path):
    """The use the fused op's vjp is for: torch.nn.LSTM exported by torch.onnx, imported (one lstm
    node, its weights ONNX initializers), differentiated by Network.vjp like torch's autograd."""
    import graphnet as gn
    torch.manual_seed(0)
    module = torch.nn.LSTM(4, 3, batch_first=True)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    path = tmp_path / "lstm.onnx"
    torch.onnx.export(module, (torch.from_numpy(x),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y", "h", "c"], dynamic_axes={"x": {0: "B"}})
    net, weights = gn.import_onnx(path)
    assert [n.op.name for n in net.graph.nodes].count("lstm") == 1
    outputs = net.run({"x": x}, weights)
    rng = np.random.default_rng(1)
    cot = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in outputs.items()}
    _, weight_grads, input_grads = net.vjp({"x": x}, weights, cot)
    tx = torch.tensor(x, requires_grad=True)
    y, (h, c) = module(tx)
    total = sum((t * torch.from_numpy(cot[k])).sum() for k, t in (("y", y), ("h", h), ("c", c)))
    total.backward()
    np.testing.assert_allclose(input_grads["x"], tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    from types import SimpleNamespace
    want = _onnx_weights(SimpleNamespace(**{k: p.grad for k, p in module.named_parameters()}), "lstm", 1)
    by_shape = {g.shape: g for g in weight_grads.values()}        # w [1, 12, 4], r [1, 12, 3], b [1, 24]
    assert len(by_shape) == 3
    for w in want:
        np.testing.assert_allclose(by_shape[w.shape], w, rtol=1e-4, atol=1e-5)
