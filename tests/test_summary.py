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


# -- shares, input shapes, peak memory, named sizes (issue 14, point 9) ----------------------------

def test_shares_add_up_and_do_not_depend_on_the_batch():
    from graphnet.summary import share
    free = gn.load(SPECS / "resnet18.yaml").graph
    bound = gn.load(SPECS / "resnet18.yaml", {"B": 5}).graph
    rows, rows5 = summary_rows(free, depth=1), summary_rows(bound, depth=1)
    total, total5 = free.total_macs(), bound.total_macs()
    assert sum(share(r["macs"], total) for r in rows) == pytest.approx(1.0)
    for r, r5 in zip(rows, rows5):       # B cancels: the bound shares, from plain ints, are the same
        assert share(r["macs"], total) == pytest.approx(r5["macs"].value / total5.value)
    text = gn.load(SPECS / "resnet18.yaml").summary(depth=1)
    assert "params %" in text and "MACs %" in text
    layer4 = next(line for line in text.splitlines() if line.startswith("layer4 "))
    assert f"{100 * 8_398_848 / 11_699_112:.1f}%" in layer4
    assert "params %" not in gn.load(SPECS / "resnet18.yaml").summary()       # the flat table has none


def test_a_share_that_depends_on_the_free_dims_is_left_out():
    from graphnet.summary import share
    t = Dim("T")
    assert share(Dim(3) * t, Dim(6) * t) == 0.5
    assert share(t * t, t * t + t) is None and share(Dim(0), t) == 0.0


def test_the_input_shape_column_shows_what_flows_in(capsys):
    from graphnet.cli import main
    assert main(["validate", str(SPECS / "resnet18.yaml"), "--depth", "1", "--input-shapes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:4] == ["node", "op", "input", "shape"]
    layer2 = next(line for line in lines if line.startswith("layer2 "))
    assert layer2.split("  ")[0:1] and "[B, 64, 56, 56]" in layer2 and "[B, 128, 28, 28]" in layer2


def test_the_peak_memory_shown_is_what_the_memory_guard_refuses_past(capsys):
    from graphnet.cli import main
    net = gn.load(SPECS / "lenet5.yaml")
    need, binding = net.peak_memory({"B": 3})
    assert binding == {"B": 3}
    assert main(["validate", str(SPECS / "lenet5.yaml")]) == 0
    assert "peak memory: " in capsys.readouterr().out
    assert main(["run", str(SPECS / "lenet5.yaml"), "--dim", "B=3", "--max-memory", str(need)]) == 0
    assert main(["run", str(SPECS / "lenet5.yaml"), "--dim", "B=3", "--max-memory", str(need - 1)]) == 1
    assert "over the memory limit" in capsys.readouterr().err


def test_free_spatial_dims_get_named_sizes_that_evaluate_to_the_bound_counts(tmp_path):
    from graphnet.summary import SizeNames
    text = (SPECS / "resnet18.yaml").read_text().replace("H: 224, W: 224", "H: ~, W: ~")
    assert "H: ~, W: ~" in text
    spec = tmp_path / "r18.yaml"
    spec.write_text(text)
    graph = gn.load(spec).graph
    rows = summary_rows(graph, depth=1)
    names = SizeNames([r["dims"] for r in rows], set(graph.free_dims()))
    assert "H1" in names.names.values() and names.named(graph.total_macs()).symbols() <= \
        {"B", *names.names.values()}
    summary = gn.load(spec).summary(depth=1)
    assert "//" not in "\n".join(line for line in summary.splitlines() if not line.startswith("where "))
    assert "where H1 = (H - 1)//2 + 1, W1 = (W - 1)//2 + 1" in summary
    for h, w in ((224, 224), (97, 130), (33, 64)):
        values = {name: d.subs({"H": h, "W": w}).value for d, name in names.names.items()}
        expected = gn.load(spec, {"H": h, "W": w, "B": 2}).graph.total_macs().value   # expanded at those sizes
        assert names.named(graph.total_macs()).subs({**values, "B": 2}).value == expected
