"""The summary: exact totals, and with --depth a one-screen table for every spec in the zoo."""

from pathlib import Path

import pytest

import graphnet as gn
from graphnet.dims import Dim
from graphnet.summary import summary_rows

SPECS = Path(__file__).resolve().parent.parent / "specs"
SCREEN_ROWS = 40


@pytest.mark.parametrize("name", sorted(p.stem for p in SPECS.glob("*.yaml")))
def test_every_spec_summarizes_on_one_screen(name):
    graph = gn.load(SPECS / f"{name}.yaml").graph
    rows = summary_rows(graph, depth=1)
    assert len(rows) <= SCREEN_ROWS
    assert sum(r["params"] for r in rows) == graph.param_count()
    assert sum((r["macs"] for r in rows), start=graph.total_macs() * 0) == graph.total_macs()
    assert len(gn.load(SPECS / f"{name}.yaml").summary(depth=1).splitlines()) <= SCREEN_ROWS + 6


def test_collapsed_rows_name_the_block_and_its_last_shape():
    rows = summary_rows(gn.load(SPECS / "resnet18.yaml").graph, depth=1)
    layer2 = next(r for r in rows if r["path"] == "layer2")
    assert layer2["op"] == "std.basic_block x2" and layer2["shape"] == "[B, 128, 28, 28]"
    # two BasicBlocks: 3x3 convs 64->128, 128->128 (x3), BN, and the 1x1 downsample with its BN
    assert layer2["params"] == 9 * (64 * 128 + 3 * 128 * 128) + 64 * 128 + 5 * 4 * 128
    assert [r["op"] for r in rows[:4]] == ["std.conv2d", "std.batch_norm", "relu", "max_pool"]
    deeper = summary_rows(gn.load(SPECS / "resnet18.yaml").graph, depth=2)
    copies = [(r["path"], r["level"], r["op"]) for r in deeper if r["path"].startswith("layer2")]
    assert copies == [("layer2", 0, "std.basic_block x2"), ("layer2.0", 1, "std.basic_block"),
                      ("layer2.1", 1, "std.basic_block")]


def test_activation_memory_is_a_formula_in_the_free_dims():
    graph = gn.load(SPECS / "mlp.yaml").graph
    rows = summary_rows(graph)
    # float32 outputs on the input: fc1's matmul [B, 1024]; a weight's transpose depends on no input,
    # so it is a derived weight, not activation memory
    assert rows[1]["path"] == "fc1.matmul" and rows[1]["bytes"] == 4 * 1024 * Dim("B")
    assert rows[0]["path"] == "fc1.weight_t" and rows[0]["bytes"] == 0
    total = sum((r["bytes"] for r in rows), Dim(0))
    assert total == 4 * Dim("B") * (2 * 1024 + 1024 + 2 * 1024 + 1024 + 2 * 10)
