"""Training-step benchmark: time per step and peak memory of graphnet's training step (forward,
loss, backward, Adam update: one graph on the NumPy back end) against PyTorch eager doing the same
(the same network, batch, loss and optimizer, torch.optim.Adam, train mode).

    python -m benchmarks.training                  # the table
    python -m benchmarks.training --steps 5        # fewer timed steps

Each engine and case runs in a child process of its own (`--child ENGINE CASE`), which builds the
step, resets the kernel's peak-RSS mark (benchmarks/memory.py's method), takes two warm-up steps
and times `--steps` steps: the time is their median; the memory is the peak RSS growth from before
the first step (model, weights and batch resident) to the end, so it holds the optimizer state,
the activations kept for the backward pass and the gradients.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import graphnet as gn  # noqa: F401  (before NumPy: importing graphnet may choose OpenBLAS's kernels)
import numpy as np

from .memory import _reset_peak, _status_kib

ROOT = Path(__file__).resolve().parent.parent
# (case, spec, dims, loss per output, the inputs' batch shapes, target kind)
CASES = {
    "mlp B=128": ("mlp", {}, {"logits": "cross_entropy"}, {"x": (128, 784)}, 10),
    "digits_lenet B=64": ("digits_lenet", {}, {"logits": "cross_entropy"}, {"image": (64, 1, 8, 8)}, 10),
    "resnet18 32x32 B=16": ("resnet18", {"H": 32, "W": 32, "classes": 10}, {"logits": "cross_entropy"},
                            {"image": (16, 3, 32, 32)}, 10),
    "lstm B=16 T=50": ("lstm", {}, {"y": "mse_loss"}, {"x": (16, 50, 128)}, None),
}


def _batch(case: str, net) -> dict[str, np.ndarray]:
    spec, dims, losses, shapes, classes = CASES[case]
    rng = np.random.default_rng(0)
    batch = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    if classes:
        batch["target"] = rng.integers(0, classes, next(iter(shapes.values()))[0])
    else:
        out = net.run(batch)
        batch["target"] = rng.standard_normal(out["y"].shape).astype(np.float32)
    return batch


def graphnet_step(case: str):
    from graphnet.training.config import load_config
    from graphnet.training.loop import Trainer
    spec, dims, losses, _, _ = CASES[case]
    net = gn.load(ROOT / "specs" / f"{spec}.yaml", dims or None)
    resolved = load_config(None, [("loss", {o: name for o, name in losses.items()}), ("optimizer", "adam")])
    trainer = Trainer(net, resolved, net.init_weights(0), max_memory=None)
    batch = _batch(case, net)
    batch = {k: v for k, v in batch.items() if k in trainer.obj.train.inputs}

    def step():
        trainer.step(batch)
        trainer.position.steps += 1
    return step


def torch_step(case: str):
    import torch

    from .torch_models import torch_module
    spec, dims, losses, _, _ = CASES[case]
    net = gn.load(ROOT / "specs" / f"{spec}.yaml", dims or None)
    batch = _batch(case, net)
    if spec == "digits_lenet":
        module = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2), torch.nn.Flatten(),
            torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    else:
        module = torch_module(spec, net.init_weights(0), dims)
    module.train()
    opt = torch.optim.Adam(module.parameters())
    inputs = [torch.from_numpy(v) for k, v in batch.items() if k != "target"]
    target = torch.from_numpy(batch["target"])
    loss_fn = torch.nn.functional.cross_entropy if "cross_entropy" in losses.values() else torch.nn.functional.mse_loss

    def step():
        opt.zero_grad()
        out = module(*inputs)
        loss = loss_fn(out[0] if isinstance(out, tuple) else out, target)
        loss.backward()
        opt.step()
    return step


def measure_here(engine: str, case: str, steps: int) -> dict:
    step = (graphnet_step if engine == "graphnet" else torch_step)(case)
    np.ones((64, 64), np.float32) @ np.ones((64, 64), np.float32)   # OpenBLAS's own start-up, not the step's
    gc.collect()
    exact = _reset_peak()
    before = _status_kib("VmRSS")       # the model, the weights and the batch are resident
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    peak = _status_kib("VmHWM")
    return {"engine": engine, "case": case, "ms": 1e3 * float(np.median(times)),
            "peak_growth_mib": (peak - before) / 1024 if exact and peak and before else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.training")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--child", nargs=2, metavar=("ENGINE", "CASE"))
    p.add_argument("--cases", nargs="*", default=list(CASES))
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure_here(args.child[0], args.child[1], args.steps)))
        return 0
    print("| case | graphnet ms/step | torch ms/step | time ratio | graphnet peak growth (MiB) | torch peak growth (MiB) | memory ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for case in args.cases:
        row = {}
        for engine in ("graphnet", "torch"):
            done = subprocess.run([sys.executable, "-m", "benchmarks.training", "--steps", str(args.steps),
                                   "--child", engine, case], capture_output=True, text=True, cwd=ROOT)
            if done.returncode:
                print(f"{case} {engine} failed:\n{done.stderr}", file=sys.stderr)
                row[engine] = None
                continue
            row[engine] = json.loads(done.stdout.strip().splitlines()[-1])
        g, t = row["graphnet"], row["torch"]
        if not (g and t):
            print(f"| {case} | {g and round(g['ms'], 2)} | {t and round(t['ms'], 2)} | - | - | - | - |", flush=True)
            continue
        gm, tm = g["peak_growth_mib"], t["peak_growth_mib"]
        memory = f"{gm / tm:.2f}" if gm and tm else "-"
        print(f"| {case} | {g['ms']:.2f} | {t['ms']:.2f} | {g['ms'] / t['ms']:.2f} | {gm:.1f} | {tm:.1f} | {memory} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
