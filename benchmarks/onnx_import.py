"""The time to import an ONNX model: torchvision's resnet50, exported by torch.onnx (the
TorchScript exporter, as benchmarks/README.md says why), read, converted and written as a spec with
its blocks recovered, then loaded as a Network. Run from the repository root:

    python -m benchmarks.onnx_import [--repeat N]

It needs the `torch` extra. The target is under 2 s for the import (docs/performance.md)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def export_resnet50(folder: Path) -> Path:
    import torch
    import torchvision
    path = folder / "resnet50.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torchvision.models.resnet50().eval(), torch.randn(1, 3, 224, 224), str(path), dynamo=False,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "B"}, "logits": {0: "B"}})
    return path


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    import graphnet as gn
    from graphnet.onnx_import import import_model
    with tempfile.TemporaryDirectory() as tmp:
        path = export_resnet50(Path(tmp))
        result = import_model(path)
        lines, size = result.text.count("\n"), path.stat().st_size
        rows = [("import (spec text, blocks)", _median(lambda: import_model(path), args.repeat)),
                ("import --flat", _median(lambda: import_model(path, flat=True), args.repeat)),
                ("import_onnx (spec loaded as a Network)", _median(lambda: gn.import_onnx(path), args.repeat))]
    print(f"resnet50: {size:,} bytes of ONNX, a spec of {lines} lines; median of {args.repeat}")
    for name, seconds in rows:
        print(f"  {name:40s} {seconds:7.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
