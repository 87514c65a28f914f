"""Gradient memory: the peak memory of one gradient computation (forward and backward, every
trainable param's gradient and the float inputs') on graphnet's NumPy back end against PyTorch's
autograd doing the same, with the same weights and cotangents (issue 15's target: at most 1.5x
torch's peak).

    python -m benchmarks.gradient_memory                 # the table
    python -m benchmarks.gradient_memory --cases resnet18

Each engine and case runs in a child process of its own (`--child ENGINE CASE`), measured the same
way for both (benchmarks/memory.py's method): the child loads the network and weights, makes the
inputs and cotangents and prepares the engine (graphnet: the gradient graph and a session over it,
whose first run compiles the plan; torch: the module with its params requiring gradients), runs the
computation once so that what a first run leaves cached (a compiled plan, OpenBLAS's buffers) is
resident, then resets the kernel's peak-RSS mark (/proc/self/clear_refs 5) and reads its RSS, runs
the computation twice more and reads the peak RSS (VmHWM). `peak growth` is the difference: what
the gradient computation adds on top of the model, its weights and the inputs (the activations
kept for the backward pass, the backward's temporaries and the gradients themselves, which are
about the weights' size). Both engines run on glibc's malloc (torch has no caching allocator on the
CPU), and both children fix its mmap threshold at 128 KiB (mallopt M_MMAP_THRESHOLD) before
anything is prepared:
otherwise glibc raises the threshold after the first large free, later large buffers come from the
heap, which keeps them after they are freed, and a run after the first shows almost no growth.
With it every large buffer is mapped when allocated and unmapped when freed, so the RSS follows
what is live, the same way for both engines.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import sys
from pathlib import Path

import graphnet as gn  # noqa: F401  (before NumPy: importing graphnet may choose OpenBLAS's kernels)
import numpy as np

from .memory import _status_kib, run_from_reset

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
# (spec, dims, batch, sequence length, mode): resnet18 trains its batch norms on batch statistics;
# bert_base (the full 110M-param model) runs without dropout, as torch's eval() does. At T=64 its
# gradients (the weights' 418 MiB) are nearly all of the peak; at T=512 the activations kept for
# the backward pass (attention scores of 12 heads x 512 x 512 per layer) weigh as much again.
CASES = {
    "resnet18 224x224 B=16": ("resnet18", {"H": 224, "W": 224, "classes": 1000}, 16, 0, "train"),
    "resnet18 64x64 B=16": ("resnet18", {"H": 64, "W": 64, "classes": 1000}, 16, 0, "train"),
    "bert_base T=64 B=2": ("bert_base", {}, 2, 64, "eval"),
    "bert_base T=512 B=2": ("bert_base", {}, 2, 512, "eval"),
    "resnet18 64x64 B=2": ("resnet18", {"H": 64, "W": 64, "classes": 10}, 2, 0, "train"),   # the tests'
}
TABLE = [c for c in CASES if c != "resnet18 64x64 B=2"]


def _bert(batch: int, seq: int, attention: str = "sdpa"):
    """Hugging Face's BertModel, attention by torch's fused scaled_dot_product_attention (its
    default, which keeps no [T, T] probabilities for the backward) or written out ("eager": the
    softmax materialized and kept, as graphnet's attention block computes it)."""
    import torch
    import transformers
    torch.manual_seed(0)
    module = transformers.BertModel(transformers.BertConfig(attn_implementation=attention))   # bert-base's shape
    rng = np.random.default_rng(0)
    feed = {"input_ids": rng.integers(0, 30522, (batch, seq)), "token_type_ids": rng.integers(0, 2, (batch, seq)),
            "attention_mask": np.ones((batch, seq), np.int64)}
    feed["attention_mask"][-1, seq // 2:] = 0

    def forward(m, tensors):
        out = m(**tensors)
        return {"last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output}
    return module, feed, forward


def _resnet(net, dims: dict, batch: int):
    from .torch_models import torch_module
    module = torch_module("resnet18", net.init_weights(0), dims)
    image = np.random.default_rng(0).standard_normal((batch, 3, dims["H"], dims["W"])).astype(np.float32)
    return module, {"image": image}, lambda m, tensors: {"logits": m(tensors["image"])}


def _workload(case: str, attention: str = "sdpa"):
    """(graphnet network, torch module, inputs, forward(module, tensors) -> outputs, mode)."""
    spec, dims, batch, seq, mode = CASES[case]
    net = gn.load(ROOT / "specs" / f"{spec}.yaml", dims or None)
    module, feed, forward = _bert(batch, seq, attention) if spec == "bert_base" else _resnet(net, dims, batch)
    return net, module, feed, forward, mode


def _cotangents(outputs: dict) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {k: rng.standard_normal(np.shape(v)).astype(np.float32) for k, v in outputs.items()}


def graphnet_computation(case: str):
    """A callable running the gradient graph once on the NumPy back end, and its memory estimate."""
    from graphnet.backends.numpy_backend import bind_dims, peak_bytes
    from graphnet.transforms.autodiff import COTANGENT
    net, module, feed, _, mode = _workload(case)
    weights = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    del module
    moded, extras = net.in_mode(mode, dropout=False)
    graph = net.gradient_graph(mode=mode, dropout=False)
    user = {k: v for k, v in moded.graph.outputs.items() if k in net.graph.outputs}
    outputs = net.run(feed, weights)
    arrays = {**feed, **{COTANGENT + k: c for k, c in _cotangents({k: outputs[k] for k in user}).items()}}
    for name, t in graph.inputs.items():     # the running statistics' outputs take cotangent zero
        if name not in arrays:
            arrays[name] = np.zeros([d.value for d in t.shape], t.dtype)
    session = gn.Network(graph).session(extras.complete(weights), max_memory=None)
    estimate = peak_bytes(graph, bind_dims(graph, {k: v.shape for k, v in arrays.items()}))
    return (lambda: session.run(arrays)), {"estimate_mib": estimate / MIB}


def torch_computation(case: str, attention: str = "sdpa"):
    """A callable running torch's forward and backward once and returning the gradients, which it
    takes off the params and inputs: so they live as long as the caller holds them, as graphnet's
    outputs do, and each run allocates its own."""
    import torch
    net, module, feed, forward, mode = _workload(case, attention)
    module.train(mode == "train")
    tensors = {k: torch.tensor(v, requires_grad=v.dtype.kind == "f") for k, v in feed.items()}
    with torch.no_grad():
        cot = {k: torch.from_numpy(c) for k, c in _cotangents(forward(module, tensors)).items()}

    def run():
        outs = forward(module, tensors)
        sum((outs[k] * c).sum() for k, c in cot.items()).backward()
        del outs
        grads = {**{k: p.grad for k, p in module.named_parameters()},
                 **{k: t.grad for k, t in tensors.items() if t.grad is not None}}
        module.zero_grad(set_to_none=True)
        for t in tensors.values():
            t.grad = None
        return grads
    return run, {}


def _fixed_mmap_threshold() -> None:
    """Every allocation of 128 KiB or more mapped and unmapped on its own (see the module docstring)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        raise SystemExit("glibc is needed to fix its mmap threshold (mallopt)") from None
    if libc.mallopt(-3, 128 << 10) != 1:       # M_MMAP_THRESHOLD
        raise SystemExit("mallopt(M_MMAP_THRESHOLD) failed")


def measure(engine: str, case: str) -> dict | None:
    """measure_here in a child process of its own; None if it failed (its error on stderr)."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.gradient_memory", "--child", engine, case],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        print(f"{case} {engine} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_here(engine: str, case: str, runs: int = 1) -> dict:
    _fixed_mmap_threshold()
    if engine == "graphnet":
        run, extra = graphnet_computation(case)
    else:
        run, extra = torch_computation(case, "eager" if engine == "torch-eager" else "sdpa")
    out = run()                            # a first run: plans compiled, caches made
    del out
    exact, before = run_from_reset(run, runs)
    peak = _status_kib("VmHWM")
    if not (exact and peak and before):
        raise SystemExit("the peak RSS mark cannot be reset here (Linux /proc/self/clear_refs)")
    return {"engine": engine, "case": case, "peak_growth_mib": (peak - before) / 1024, **extra}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gradient_memory")
    p.add_argument("--child", nargs=2, metavar=("ENGINE", "CASE"))
    p.add_argument("--cases", nargs="*", default=TABLE, help="cases by name or the start of a name")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure_here(*args.child)))
        return 0
    print("| case | graphnet peak growth (MiB) | graphnet's estimate (MiB) | torch peak growth (MiB) | ratio "
          "| torch, eager attention (MiB) | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for case in [c for c in CASES if any(c.startswith(a) for a in args.cases)]:
        g, t = measure("graphnet", case), measure("torch", case)
        e = measure("torch-eager", case) if CASES[case][0] == "bert_base" else None
        gm, tm, em = ((r or {}).get("peak_growth_mib") for r in (g, t, e))
        ratio = lambda a, b: f"{a / b:.2f}" if a and b else "-"
        cells = [f"{x:.1f}" if x else "-" for x in (gm, (g or {}).get("estimate_mib"), tm)]
        print(f"| {case} | {' | '.join(cells)} | {ratio(gm, tm)} | {f'{em:.1f}' if em else '-'} | {ratio(gm, em)} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
