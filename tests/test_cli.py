"""The command line: reports, outputs, and the same seed giving the same weights everywhere."""

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import graphnet as gn

from graphnet.cli import main

SPECS = Path(__file__).resolve().parent.parent / "specs"
MLP = str(SPECS / "mlp.yaml")


def test_validate_prints_the_summary_table(capsys):
    assert main(["validate", str(SPECS / "resnet18.yaml")]) == 0
    out = capsys.readouterr().out
    assert "layer4.1.conv2.conv" in out and "[B, 512, 7, 7]" in out
    assert "params: 11,699,112 (11,689,512 trainable, 9,600 non-trainable)" in out


def _network(out: str) -> dict:
    report = json.loads(out)
    assert report["version"] == 1 and len(report["specs"]) == 1
    return report["specs"][0]["network"]


def test_validate_json_report(capsys):
    assert main(["validate", MLP, "--json", "--dim", "B=4"]) == 0
    report = _network(capsys.readouterr().out)
    assert report["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["4", "784"], "sizes": [4, 784]}]
    assert report["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["4", "10"], "sizes": [4, 10]}]
    assert report["macs"] == 4 * (784 * 1024 + 1024 * 1024 + 1024 * 10)
    # a param is counted on the first node that reads it: the linear's weight transpose
    first, second = report["nodes"][:2]
    assert {k: first[k] for k in ("path", "op", "shape", "sizes", "input_shape", "level", "params", "macs", "bytes")} \
        == {"path": "fc1.weight_t", "op": "transpose", "shape": ["784", "1024"], "sizes": [784, 1024],
            "input_shape": None, "level": 0, "params": 784 * 1024, "macs": 0, "bytes": 0}
    assert {k: second[k] for k in ("path", "op", "shape", "input_shape", "params", "macs", "macs_formula", "bytes")} \
        == {"path": "fc1.matmul", "op": "matmul", "shape": ["4", "1024"], "input_shape": ["4", "784"],
            "params": 0, "macs": 4 * 784 * 1024, "macs_formula": str(4 * 784 * 1024), "bytes": 4 * 4 * 1024}


def test_validate_json_depth_collapses_blocks(capsys):
    assert main(["validate", MLP, "--json", "--depth", "1"]) == 0
    nodes = _network(capsys.readouterr().out)["nodes"]
    assert [(n["path"], n["op"]) for n in nodes] == [("fc1", "std.linear"), ("relu1", "relu"), ("fc2", "std.linear"),
                                                     ("relu2", "relu"), ("fc3", "std.linear")]
    assert nodes[0]["params"] == 784 * 1024 + 1024 and nodes[0]["macs"] is None
    assert nodes[0]["macs_formula"] == "802816*B" and nodes[0]["macs_share"] == 802816 / 1861632


def test_validate_json_keeps_free_dims_as_formulas(capsys):
    assert main(["validate", str(SPECS / "transformer_encoder.yaml"), "--json"]) == 0
    report = _network(capsys.readouterr().out)
    assert report["inputs"][0]["shape"] == ["B", "T", "512"] and report["inputs"][0]["sizes"] == [None, None, 512]
    assert report["macs"] is None and report["macs_formula"] == "18874368*B*T + 6144*B*T^2"


def test_validate_many_specs_reports_all(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("graphnet: 1\nname: bad\ninputs: {x: [2]}\nnodes: [{op: rleu}]\noutputs: {y: '0'}\n")
    assert main(["validate", MLP, str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{MLP}: ok" in captured.out
    assert captured.err.startswith(f"{bad}:4:14: error: unknown op 'rleu'; did you mean 'relu'?")


def test_same_seed_same_weights_in_every_command(tmp_path, capsys):
    weights, onnx_path, out = tmp_path / "w.npz", tmp_path / "m.onnx", tmp_path / "out.npz"
    inputs = tmp_path / "in.npz"
    x = np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32)
    np.savez(inputs, x=x)
    assert main(["init-weights", MLP, "-o", str(weights), "--seed", "7"]) == 0
    assert main(["export", MLP, "-o", str(onnx_path), "--seed", "7"]) == 0
    assert main(["run", MLP, "--inputs", str(inputs), "--seed", "7", "-o", str(out)]) == 0
    w = np.load(weights)
    model = onnx.load(str(onnx_path))
    stored = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    for name in w.files:   # as it is, or stored transposed where the graph reads it transposed
        assert any(np.array_equal(w[name], a) or np.array_equal(w[name].T, a) for a in stored), name
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(np.load(out)["logits"], session.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)
    assert main(["run", MLP, "--inputs", str(inputs), "--weights", str(weights), "--backend", "onnxruntime"]) == 0


def test_cuda_without_provider_is_a_clear_error(capsys):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        return  # this machine can run it; the message is for machines that cannot
    assert main(["run", MLP, "--backend", "onnxruntime", "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert "onnxruntime has no CUDA provider here; install onnxruntime-gpu" in err


def test_failed_export_leaves_the_old_file(tmp_path, capsys):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    bad = tmp_path / "w.npz"
    np.savez(bad, nothing=np.zeros(1))
    assert main(["export", MLP, "-o", str(target), "--weights", str(bad)]) == 1
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_command_line_exits_1(capsys):
    assert _exit_code(["validate"]) == 1
    assert main(["validate", MLP, "--dim", "B"]) == 1
    assert "--dim takes NAME=VALUE, got 'B'" in capsys.readouterr().err


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_a_closed_pipe_ends_quietly():
    import subprocess
    import sys
    script = ("import sys; from graphnet.cli import main; "
              f"sys.exit(main(['validate', {str(SPECS / 'vgg16.yaml')!r}, {MLP!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()                       # like `| head -1`
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "error" not in err


def test_validate_a_folder_reports_every_spec(tmp_path, capsys):
    (tmp_path / "good.yaml").write_text((SPECS / "mlp.yaml").read_text())
    (tmp_path / "bad.yaml").write_text("graphnet: 1\nname: bad\ninputs: {x: [2]}\nnodes: [{op: rleu}]\noutputs: {y: '0'}\n")
    (tmp_path / "notes.txt").write_text("not a spec")
    assert main(["validate", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert f"{tmp_path / 'good.yaml'}: ok" in captured.out
    assert captured.err.startswith(f"{tmp_path / 'bad.yaml'}:4:14: error: unknown op 'rleu'")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["validate", str(empty)]) == 1
    assert f"{empty}:1:1: error: no .yaml files in this folder" in capsys.readouterr().err


def test_the_whole_zoo_validates_as_a_folder(capsys):
    assert main(["validate", str(SPECS), "--depth", "1"]) == 0
    assert capsys.readouterr().out.count(": ok") == len(list(SPECS.glob("*.yaml")))


def test_a_run_over_the_memory_limit_is_refused_before_allocating(capsys, tmp_path):
    # B = 10^6 images would need about 11 TiB; refused from types alone, in well under the time
    # making the random inputs would take
    code = main(["run", str(SPECS / "resnet18.yaml"), "--dim", "B=1000000"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"{SPECS / 'resnet18.yaml'}:14:10: error: running 'resnet18' on image[1000000, 3, 224, 224] "
                          "needs about ")
    assert "TiB beyond its weights, over the memory limit of" in err
    # a limit of one's own, in either back end; 'none' lifts it
    for backend in ("numpy", "onnxruntime"):
        assert main(["run", str(SPECS / "mlp.yaml"), "--dim", "B=64", "--max-memory", "100K", "--backend", backend]) == 1
        assert "over the memory limit of 100.0 KiB" in capsys.readouterr().err
    assert main(["run", str(SPECS / "mlp.yaml"), "--dim", "B=64", "--max-memory", "none"]) == 0
    assert _exit_code(["run", str(SPECS / "mlp.yaml"), "--max-memory", "lots"]) == 1
    assert "'lots' is not a size like 8G, 512M or none" in capsys.readouterr().err


SIX_WAY_EINSUM = """\
graphnet: 1
name: ein
inputs: {a: [200], b: [200], c: [200], d: [200], e: [200], f: [200]}
nodes:
  - {op: einsum, name: s, attrs: {equation: "i,j,k,l,m,n->"}, inputs: [a, b, c, d, e, f]}
outputs: {s: s}
"""


CONV_FLOAT64 = """\
graphnet: 1
name: c64
inputs: {x: {shape: [1, 2, 5], dtype: float64}}
params:
  w: {shape: [3, 2, 3], dtype: float64, init: ones}
nodes:
  - {op: conv, name: c, inputs: [x, w]}
outputs: {y: c}
"""


def test_an_op_onnxruntime_has_no_kernel_for_is_located_at_its_node(tmp_path, capsys):
    # valid ONNX, and NumPy runs it; onnxruntime has no float64 Conv and refused it with a traceback
    spec = tmp_path / "c64.yaml"
    spec.write_text(CONV_FLOAT64)
    assert main(["run", str(spec)]) == 0
    capsys.readouterr()
    assert main(["run", str(spec), "--backend", "onnxruntime"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:7:5: error: node 'c' (conv): onnxruntime: ") and "Traceback" not in err
    assert "NOT_IMPLEMENTED" in err and "(inputs: float64[1, 2, 5], float64[3, 2, 3])" in err


def test_a_numpy_run_over_the_compute_limit_is_refused_not_run_for_hours(capsys, tmp_path):
    # 200^6 = 64 T multiply-accumulates: the NumPy back end's einsum would loop over all of them
    spec = tmp_path / "ein.yaml"
    spec.write_text(SIX_WAY_EINSUM)
    assert main(["run", str(spec)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:3:13: error: running 'ein' on a[200], ") and "Traceback" not in err
    assert "takes about 64.00T multiply-accumulates, over the compute limit of 10.00T (--max-compute" in err
    # onnxruntime contracts it in well under a second, so it is not refused there
    assert main(["run", str(spec), "--backend", "onnxruntime"]) == 0
    # a limit of one's own; 'none' lifts it
    assert main(["run", MLP, "--dim", "B=64", "--max-compute", "1M"]) == 1
    assert "over the compute limit of 1.00M" in capsys.readouterr().err
    assert main(["run", MLP, "--dim", "B=64", "--max-compute", "none"]) == 0
    assert _exit_code(["run", MLP, "--max-compute", "lots"]) == 1
    assert "'lots' is not a count like 10T, 500G or none" in capsys.readouterr().err


def test_no_optimize_gives_the_same_outputs_and_profile_names_the_ops(capsys, tmp_path):
    spec = str(SPECS / "resnet18.yaml")
    dims = ["--dim", "B=1", "--dim", "H=32", "--dim", "W=32"]
    assert main(["run", spec, *dims, "-o", str(tmp_path / "a.npz"), "--profile"]) == 0
    out = capsys.readouterr().out
    # batch_norm is folded into the convolutions by default, so it takes no time of its own
    assert "profile:" in out and "\n  conv " in out and "batch_norm" not in out
    assert main(["run", spec, *dims, "-o", str(tmp_path / "b.npz"), "--no-optimize", "--profile"]) == 0
    assert "\n  batch_norm " in capsys.readouterr().out
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    np.testing.assert_allclose(a["logits"], b["logits"], rtol=1e-5, atol=1e-6)


def _modules_after_validate(spec: Path) -> set[str]:
    """The modules a fresh process has imported after `graphnet validate SPEC`."""
    import subprocess
    import sys
    code = ("import sys; from graphnet.cli import main; main(['validate', sys.argv[1]]); "
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.strip().split("\n")[-1].split())


def test_validate_imports_neither_onnx_nor_onnxruntime():
    assert {m for m in _modules_after_validate(SPECS / "resnet50.yaml") if m.split(".")[0] in ("onnx", "onnxruntime")} == set()


def test_validate_imports_only_the_op_modules_its_spec_uses():
    # bert_base has no conv, pool, scan or recurrent op, and validate loads no weights and trains nothing
    loaded = _modules_after_validate(SPECS / "bert_base.yaml")
    assert {"graphnet.ops.linalg", "graphnet.ops.softmax", "graphnet.ops.norm"} <= loaded
    unused = {"graphnet.ops.conv", "graphnet.ops.pool", "graphnet.ops.scan", "graphnet.ops.recurrent",
              "graphnet.ops.resize", "graphnet.weights", "graphnet.transforms.train_mode"}
    assert loaded & unused == set()


# -- run-time failures, located at the node -------------------------------------------------------

EMBED = """\
graphnet: 1
name: embed
use: [std]
dims: {B: ~, T: ~, vocab: 10, positions: 8, d: 4}
inputs:
  ids: {shape: [B, T], dtype: int64}
nodes:
  - {name: words, block: std.embedding, args: {num: vocab, dim: d}, inputs: [ids]}
  - {name: position_ids, op: range, attrs: {limit: T}}
  - {name: places, block: std.embedding, args: {num: positions, dim: d}, inputs: [position_ids]}
  - {name: sum, op: add, inputs: [words, places]}
outputs: {y: sum}
"""
# the note points into std's embedding block, at its gather's line
_STD_LINE = next(i for i, line in enumerate((Path(gn.__file__).parent / "std" / "transformer.yaml").read_text()
                                             .splitlines(), 1) if "{name: lookup, op: gather" in line)
LOOKUP = f"<std>/transformer.yaml:{_STD_LINE}:9: note: in block 'std.embedding' at node '{{}}.lookup'"


def _embed(tmp_path, **arrays) -> tuple[str, list[str]]:
    spec = tmp_path / "embed.yaml"
    spec.write_text(EMBED)
    np.savez(tmp_path / "in.npz", **arrays)
    return str(spec), ["--inputs", str(tmp_path / "in.npz")]


def _one_error(capsys, argv) -> list[str]:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err and captured.out == "", captured
    lines = captured.err.splitlines()
    assert sum(": error: " in line for line in lines) == 1 and all(": note: " in line for line in lines[1:])
    return lines


@pytest.mark.parametrize("backend", ["numpy", "onnxruntime"])
def test_a_token_id_past_the_vocabulary_is_located_at_its_lookup(tmp_path, capsys, backend):
    spec, inputs = _embed(tmp_path, ids=np.array([[1, 2, 10]]))
    lines = _one_error(capsys, ["run", spec, *inputs, "--backend", backend])
    where = f"{spec}:8:5: error: node 'words.lookup' (gather): "
    if backend == "numpy":
        assert lines[0] == where + ("indices[0, 2] is 10, out of range for the 10 entries of data along axis 0 "
                                    "(valid: -10 to 9)")
    else:   # onnxruntime's own words, at the node its ONNX node was lowered from, with the input types
        assert lines[0].startswith(where + "onnxruntime: ")
        assert "idx=10" in lines[0] and "[-10,9]" in lines[0] and "(inputs: float32[10, 4], int64[1, 3])" in lines[0]
    assert lines[1:] == [LOOKUP.format("words")]


@pytest.mark.parametrize("backend", ["numpy", "onnxruntime"])
def test_inputs_longer_than_the_position_table_are_refused_before_running(tmp_path, capsys, backend):
    # T = 9 is bound by the inputs at run time; range(T) then surely reaches past the 8 positions
    spec, inputs = _embed(tmp_path, ids=np.ones((2, 9), np.int64))
    lines = _one_error(capsys, ["run", spec, *inputs, "--backend", backend])
    assert lines == [f"{spec}:10:5: error: node 'places.lookup' (gather): indices reach 8 (they run from 0 to 8), "
                     "out of range for the 8 entries of data along axis 0 (valid: -8 to 7)", LOOKUP.format("places")]
    # one shorter fits
    spec, inputs = _embed(tmp_path, ids=np.ones((2, 8), np.int64))
    assert main(["run", spec, *inputs, "--backend", backend]) == 0


def test_validate_refuses_a_dim_that_takes_a_range_past_its_table(tmp_path, capsys):
    spec, _ = _embed(tmp_path, ids=np.ones((1, 1), np.int64))
    for command in (["validate"], ["run"], ["export", "-o", str(tmp_path / "m.onnx")]):
        lines = _one_error(capsys, [*command, spec, "--dim", "T=2000"])
        assert lines[0] == (f"{spec}:10:5: error: node 'places.lookup' (gather): indices reach 1999 (they run from "
                            "0 to 1999), out of range for the 8 entries of data along axis 0 (valid: -8 to 7)")
    assert not (tmp_path / "m.onnx").exists()
    # BERT's 512 learned positions: T = 512 fits, 513 does not
    bert = str(SPECS / "bert_base.yaml")
    assert main(["validate", bert, "--dim", "T=512"]) == 0
    capsys.readouterr()
    lines = _one_error(capsys, ["validate", bert, "--dim", "T=513"])
    line = next(i for i, text in enumerate(Path(bert).read_text().splitlines(), 1)
                if "{name: position_embeddings, block: std.embedding" in text)
    assert lines[0] == (f"{bert}:{line}:9: error: node 'embeddings.position_embeddings.lookup' (gather): indices reach "
                        "512 (they run from 0 to 512), out of range for the 512 entries of data along axis 0 "
                        "(valid: -512 to 511)")


STATIC = """\
graphnet: 1
name: static
dims: {B: ~}
inputs:
  x: [B, 4]
params:
  table: {shape: [5, 4], init: zeros}
  picks: {shape: [2], dtype: int64, init: zeros}
nodes:
  - {name: chosen, op: gather, inputs: [table, picks]}
  - {name: total, op: reduce_sum, inputs: [chosen], attrs: {axes: [0], keepdims: 0}}
  - {name: y, op: add, inputs: [x, total]}
outputs: {y: y}
"""


@pytest.mark.parametrize("how", [["--backend", "numpy"], ["--backend", "numpy", "--no-optimize"],
                                 ["--backend", "onnxruntime"]])
def test_an_index_in_the_weights_past_its_table_is_located(tmp_path, capsys, how):
    # a gather of weights alone is folded before the run (or, unoptimized, run as a step; onnxruntime
    # folds it too): each way, the failure is the node's
    spec = tmp_path / "static.yaml"
    spec.write_text(STATIC)
    np.savez(tmp_path / "w.npz", table=np.zeros((5, 4), np.float32), picks=np.array([0, -6]))
    lines = _one_error(capsys, ["run", str(spec), "--weights", str(tmp_path / "w.npz"), *how])
    where = f"{spec}:10:5: error: node 'chosen' (gather): "
    if how[1] == "numpy":
        assert lines == [where + "indices[1] is -6, out of range for the 5 entries of data along axis 0 (valid: -5 to 4)"]
    else:
        assert lines[0].startswith(where + "onnxruntime: ") and "idx=-6" in lines[0] and "[-5,4]" in lines[0]


SCANNED = """\
graphnet: 1
name: scanned
dims: {B: ~, T: ~}
inputs:
  h0: [B, 3]
  tokens: {shape: [B, T], dtype: int64}
blocks:
  step:
    inputs:
      h: [B, 3]
      tok: {shape: [B], dtype: int64}
    params:
      table: {shape: [5, 3], init: zeros}
    nodes:
      - {name: emb, op: gather, inputs: [table, tok]}
      - {name: h_next, op: add, inputs: [h, emb]}
    outputs: {h: h_next, y: emb}
nodes:
  - {name: rnn, scan: step, over: [tok], inputs: {h: h0, tok: tokens}, axis: 1}
outputs: {h: rnn.h, y: rnn.y}
"""


@pytest.mark.parametrize("backend", ["numpy", "onnxruntime"])
def test_a_failure_inside_a_scan_body_is_located_at_the_body_node(tmp_path, capsys, backend):
    spec = tmp_path / "scanned.yaml"
    spec.write_text(SCANNED)
    np.savez(tmp_path / "in.npz", h0=np.zeros((2, 3), np.float32), tokens=np.array([[0, 1, 2], [3, 4, 5]]))
    lines = _one_error(capsys, ["run", str(spec), "--inputs", str(tmp_path / "in.npz"), "--backend", backend])
    where = f"{spec}:15:9: error: node 'rnn.emb' (gather): "
    if backend == "numpy":
        assert lines[0] == where + "indices[1] is 5, out of range for the 5 entries of data along axis 0 (valid: -5 to 4)"
    else:
        assert lines[0].startswith(where + "onnxruntime: ") and "idx=5" in lines[0]
    assert lines[1:] == [f"{spec}:19:5: note: from 'rnn'"]


# -- one check of the inputs, one binding ---------------------------------------------------------

@pytest.mark.parametrize("argv", [["--backend", "numpy"], ["--backend", "numpy", "--profile"],
                                  ["--backend", "onnxruntime"], ["--random"]])
def test_a_run_checks_its_inputs_and_binds_its_dims_once(tmp_path, capsys, monkeypatch, argv):
    import graphnet.network as network
    calls = Counter()

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    feed = network.Network.feed

    def counted_feed(self, inputs, source=None):
        calls["check inputs"] += not isinstance(inputs, network.Feed)   # a Feed is passed on as it is
        return feed(self, inputs, source)

    monkeypatch.setattr(network.Network, "feed", counted_feed)
    monkeypatch.setattr(network, "bind_dims", counted("bind dims", network.bind_dims))
    for name in ("check_memory", "check_bounds"):
        monkeypatch.setattr(network.Network, name, counted(name, getattr(network.Network, name)))
    monkeypatch.setattr(network, "compile_plan", counted("compile_plan", network.compile_plan))
    spec, inputs = _embed(tmp_path, ids=np.ones((2, 5), np.int64))
    assert main(["run", spec, *(inputs if argv != ["--random"] else []), *argv]) == 0
    given = argv != ["--random"]    # random inputs are made to fit the binding: nothing to check
    assert calls == Counter({"check inputs": given, "bind dims": given, "check_memory": 1, "check_bounds": 1,
                             "compile_plan": "onnxruntime" not in argv})
    out = capsys.readouterr().out
    assert ("y: float32[2, 5, 4] mean" if given else "y: float32[1, 1, 4] mean") in out
    assert ("profile:" in out) == ("--profile" in argv)


# -- outputs never destroy a file (docs/security.md, Outputs) ---------------------------------------

SMALL = ("graphnet: 1\nname: t\nuse: [lib/blocks.yaml]\ndims: {B: ~}\ninputs:\n  x: [B, 4]\n"
         "params:\n  w: {shape: [4, 3], init: {normal: {std: 0.5}}}\n"
         "nodes:\n  - {name: m, op: matmul, inputs: [x, w]}\n  - {name: r, block: blocks.act}\n"
         "outputs: {y: r}\n")
LIB = ("graphnet: 1\nname: blocks\nblocks:\n  act:\n    inputs: {x: [\"...\"]}\n    nodes:\n      - {name: r, op: relu}\n"
       "    outputs: {y: r}\n")


def _small(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "lib").mkdir()
    files = {"spec": tmp_path / "s.yaml", "lib": tmp_path / "lib" / "blocks.yaml",
             "weights": tmp_path / "w.npz", "inputs": tmp_path / "x.npz"}
    files["spec"].write_text(SMALL)
    files["lib"].write_text(LIB)
    np.savez(files["weights"], w=np.ones((4, 3), np.float32))
    np.savez(files["inputs"], x=np.ones((2, 4), np.float32))
    (tmp_path / "hard.npz").hardlink_to(files["weights"])
    (tmp_path / "soft.yaml").symlink_to(files["spec"])
    return files


# the reproducers of issue 13, and the spec's library, a hard link and a symlink
OWN_INPUTS = [
    ("run {spec} -o {spec}", "spec"), ("export {spec} --weights {weights} -o {weights}", "weights"),
    ("run {spec} --weights {weights} -o {weights}", "weights"), ("init-weights {spec} -o {spec}", "spec"),
    ("render {spec} -o {spec}", "spec"), ("run {spec} --inputs {inputs} -o {inputs}", "inputs"),
    ("run {spec} -o {lib}", "lib"), ("init-weights {spec} -o {lib}", "lib"), ("export {spec} -o {lib}", "lib"),
    ("export {spec} -o {lib} --external-data", "lib"), ("render {spec} -o {lib}", "lib"),
    ("run {spec} --weights {weights} -o {dir}/hard.npz", "weights"), ("init-weights {spec} -o {dir}/soft.yaml", "spec"),
]


@pytest.mark.parametrize("command,victim", OWN_INPUTS)
def test_no_command_overwrites_its_own_input(tmp_path, capsys, command, victim):
    files = _small(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    argv = command.format(**files, dir=tmp_path).split()
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    output = argv[argv.index("-o") + 1]
    assert err.startswith(f"{output}:1:1: error: this file is an input of the command"), err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.rglob(".*")] == []


@pytest.mark.parametrize("command", ["run {spec} -o /dev/null", "init-weights {spec} -o /dev/null",
                                     "export {spec} -o /dev/null", "render {spec} -o /dev/null"])
def test_dev_null_stays_a_device(tmp_path, capsys, command):
    files = _small(tmp_path)
    assert main(command.format(**files).split()) == 0, capsys.readouterr().err
    assert Path("/dev/null").is_char_device()


def test_an_external_data_export_onto_a_device_is_refused(tmp_path, capsys):
    files = _small(tmp_path)
    assert main(["export", str(files["spec"]), "-o", "/dev/null", "--external-data"]) == 1
    assert "/dev/null:1:1: error: a file with a separate data file must be written to a regular file" \
        in capsys.readouterr().err
    assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize("name,message", [
    ("..model.onnx", "the data file would be '..model.onnx.data', which onnx's checker takes for a path outside"),
    (b"\xff\xfe.onnx", "the model names its data file in UTF-8, and this file name is not UTF-8"),
])
def test_an_external_data_name_onnx_cannot_hold_is_refused(tmp_path, capsys, name, message):
    # both crashed: inside onnx's checker, and encoding the data file's location
    files = _small(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    target = os.path.join(os.fsencode(out), name) if isinstance(name, bytes) else str(out / name)
    given = os.fsdecode(target)
    shown = os.fsencode(target).decode("utf-8", "backslashreplace")     # \xff\xfe.onnx, printable
    assert main(["export", str(files["spec"]), "-o", given, "--external-data"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{shown}:1:1: error: with external data") and message in err, err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "init-weights", "export", "render"])
def test_a_folder_as_output_is_named(tmp_path, capsys, command):
    files = _small(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    assert main([command, str(files["spec"]), "-o", str(out)]) == 1
    assert capsys.readouterr().err.startswith(f"{out}:1:1: error: this is a folder, not a file")
    assert list(out.iterdir()) == [] and [p.name for p in tmp_path.rglob(".*")] == []


def test_names_that_are_numpy_savez_parameters_are_written(tmp_path, capsys):
    # `file` crashed np.savez(**arrays); `allow_pickle` was silently left out of the archive
    spec = tmp_path / "s.yaml"
    spec.write_text("graphnet: 1\nname: t\ninputs:\n  x: [2]\nparams:\n  file: {shape: [2], init: ones}\n"
                    "  allow_pickle: {shape: [2], init: zeros}\nnodes:\n  - {name: a, op: add, inputs: [x, file]}\n"
                    "  - {name: b, op: mul, inputs: [x, allow_pickle]}\noutputs: {file: a, allow_pickle: b}\n")
    assert main(["run", str(spec), "-o", str(tmp_path / "out.npz")]) == 0, capsys.readouterr().err
    assert main(["init-weights", str(spec), "-o", str(tmp_path / "w.npz")]) == 0, capsys.readouterr().err
    with np.load(tmp_path / "out.npz") as out, np.load(tmp_path / "w.npz") as w:
        assert sorted(out.files) == sorted(w.files) == ["allow_pickle", "file"]
        np.testing.assert_array_equal(w["file"], np.ones(2, np.float32))
        np.testing.assert_array_equal(out["allow_pickle"], np.zeros(2, np.float32))
    assert main(["run", str(spec), "--weights", str(tmp_path / "w.npz")]) == 0


def test_re_exporting_with_external_data_switches_the_pair_whole(tmp_path, capsys):
    spec, model = str(SPECS / "mlp.yaml"), tmp_path / "m.onnx"
    x = {"x": np.random.default_rng(0).standard_normal((2, 784)).astype(np.float32)}
    for seed in (1, 2, 3):
        capsys.readouterr()
        assert main(["export", spec, "-o", str(model), "--external-data", "--seed", str(seed)]) == 0
        data = next(e.value for t in onnx.load(str(model), load_external_data=False).graph.initializer
                    for e in t.external_data if e.key == "location")
        assert capsys.readouterr().out.startswith(f"wrote {model} and {tmp_path / data} ")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.onnx", data])   # the old data went
        got = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, x)[0]
        assert main(["run", spec, "--seed", str(seed), "--inputs", _npz(tmp_path.parent / f"x{seed}.npz", x),
                     "-o", str(tmp_path.parent / f"y{seed}.npz")]) == 0
        np.testing.assert_allclose(got, np.load(tmp_path.parent / f"y{seed}.npz")["logits"], rtol=1e-4, atol=1e-5)


def _npz(path: Path, arrays: dict) -> str:
    np.savez(path, **arrays)
    return str(path)


def test_sigterm_during_an_external_data_export_leaves_the_old_pair(tmp_path, capsys):
    import os
    import signal
    import subprocess
    import sys
    spec, model = str(SPECS / "mlp.yaml"), tmp_path / "m.onnx"
    assert main(["export", spec, "-o", str(model), "--external-data"]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    # in a process of its own, which signals itself while both files are staged, before the
    # switch (the checker is running): the moment is exact, and no handler would end only it
    script = ("import os, signal, sys\nfrom graphnet.backends import onnx_export\nfrom graphnet.cli import main\n"
              "onnx_export.onnx.checker.check_model = lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM)\n"
              f"sys.exit(main(['export', {spec!r}, '-o', {str(model)!r}, '--external-data', '--seed', '5']))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(SPECS.parent)})
    assert done.returncode == 128 + signal.SIGTERM and "Traceback" not in done.stderr, done.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("command", ["run", "export", "init-weights"])
def test_a_negative_seed_is_a_command_line_error(capsys, tmp_path, command):
    argv = [command, MLP, "--seed", "-1"] + ([] if command == "run" else ["-o", str(tmp_path / "out")])
    assert _exit_code(argv) == 1
    assert "a seed must be 0 or more, got -1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["validate", "run", "render"])
def test_an_empty_spec_path_is_not_the_current_folder(capsys, tmp_path, monkeypatch, command):
    monkeypatch.chdir(SPECS)            # a folder of valid specs, which '' must not stand for
    assert main([command, ""]) == 1
    assert capsys.readouterr().err.startswith("<command line>:1:1: error: the spec path is empty")


# -- conventions (issue 14, point 5) ---------------------------------------------------------------

def test_version(capsys):
    assert _exit_code(["--version"]) == 0
    assert capsys.readouterr().out == f"graphnet {gn.__version__}\n"


@pytest.mark.parametrize("argv, message", [
    (["frobnicate"], "argument command: invalid choice: 'frobnicate'"),
    (["validate"], "the following arguments are required: SPEC"),
    (["run", MLP, "--inputs", "x.npz", "--random"], "argument --random: not allowed with argument --inputs"),
    (["run", MLP, "--backend", "tf"], "argument --backend: invalid choice: 'tf'"),
    (["run", MLP, "--max-memory", "lots"], "argument --max-memory: 'lots' is not a size like 8G, 512M or none"),
])
def test_command_line_errors_have_one_format(capsys, argv, message):
    assert _exit_code(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"<command line>:1:1: error: {message}" or err[0].startswith(f"<command line>:1:1: error: {message}")
    prog = "graphnet" if argv[0] == "frobnicate" else f"graphnet {argv[0]}"
    assert err[1:] == [f"<command line>:1:1: note: '{prog} -h' lists the options"]


def test_export_needs_a_file_or_a_triton_repository(capsys):
    assert _exit_code(["export", MLP]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "<command line>:1:1: error: export needs one of -o FILE.onnx and --triton-repo DIR"]


def test_every_option_has_help_and_shows_its_default():
    from graphnet.cli import build_parser
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        text = sub.format_help()
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest}: no help"
            if action.option_strings and action.nargs != 0 and action.default not in (None, []):
                shown = sub._get_formatter()._get_help_string(action) % vars(action)
                assert "default" in shown, f"{name} {action.option_strings}: default not shown"
        assert "%(default)" not in text


@pytest.mark.parametrize("command", ["run", "export"])
def test_random_weights_are_said_in_one_line(tmp_path, capsys, command):
    out = ["-o", str(tmp_path / "m.onnx")] if command == "export" else []
    assert main([command, MLP, "--seed", "5", *out]) == 0
    note = ("<command line>:1:1: note: no --weights given: the weights are random, from the spec's init schemes "
            "with --seed 5")
    assert capsys.readouterr().err.splitlines() == [note]
    assert main(["init-weights", MLP, "-o", str(tmp_path / "w.npz")]) == 0
    capsys.readouterr()
    assert main([command, MLP, "--weights", str(tmp_path / "w.npz"), *out]) == 0
    assert capsys.readouterr().err == ""


def test_depth_0_prints_the_totals_only(capsys):
    assert main(["validate", MLP]) == 0
    full = capsys.readouterr().out.splitlines()
    assert main(["validate", MLP, "--depth", "0"]) == 0
    totals = capsys.readouterr().out.splitlines()
    assert totals == [full[0]] + [line for line in full if line.split(":")[0] in ("params", "MACs", "activations",
                                                                                "peak memory", f"{MLP}")]
    assert main(["validate", MLP, "--depth", "-1"]) == 1
    assert capsys.readouterr().err == "<command line>:1:1: error: --depth must be 0 or more, got -1\n"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_honour_the_umask_and_keep_a_replaced_files_mode(tmp_path, capsys, umask):
    import os
    import stat
    old = os.umask(umask)
    try:
        outputs = {"m.onnx": ["export", MLP, "-o"], "w.npz": ["init-weights", MLP, "-o"],
                   "y.npz": ["run", MLP, "-o"], "d.mmd": ["render", MLP, "-o"]}
        for name, argv in outputs.items():
            assert main([*argv, str(tmp_path / name)]) == 0
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name
            os.chmod(tmp_path / name, 0o640)
            assert main([*argv, str(tmp_path / name)]) == 0
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o640, name
    finally:
        os.umask(old)
