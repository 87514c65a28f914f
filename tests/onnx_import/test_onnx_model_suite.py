"""The small real models the onnx wheel ships with stored data (pytorch-converted and
pytorch-operator: PyTorch modules exported by torch, most at opset 6, brought up by onnx's
version converter) through import + the NumPy back end, for every model whose ops graphnet
imports: each gives the outputs stored beside it."""

from __future__ import annotations

from model_suite import model_cases, run_model_case


def test_every_importable_shipped_model_gives_its_stored_outputs():
    cases = model_cases()
    failures = {f"{c.parent.name}/{c.name}": r for c in cases if (r := run_model_case(c)) is not None}
    print(f"\nONNX shipped models: {len(cases) - len(failures)} of {len(cases)} importable ones pass")
    assert failures == {}
    assert len(cases) >= 100
