"""The recurrent specs (rnn, birnn, lstm, gru, seq2seq_attention), scans of std's cells, against
PyTorch: the same parameter count as the torch modules, and with our weights loaded by their names,
as they are, the same outputs. PyTorch is an optional test dependency; without it these tests are
skipped."""

from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.dims import Dim

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
nn = torch.nn
SPECS = Path(__file__).resolve().parent.parent / "specs"


def _numel(*modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def _load(module, state: dict):
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True)
    return module.eval()


def _close(ours, theirs):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-4, atol=1e-5)


def _x(B: int, T: int, d: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((B, T, d)).astype(np.float32)


def test_rnn_equals_torch_rnn_and_linear_head():
    net = gn.load(SPECS / "rnn.yaml")
    rnn, head = nn.RNN(128, 256, batch_first=True), nn.Linear(256, 10)
    assert _numel(rnn, head) == net.graph.param_count() == 101_386
    w = net.init_weights(seed=1)
    _load(nn.ModuleDict({"rnn": rnn, "head": head}), w)
    x = _x(2, 6)
    ours = net.run({"x": x}, w)
    with torch.no_grad():
        y, h = rnn(torch.from_numpy(x))
        _close(ours["y"], head(y))
    _close(ours["h"], h[0])


def test_birnn_equals_two_layer_bidirectional_torch_rnn():
    net = gn.load(SPECS / "birnn.yaml")
    module = nn.RNN(128, 256, num_layers=2, bidirectional=True, batch_first=True)
    assert _numel(module) == net.graph.param_count() == 591_872
    w = net.init_weights(seed=2)
    _load(module, w)
    x = _x(3, 5, seed=1)
    ours = net.run({"x": x}, w)
    with torch.no_grad():
        y, h_n = module(torch.from_numpy(x))
    assert ours["y"].shape == (3, 5, 512) and ours["h_n"].shape == (4, 3, 256)
    _close(ours["y"], y)
    _close(ours["h_n"], h_n)


@pytest.mark.parametrize("kind, count", [("lstm", 921_600), ("gru", 691_200)])
def test_two_layer_lstm_and_gru_equal_torch(kind, count):
    net = gn.load(SPECS / f"{kind}.yaml")
    module = {"lstm": nn.LSTM, "gru": nn.GRU}[kind](128, 256, num_layers=2, batch_first=True)
    assert _numel(module) == net.graph.param_count() == count
    w = net.init_weights(seed=3)
    _load(module, w)
    x = _x(2, 7, seed=2)
    ours = net.run({"x": x}, w)
    with torch.no_grad():
        y, final = module(torch.from_numpy(x))
    _close(ours["y"], y)
    if kind == "lstm":
        _close(ours["h_n"], final[0])
        _close(ours["c_n"], final[1])
    else:
        _close(ours["h_n"], final)


def test_recurrent_specs_keep_batch_and_time_free():
    for name in ("rnn", "birnn", "lstm", "gru"):
        net = gn.load(SPECS / f"{name}.yaml")
        assert net.inputs == {"x": ("B", "T", 128)}
        assert net.outputs["y"][:2] == ("B", "T")


class TorchSeq2Seq(nn.Module):
    """RNNsearch as the notes write it, step by step in plain torch: a bidirectional GRU encoder,
    e_tj = v^T tanh(W s_{t-1} + U h_j), alpha = softmax_j, c_t = sum_j alpha_tj h_j,
    s_t = GRUCell([emb(y_{t-1}); c_t], s_{t-1}), log_softmax(W_out [s_t; c_t] + b_out). Its modules
    are laid out as the spec's header says, so the spec's weights load into it by name."""

    def __init__(self, src_vocab=4000, tgt_vocab=4000, embed=128, hidden=256, attn=256):
        super().__init__()
        self.src_embedding = nn.Embedding(src_vocab, embed)
        self.tgt_embedding = nn.Embedding(tgt_vocab, embed)
        self.encoder = nn.GRU(embed, hidden, bidirectional=True, batch_first=True)
        self.keys = nn.Linear(2 * hidden, attn, bias=False)        # U
        self.init = nn.Linear(hidden, hidden)                      # s_0 = tanh(W_init h_1^backward + b)
        self.decoder = nn.Module()
        self.decoder.attention = nn.Module()
        self.decoder.attention.query_proj = nn.Linear(hidden, attn, bias=False)   # W
        self.decoder.attention.v = nn.Linear(attn, 1, bias=False)
        self.decoder.cell = nn.GRUCell(embed + 2 * hidden, hidden)
        self.out_proj = nn.Linear(hidden + 2 * hidden, tgt_vocab)

    def forward(self, src, tgt_in):
        memory, h_n = self.encoder(self.src_embedding(src))        # [B, S, 2H], [2, B, H]
        keys = self.keys(memory)
        s = torch.tanh(self.init(h_n[1]))
        outs, weights = [], []
        attention, cell = self.decoder.attention, self.decoder.cell
        for t in range(tgt_in.shape[1]):
            scores = attention.v(torch.tanh(attention.query_proj(s)[:, None] + keys))[..., 0]     # [B, S]
            alpha = torch.softmax(scores, dim=-1)
            context = (alpha[..., None] * memory).sum(1)
            s = cell(torch.cat([self.tgt_embedding(tgt_in[:, t]), context], -1), s)
            outs.append(torch.cat([s, context], -1))
            weights.append(alpha)
        return torch.log_softmax(self.out_proj(torch.stack(outs, 1)), -1), torch.stack(weights, 1)


def test_seq2seq_attention_param_count_derivation():
    net = gn.load(SPECS / "seq2seq_attention.yaml")
    V, E, H, A = 4000, 128, 256, 256
    embeddings = 2 * V * E
    encoder = 2 * (3 * H * (E + H) + 6 * H)              # torch.nn.GRU(E, H, bidirectional=True)
    keys, init = A * 2 * H, H * H + H                   # U (no bias); W_init, b_init
    attention = A * H + A                               # W (no bias), v
    decoder = 3 * H * (E + 2 * H) + 3 * H * H + 6 * H   # torch.nn.GRUCell(E + 2H, H)
    output = (H + 2 * H) * V + V
    total = embeddings + encoder + keys + init + attention + decoder + output
    assert total == 5_645_216 == net.graph.param_count() == _numel(TorchSeq2Seq())


def test_seq2seq_attention_equals_step_by_step_torch():
    net = gn.load(SPECS / "seq2seq_attention.yaml")
    w = net.init_weights(seed=4)
    module = _load(TorchSeq2Seq(), w)
    rng = np.random.default_rng(5)
    for B, S, T in ((2, 7, 5), (1, 3, 1)):
        src = rng.integers(0, 4000, (B, S)).astype(np.int64)
        tgt_in = rng.integers(0, 4000, (B, T)).astype(np.int64)
        ours = net.run({"src": src, "tgt_in": tgt_in}, w)
        with torch.no_grad():
            log_probs, weights = module(torch.from_numpy(src), torch.from_numpy(tgt_in))
        assert ours["log_probs"].shape == (B, T, 4000) and ours["attention"].shape == (B, T, S)
        _close(ours["log_probs"], log_probs)
        _close(ours["attention"], weights)
        np.testing.assert_allclose(ours["attention"].sum(-1), 1.0, rtol=1e-5)


def test_seq2seq_decoder_carries_the_memory_unchanged():
    # The decoder scan carries the encoder memory and keys as state that its block returns as is,
    # so every step attends over all S positions: the MACs have a B*S*T term, the attention's
    # v (attn) and context sum (2 * hidden) per source position and step.
    net = gn.load(SPECS / "seq2seq_attention.yaml")
    scan = next(n for n in net.graph.nodes if n.name == "decoder")
    assert scan.op.carried == ("s", "memory", "keys") and scan.op.sequences == ("y",)
    assert scan.op.stacked == ("out", "weights")
    body = scan.op.body
    assert body.outputs["memory"] == "decoder/memory" and body.outputs["keys"] == "decoder/keys"
    B, S, T = Dim("B"), Dim("S"), Dim("T")
    encoder = 2 * 3 * 256 * (128 + 256) + 256 * 512             # both GRU directions and U, per position
    decoder = 256 * 256 + 3 * 256 * (128 + 512 + 256) + 768 * 4000   # W, GRUCell, output layer per step
    assert net.graph.total_macs() == (256 + 512) * B * S * T + encoder * B * S + decoder * B * T + 256 * 256 * B
