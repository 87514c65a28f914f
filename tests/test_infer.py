"""Whole-graph inference reproduces the types expansion assigned, and names a broken node."""

import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.graph import Node
from graphnet.infer import infer_types
from graphnet.ops import ShapeError
from graphnet.ops.shape import Reshape

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.mark.parametrize("name", sorted(p.stem for p in SPECS.glob("*.yaml")))
def test_reinference_matches_expansion(name):
    graph = gn.load(SPECS / f"{name}.yaml").graph
    assert infer_types(graph) == graph.types


def test_a_broken_node_is_named():
    graph = gn.load(SPECS / "mlp.yaml").graph
    bad = graph.nodes[4]
    graph.nodes[4] = Node(bad.name, Reshape(shape=[3, 7]), bad.inputs, bad.outputs, bad.trace)
    with pytest.raises(ShapeError, match=r"node 'fc2.weight_t' \(reshape\): cannot reshape \[1024, 1024\]"):
        infer_types(graph)


def test_sizes_a_binding_gives_are_checked_by_the_shape_rules(tmp_path):
    # Valid for every T the symbols allow, but T = 8 leaves (8 - 1)//4 + 1 = 2 cells after the
    # stride-4 conv, where a 4-wide pool does not fit: refused at the pool's line, with the binding
    # and the sizes, on a run (API and command line) as validate --dim T=8 refuses it.
    import subprocess
    import sys
    spec = tmp_path / "wave.yaml"
    spec.write_text(textwrap.dedent("""\
        graphnet: 1
        name: wave
        dims: {B: ~, T: ~}
        inputs: {x: [B, 1, T]}
        params:
          w: {shape: [4, 1, 9], init: ones}
        nodes:
          - {name: conv, op: conv, inputs: [x, w], attrs: {strides: 4, pads: 4}}
          - {name: pool, op: max_pool, attrs: {kernel: 4}}
        outputs: {y: pool}
        """))
    net = gn.load(spec)
    ok = net.run({"x": np.ones((1, 1, 16), np.float32)})["y"]
    assert ok.shape == (1, 4, 1)
    with pytest.raises(gn.SpecError) as info:
        net.run({"x": np.ones((1, 1, 8), np.float32)})
    d = info.value.diagnostics[0]
    assert (d.loc.line, d.loc.col) == (9, 5)
    assert d.message == ("node 'pool' (max_pool): with B = 1, T = 8: window of 4 does not fit spatial dim 2 "
                         "(padded to 2) (inputs: float32[1, 4, 2])")
    np.savez(tmp_path / "x.npz", x=np.ones((1, 1, 8), np.float32))
    for extra in ([], ["--backend", "onnxruntime"]):
        r = subprocess.run([sys.executable, "-m", "graphnet", "run", str(spec), "--inputs", str(tmp_path / "x.npz"),
                            *extra], capture_output=True, text=True)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.startswith(f"{spec}:9:5: error: node 'pool' (max_pool): with B = 1, T = 8: window of 4")
