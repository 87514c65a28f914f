"""Value bounds (graphnet/bounds.py): what each op's rule claims of its output's values holds for the
values onnxruntime computes (exact bounds are the true minimum and maximum), a gather they prove
past its table is refused at load, and one they only may take past it is not."""

import textwrap

import numpy as np
import onnxruntime as ort
import pytest

import graphnet as gn
from graphnet.bounds import value_bounds

BOUNDED = """\
graphnet: 1
name: bounded
dims: {B: ~, T: 6}
inputs:
  x: [B, T]
nodes:
  - {name: up, op: range, attrs: {start: 2, limit: 11, delta: 3}}
  - {name: down, op: range, attrs: {start: 10, limit: 2, delta: -3}}
  - {name: positions, op: range, attrs: {limit: T}}
  - {name: table, op: constant, attrs: {value: [[3, -1], [4, 0]], dtype: int64}}
  - {name: five, op: constant, attrs: {value: 5, dtype: int64}}
  - {name: minus_two, op: constant, attrs: {value: -2, dtype: int64}}
  - {name: shifted, op: add, inputs: [up, five]}
  - {name: scaled, op: mul, inputs: [up, minus_two]}
  - {name: flipped, op: sub, inputs: [five, down]}
  - {name: narrow, op: cast, inputs: [positions], attrs: {to: int32}}
  - {name: as_float, op: cast, inputs: [positions], attrs: {to: float32}}
  - {name: flat, op: reshape, inputs: [table], attrs: {shape: [4]}}
  - {name: both, op: concat, inputs: [up, down], attrs: {axis: 0}}
  - {name: part, op: slice, inputs: [positions], attrs: {starts: [1], ends: [3]}}
  - {name: pairs, op: add, inputs: [up, down]}
  - {name: column, op: unsqueeze, inputs: [positions], attrs: {axes: [1]}}
  - {name: wide, op: expand, inputs: [column], attrs: {shape: [6, 3]}}
  - {name: turned, op: transpose, inputs: [wide]}
  - {name: picked, op: gather, inputs: [both, part]}
  - {name: y, op: add, inputs: [x, as_float]}
outputs: {y: y, up: up, down: down, table: table, shifted: shifted, scaled: scaled, flipped: flipped,
          narrow: narrow, flat: flat, both: both, part: part, pairs: pairs, turned: turned, picked: picked}
"""


def _load(tmp_path, text: str) -> gn.Network:
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(text))
    return gn.load(spec)


def _onnxruntime(net, inputs) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(net.to_onnx().SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))


def test_bounds_hold_for_the_values_onnxruntime_computes(tmp_path):
    net = _load(tmp_path, BOUNDED)
    bounds = value_bounds(net.graph)
    got = _onnxruntime(net, {"x": np.zeros((2, 6), np.float32)})
    checked = [name for name in got if name != "y"]
    assert set(checked) <= {name for name, t in net.graph.outputs.items() if t in bounds}
    for name in checked:
        b, value = bounds[net.graph.outputs[name]], got[name]
        assert b.lo <= value.min() and value.max() <= b.hi, name
        if b.exact:
            assert (b.lo, b.hi) == (value.min(), value.max()), name
    # exact only where both ends are surely there: a slice or a gather may drop them, and up + down
    # holds 12, 12, 12 while its bounds run from 2 + 4 = 6 to 8 + 10 = 18
    loose = {name for name in checked if not bounds[net.graph.outputs[name]].exact}
    assert loose == {"part", "pairs", "picked"}
    assert (bounds[net.graph.outputs["pairs"]].lo, bounds[net.graph.outputs["pairs"]].hi) == (6, 18)


def test_a_gather_the_bounds_only_may_take_past_its_table_runs(tmp_path):
    # positions - positions is 0 everywhere; its bounds, -5 to 5, reach past a 2-row table but are
    # not exact, so nothing is refused and the run agrees with onnxruntime
    net = _load(tmp_path, """\
        graphnet: 1
        name: loose
        dims: {B: ~, T: 6}
        inputs:
          x: [B, T, 3]
        params:
          table: {shape: [2, 3], init: {normal: {std: 1.0}}}
        nodes:
          - {name: positions, op: range, attrs: {limit: T}}
          - {name: zero, op: sub, inputs: [positions, positions]}
          - {name: lookup, op: gather, inputs: [table, zero]}
          - {name: y, op: add, inputs: [x, lookup]}
        outputs: {y: y}
        """)
    b = value_bounds(net.graph)["zero"]
    assert (b.lo, b.hi, b.exact) == (-5, 5, False)
    x = np.zeros((1, 6, 3), np.float32)
    np.testing.assert_allclose(net.run({"x": x})["y"], _onnxruntime(net, {"x": x})["y"], rtol=1e-6)


@pytest.mark.parametrize("dims, refused", [({"T": 4}, None), ({"T": 5}, 4), ({"T": 300}, 299)])
def test_a_bound_dim_past_the_table_is_refused_at_load(tmp_path, dims, refused):
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent("""\
        graphnet: 1
        name: positions
        dims: {B: ~, T: ~}
        inputs:
          x: [B, T, 3]
        params:
          table: {shape: [4, 3], init: zeros}
        nodes:
          - {name: positions, op: range, attrs: {limit: T}}
          - {name: narrow, op: cast, inputs: [positions], attrs: {to: int32}}
          - {name: lookup, op: gather, inputs: [table, narrow]}
          - {name: y, op: add, inputs: [x, lookup]}
        outputs: {y: y}
        """))
    if refused is None:
        gn.load(spec, dims)
        return
    with pytest.raises(gn.SpecError) as e:
        gn.load(spec, dims)
    assert e.value.render() == (f"{spec}:11:5: error: node 'lookup' (gather): indices reach {refused} (they run "
                                f"from 0 to {refused}), out of range for the 4 entries of data along axis 0 "
                                "(valid: -4 to 3)")
    # free, T is known only at run time: the session refuses the binding before it runs
    net = gn.load(spec)
    with pytest.raises(gn.SpecError, match=f"indices reach {refused} "):
        net.run({"x": np.zeros((1, dims["T"], 3), np.float32)})
