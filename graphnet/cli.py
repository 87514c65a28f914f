"""The `graphnet` command: validate, run, export, init-weights, weights. Every user mistake is printed as
`FILE:LINE:COL: error: ...` and exits with status 1; nothing a user can do prints a traceback."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from .commands import register_all
from .errors import Location, SpecError
from .files import command
from .network import DEFAULT_MAX_MEMORY
from .render import FORMATS

EXIT_ERROR = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.print_usage(sys.stderr)
        print(f"graphnet: error: {message}", file=sys.stderr)
        sys.exit(EXIT_ERROR)


def _dims(values: list[str]) -> dict[str, int]:
    out = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise SpecError.at(Location("<command line>"), f"--dim takes NAME=VALUE, got '{item}'")
        try:
            n = int(value)
        except ValueError:
            raise SpecError.at(Location("<command line>"), f"--dim {name}: '{value}' is not a whole number") from None
        if n < 1:
            raise SpecError.at(Location("<command line>"), f"--dim {name}: a dim must be positive, got {n}")
        out[name] = n
    return out


def _load(path: str, dims: dict[str, int]):
    from .network import load
    return load(path, dims)


def cmd_validate(args) -> int:
    from .summary import summary_rows
    dims = _dims(args.dim)
    reports, failed = [], False
    paths = _spec_paths(args.specs)
    for path in paths:
        try:
            net = _load(path, dims)     # the --dim values are in the graph from here
        except SpecError as e:
            print(e.render(), file=sys.stderr)
            failed = True
            continue
        g = net.graph
        if args.json:
            macs = g.total_macs()
            reports.append({
                "name": g.name,
                "params": g.param_count(),
                "trainable_params": g.param_count(trainable=True),
                "macs": _number(macs),
                "inputs": {k: list(v) for k, v in net.inputs.items()},
                "outputs": {k: list(v) for k, v in net.outputs.items()},
                "nodes": [{**r, **{k: _number(r[k]) for k in ("macs", "bytes")}}
                          for r in summary_rows(g, depth=args.depth)],
            })
        else:
            print(net.summary(depth=args.depth))
            print(f"{path}: ok")
    if args.json:
        print(json.dumps(reports if len(paths) > 1 else (reports[0] if reports else None), indent=2))
    return EXIT_ERROR if failed else 0


def _spec_paths(given: list[str]) -> list[str]:
    """Spec files as given, a folder standing for the .yaml files directly in it."""
    out = []
    for item in given:
        folder = Path(item)
        if item and folder.is_dir():      # Path("") is ".", but an empty argument names no folder
            found = sorted(str(p) for p in folder.glob("*.yaml"))
            if not found:
                raise SpecError.at(Location(item), "no .yaml files in this folder")
            out += found
        else:
            out.append(item)
    return out


def _size(text: str) -> int | None:
    """A memory size: bytes, or with a K, M, G or T suffix (powers of 1024); 'none' for no limit."""
    text = text.strip()
    if text.lower() == "none":
        return None
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.rstrip("BbIi").rstrip(), ""
    if number and number[-1].upper() in units:
        number, unit = number[:-1], number[-1].upper()
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size like 8G, 512M or none") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a memory size must be positive, got '{text}'")
    return int(value * units[unit])


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"a seed must be 0 or more, got {seed}")
    return seed


def _number(d):
    """A count for JSON: an int when known, else its formula in the free dims."""
    return d.value if d.is_const() else str(d)


def _weights(net, args) -> tuple[dict, dict]:
    """The weights, read (in any format, checked and cast, the casts said on stderr) or made, and
    how the network should check them."""
    from .weights import load_weights, weights_report
    checks = {"allow_nonfinite": args.allow_nonfinite}
    if not args.weights:
        if args.weights_prefix:
            raise SpecError.at(Location("<command line>"), "--weights-prefix selects from --weights, which is not given")
        return net.init_weights(args.seed), checks
    report = weights_report(net.graph, load_weights(args.weights, args.weights_prefix), args.weights,
                            args.allow_nonfinite)
    if not report.ok:
        raise report.error()
    if report.casts_line():
        print(report.casts_line(), file=sys.stderr)
    return report.weights, {**checks, "source": args.weights}


def _writer(path: str | None):
    """The weight writer for an -o path, checked before any work is done."""
    from .weights import weight_writer
    return path and weight_writer(path, Location("<command line>"))


def cmd_run(args) -> int:
    import numpy as np

    from .weights import load_npz
    net = _load(args.spec, _dims(args.dim))     # from here the --dim values are in the graph
    write = _writer(args.output)                # after the load, which notes the libraries it read
    feed = net.feed(load_npz(args.inputs), args.inputs) if args.inputs else None
    binding = feed.dims if feed else net.default_binding()
    # once, for either back end (onnxruntime's needs are alike), and before random inputs are made
    net.check_memory(binding, args.max_memory, args.optimize)
    if feed is None:
        feed = net.random_feed(binding, seed=args.seed)
    weights, checks = _weights(net, args)
    if args.backend == "numpy":
        if args.device == "cuda":
            raise SpecError.at(Location("<command line>"), "--device cuda needs --backend onnxruntime")
        session = net.session(weights, optimize=args.optimize, max_memory=None, **checks)   # checked above
        outputs = session.run(feed)
        if args.profile:   # a second run: the first one's page faults and cold caches are not the kernels'
            timings = []
            session.run(feed, timings)
            print(profile_table(session.plan(feed.dims), timings))
    else:
        net.check_bounds(feed.dims)    # the NumPy session checks them with its plan
        outputs = _run_onnxruntime(net, net.to_onnx(weights, **checks), feed, args.device)
    for name, value in outputs.items():
        value = np.asarray(value)
        stats = f"mean {value.mean():.6g}, std {value.std():.6g}" if value.size and value.dtype.kind == "f" else ""
        print(f"{name}: {value.dtype}{list(value.shape)} {stats}")
    if args.output:
        write(args.output, outputs)
        print(f"wrote {args.output}")
    return 0


def profile_table(plan, timings: list[float], top: int = 10) -> str:
    """Where a NumPy run's time went: per op, then the slowest nodes."""
    total = sum(timings) or 1e-12
    per_op: dict[str, list] = {}
    for step, t in zip(plan.steps, timings):
        entry = per_op.setdefault(step.op, [0.0, 0])
        entry[0] += t
        entry[1] += 1
    lines = [f"profile: {total * 1e3:.2f} ms in {len(timings)} steps", f"  {'op':<18}{'ms':>9}{'%':>7}{'steps':>7}"]
    for op, (t, n) in sorted(per_op.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"  {op:<18}{t * 1e3:9.2f}{100 * t / total:7.1f}{n:7d}")
    lines.append(f"  {'slowest nodes':<18}")
    for step, t in sorted(zip(plan.steps, timings), key=lambda st: -st[1])[:top]:
        lines.append(f"  {step.name:<40}{step.op:<14}{t * 1e3:9.3f} ms")
    return "\n".join(lines)


def _run_onnxruntime(net, model, feed, device: str):
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise SpecError.at(Location("<command line>"),
                               "--device cuda: onnxruntime has no CUDA provider here; install onnxruntime-gpu "
                               f"(available: {', '.join(ort.get_available_providers())})")
        providers = ["CUDAExecutionProvider"]
    # errors only: a warning such as a failed constant fold of a bad index comes back at run time
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4      # its run-time errors come back to us, to be located and printed once
    try:
        values = session.run(None, feed.arrays, quiet)
    except (Fail, InvalidArgument, RuntimeException) as e:
        raise _onnxruntime_failure(net.graph, feed.dims, str(e)) from None
    return dict(zip([o.name for o in session.get_outputs()], values))


def _onnxruntime_failure(graph, binding: dict[str, int], message: str) -> SpecError:
    """onnxruntime's run-time error, located at the graph node whose ONNX node it names (the
    innermost, for one inside a Scan body), with that node's input types."""
    from .backends.onnx_export import source_node
    from .dims import format_shape
    from .graph import node_error
    said = message.rpartition("Status Message: ")[2].strip() or message
    found = next(filter(None, (source_node(graph, name) for name in reversed(re.findall(r"Name:'([^']*)'", message)))),
                 None)
    if found is None:
        return SpecError.at(Location(graph.source), f"onnxruntime: {said}")
    owner, node = found
    shown = ", ".join(f"{t.dtype}{format_shape(d.subs(binding) for d in t.shape)}"
                      for t in (owner.types[x] for x in node.inputs if x is not None))
    return node_error(node.trace, node.op.name, f"onnxruntime: {said}" + (f" (inputs: {shown})" if shown else ""))


def cmd_export(args) -> int:
    from .backends.onnx_export import MAX_OPSET, MIN_OPSET
    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        raise SpecError.at(Location("<command line>"), f"--opset {args.opset} is not supported; use {MIN_OPSET} to {MAX_OPSET}")
    net = _load(args.spec, _dims(args.dim))
    weights, checks = _weights(net, args)
    if args.train:      # one training step, graphnet/training/step_export.py
        from .training.step_export import export_step
        return export_step(net, args.train, weights, args.output, args.opset)
    model = net.export_onnx(args.output, weights, args.opset, args.external_data or None, **checks)
    data = next((e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"), None)
    print(f"wrote {args.output}{f' and {os.path.join(os.path.dirname(args.output), data)}' if data else ''} "
          f"(opset {args.opset}, {net.graph.param_count():,} params)")
    return 0


def cmd_render(args) -> int:
    from .files import atomic_write
    from .render import SUFFIXES, render
    if args.depth < 0:
        raise SpecError.at(Location("<command line>"), f"--depth must be 0 or more, got {args.depth}")
    fmt = args.format or (SUFFIXES.get(Path(args.output).suffix.lower(), "mermaid") if args.output else "mermaid")
    dims = _dims(args.dim)
    net = _load(args.spec, dims)
    data = render(net.graph, fmt, None if args.expand else args.depth, dims)
    if args.output:
        with atomic_write(args.output) as f:
            f.write(data)
        print(f"wrote {args.output} ({fmt})")
    else:
        out = getattr(sys.stdout, "buffer", None)
        if out is None:
            sys.stdout.write(data.decode())
        else:
            sys.stdout.flush()
            out.write(data)
            out.flush()
    return 0


def cmd_init_weights(args) -> int:
    net = _load(args.spec, _dims(args.dim))
    write = _writer(args.output)                # after the load, which notes the libraries it read
    write(args.output, net.init_weights(args.seed))
    print(f"wrote {args.output} ({len(net.graph.params)} params, seed {args.seed})")
    return 0


def cmd_weights(args) -> int:
    """How a weight file fits a spec, reading no more than the check needs and running nothing."""
    from .weights import format_report, load_weights, report_json, weights_report
    net = _load(args.spec, _dims(args.dim))
    report = weights_report(net.graph, load_weights(args.file, args.weights_prefix), args.file, args.allow_nonfinite)
    print(json.dumps(report_json(report), indent=2) if args.json else format_report(report))
    return 0 if report.ok else EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="graphnet", description="Declarative neural networks: validate, run, export.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp, many=False):
        if many:
            sp.add_argument("specs", nargs="+", metavar="SPEC")
        else:
            sp.add_argument("spec", metavar="SPEC")
        sp.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE", help="bind or override a dim")

    def weights_options(sp, file=True):
        if file:
            sp.add_argument("--weights", metavar="FILE", help=".npz, .safetensors, a PyTorch .pt/.pth/.bin or "
                            "a Hugging Face model folder (docs/weights.md)")
        sp.add_argument("--weights-prefix", metavar="PREFIX", help="only the tensors named PREFIX..., without it "
                        "(a sub-module of a bigger checkpoint)")
        sp.add_argument("--allow-nonfinite", action="store_true", help="accept NaN and infinite weights")

    v = sub.add_parser("validate", help="check a spec: shapes, params, MACs")
    common(v, many=True)
    v.add_argument("--json", action="store_true", help="print a JSON report")
    v.add_argument("--depth", type=int, metavar="N", help="collapse block calls below N path levels")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("run", help="run a spec on random or given inputs")
    common(r)
    src = r.add_mutually_exclusive_group()
    src.add_argument("--inputs", metavar="FILE.npz")
    src.add_argument("--random", action="store_true", help="random inputs (the default)")
    weights_options(r)
    r.add_argument("--seed", type=_seed, default=0)
    r.add_argument("-o", "--output", metavar="OUT.npz", help="the outputs, as .npz or .safetensors (by the extension)")
    r.add_argument("--backend", choices=["numpy", "onnxruntime"], default="numpy")
    r.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    r.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="run the graph as written, without the NumPy back end's plan-time rewrites")
    r.add_argument("--profile", action="store_true", help="run again and print the NumPy back end's time per op and per node")
    r.add_argument("--max-memory", type=_size, default=DEFAULT_MAX_MEMORY, metavar="SIZE",
                   help="refuse runs estimated to need more (e.g. 8G, 512M; 'none' for no limit; "
                        "default: three quarters of the RAM)")
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("export", help="export to ONNX")
    common(e)
    e.add_argument("-o", "--output", required=True, metavar="FILE.onnx")
    weights_options(e)
    e.add_argument("--seed", type=_seed, default=0)
    e.add_argument("--opset", type=int, default=17)
    e.add_argument("--external-data", action="store_true",
                   help="weights in FILE.onnx.data beside the model (automatic above 2 GB)")
    e.add_argument("--train", metavar="CONFIG", help="export one training step by this training config: inputs a "
                   "batch, the weights, the optimizer state; outputs the loss, new weights, new state")
    e.set_defaults(func=cmd_export)

    w = sub.add_parser("init-weights", help="write initial weights to .npz or .safetensors")
    common(w)
    w.add_argument("-o", "--output", required=True, metavar="FILE.npz", help="FILE.npz or FILE.safetensors")
    w.add_argument("--seed", type=_seed, default=0)
    w.set_defaults(func=cmd_init_weights)

    c = sub.add_parser("weights", help="report how a weight file fits a spec: matched, missing, unexpected, mis-shaped")
    common(c)
    c.add_argument("file", metavar="FILE", help="a weight file or Hugging Face model folder")
    weights_options(c, file=False)
    c.add_argument("--json", action="store_true", help="print a JSON report, every mismatch listed")
    c.set_defaults(func=cmd_weights)

    r = sub.add_parser("render", help="draw a spec: Mermaid, Graphviz DOT or SVG")
    common(r)
    r.add_argument("--format", choices=FORMATS, help="mermaid (the default), dot, or svg (needs Graphviz's dot); "
                   "without it, -o FILE.svg / .dot / .gv pick svg / dot")
    level = r.add_mutually_exclusive_group()
    level.add_argument("--depth", type=int, default=0, metavar="N",
                       help="open N levels of block calls as subgraphs (default 0: one box per top-level call)")
    level.add_argument("--expand", action="store_true", help="open every block call, down to the primitive ops")
    r.add_argument("-o", "--output", metavar="FILE", help="write to FILE (atomically) instead of standard output")
    r.set_defaults(func=cmd_render)

    def cmd_schema(args) -> int:
        if args.training:
            from .training.config import config_schema_json
            print(config_schema_json(), end="")
            return 0
        from .schema import print_schema
        return print_schema(args.library)

    s = sub.add_parser("schema", help="print the JSON Schema of spec files, for editors")
    kind = s.add_mutually_exclusive_group()
    kind.add_argument("--library", action="store_true", help="the schema of block library files instead")
    kind.add_argument("--training", action="store_true", help="the schema of training configs instead")
    s.set_defaults(func=cmd_schema)
    register_all(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # no output may be one of the command's inputs; SIGTERM cleans up as Ctrl-C does (files.command)
        with command([getattr(args, k, None) for k in ("spec", "weights", "inputs")], [getattr(args, "output", None)]):
            return args.func(args)
    except SpecError as e:
        print(e.render(), file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (`graphnet validate ... | head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as e:
        where = getattr(e, "filename", None) or "<output>"
        print(f"{where}:1:1: error: {e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
