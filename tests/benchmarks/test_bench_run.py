"""A smoke check of the benchmark harness (benchmarks/run.py) on the MLP: it runs every engine,
writes every row and ratio to the JSON, and its memory estimate adds up. No speed is asserted."""

import json

import numpy as np

import graphnet as gn
from benchmarks.engines import ENGINES
from benchmarks.memory import live_memory_estimate
from benchmarks.run import main
from benchmarks.suite import SPECS, TARGETS, Case


def test_quick_run_writes_every_engine_row_and_ratio(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--quick", "--models", "mlp", "--dim", "B=4", "--repeat", "2", "--memory-engines", "graphnet",
                 "--validate", "mlp", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    [case] = result["cases"]
    assert case["label"] == "mlp B=4" and case["macs"] == 4 * 1_861_632
    rows = {r["engine"]: r for r in case["rows"]}
    assert list(rows) == [e.key for e in ENGINES]
    for key, row in rows.items():
        if row["status"] == "skipped":           # the torch engines, where PyTorch is not installed
            assert key in ("torch", "ort-torch") and "PyTorch" in row["reason"]
            continue
        assert row["status"] == "ok", row
        assert row["runs"] == (1 if key == "onnx-reference" else 2) and row["median_s"] > 0
        assert row["ratio_vs_graphnet"] > 0 and row["gflops"] > 0 and 0 < row["peak_fraction"]
        assert row["max_abs_diff"] < 1e-4
    assert rows["graphnet"]["ratio_vs_graphnet"] == 1.0
    assert rows["graphnet"]["memory"]["delta"] >= 0 and case["memory_check"]["ratio"] > 0
    time_targets = [t for t in result["targets"] if t["kind"] == "time"]
    assert len(time_targets) == sum(t.kind == "time" and t.applies(Case("mlp")) for t in TARGETS) == 4
    assert all(t["result"] in ("pass", "miss", "n/a") for t in result["targets"])
    assert result["canary"]["peak_gflops"] > 0 and len(result["canary"]["readings"]) == 3
    [validate] = result["validate"]
    assert validate["spec"] == "mlp" and validate["in_process_s"] > 0 and validate["cli_s"] > 0
    table = capsys.readouterr().out
    assert "vs graphnet" in table and "onnxruntime (graphnet's ONNX)" in table and "targets:" in table


def test_memory_estimate_of_the_mlp():
    # x [B, 784] is held; a linear's matmul and bias add are both alive at the add; the weight
    # transposes are views of the params and add nothing.
    graph = gn.load(SPECS / "mlp.yaml").graph
    est = live_memory_estimate(graph, {"B": 4})
    assert est["weights"] == 4 * graph.param_count()
    assert est["inputs"] == 4 * 784 * 4
    assert est["live_peak"] == est["inputs"] + 2 * 4 * 1024 * 4 and est["live_peak_at"] == "fc1.add"
    assert est["total"] == est["weights"] + est["live_peak"]
    assert np.isclose(est["total"] / 2**20, 7.15, atol=0.01)


def test_contention_mode_times_beside_a_competitor_and_stops_it(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["--quick", "--models", "mlp", "--dim", "B=4", "--repeat", "2", "--engines", "graphnet,ort",
                 "--memory-engines", "none", "--validate", "none", "--contention", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {r["engine"]: r for r in result["cases"][0]["rows"]}
    for row in rows.values():
        assert row["contended"]["runs"] == 2 and row["slowdown"] == row["contended"]["median_s"] / row["median_s"]
    [target] = [t for t in result["targets"] if t["kind"] == "slowdown"]
    assert target["value"] == rows["graphnet"]["slowdown"] / rows["ort"]["slowdown"]


def test_the_competitor_is_busy_and_gone_after():
    import time

    from benchmarks.contention import competitor
    with competitor() as proc:
        start = time.process_time()
        time.sleep(0.3)
        assert proc.poll() is None
        with open(f"/proc/{proc.pid}/stat") as f:
            ticks = sum(int(v) for v in f.read().rsplit(")", 1)[1].split()[11:13])
        assert ticks > 0 and time.process_time() - start < 0.1     # it, not this process, is working
    assert proc.poll() is not None
