"""The `graphnet` command: validate, run, export, init-weights, weights. Every user mistake is printed as
`FILE:LINE:COL: error: ...` and exits with status 1, a mistake in the command line itself (argparse's
own included) as `<command line>:1:1: error: ...`; nothing a user can do prints a traceback. `-`
stands for standard input or output where a file is read or written (commands/stdio.py)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import sys
from pathlib import Path

from . import __version__
from .commands import register_all
from .commands.arguments import count as _count, dims as _dims, seed as _seed, size as _size
from .commands.profiling import numpy_rows, onnxruntime_rows, profile_table
from .commands.stdio import (STDIN_NAME, input_file, is_stdio, messages, output_file, read_stdin_spec,
                             refuse_two_stdins, write_stdout)
from .errors import Location, SpecError
from .files import command
from .network import DEFAULT_MAX_MACS, DEFAULT_MAX_MEMORY
from .render import FORMATS

EXIT_ERROR = 1


class _Parser(argparse.ArgumentParser):
    """argparse's own mistakes in the format of every other: located in `<command line>`, exit 1."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, formatter_class=_Help, **kwargs)

    def error(self, message: str):
        print(f"<command line>:1:1: error: {message}\n"
              f"<command line>:1:1: note: '{self.prog} -h' lists the options", file=sys.stderr)
        sys.exit(EXIT_ERROR)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default shown after its help, unless the help says it already or there is
    none to show (a flag, an option that is off unless given)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.nargs == 0 or action.default in (None, [], argparse.SUPPRESS) \
                or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def _load(path: str, dims: dict[str, int], grad: bool = False):
    """The spec as a Network (from standard input for '-'); with `grad`, the Network of its
    gradient graph (Network.gradient_graph)."""
    from .network import Network, load
    net = load(STDIN_NAME, dims, text=read_stdin_spec()) if is_stdio(path) else load(path, dims)
    return Network(net.gradient_graph()) if grad else net


def _random_note(args) -> None:
    """The one line that says the weights were made up, so random outputs are not taken for real ones."""
    if not args.weights:
        print(f"<command line>:1:1: note: no --weights given: the weights are random, from the spec's init "
              f"schemes with --seed {args.seed}", file=sys.stderr)


def cmd_validate(args) -> int:
    from .commands import report
    dims = _dims(args.dim)
    _check_depth(args.depth)
    entries, failed = [], False
    paths = _spec_paths(args.specs)
    refuse_two_stdins(paths)
    for path in paths:
        shown = STDIN_NAME if is_stdio(path) else path
        try:
            net = _load(path, dims, args.grad)     # the --dim values are in the graph from here
        except SpecError as e:
            print(e.render(), file=sys.stderr)
            failed = True
            entries.append(report.spec_entry(shown, error=e))
            continue
        if args.json:
            entries.append(report.spec_entry(shown, net, depth=args.depth))
        else:
            print(net.summary(depth=args.depth, input_shapes=args.input_shapes))
            print(f"{shown}: ok")
    if args.json:
        print(report.dumps(report.report("validate", not failed, specs=entries)))
    return EXIT_ERROR if failed else 0


def _check_depth(depth: int | None) -> None:
    if depth is not None and depth < 0:
        raise SpecError.at(Location("<command line>"), f"--depth must be 0 or more, got {depth}")


def _spec_paths(given: list[str]) -> list[str]:
    """Spec files as given, a folder standing for the .yaml files directly in it."""
    out = []
    for item in given:
        folder = Path(item)
        if item and not is_stdio(item) and folder.is_dir():   # Path("") is ".", but "" names no folder
            found = sorted(str(p) for p in folder.glob("*.yaml"))
            if not found:
                raise SpecError.at(Location(item), "no .yaml files in this folder")
            out += found
        else:
            out.append(item)
    return out


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
    if is_stdio(path):
        from .weights.formats import WRITERS
        return WRITERS[".npz"]                # standard output has no name to go by
    return path and weight_writer(path, Location("<command line>"))


def cmd_run(args) -> int:
    import numpy as np

    from .weights import load_npz
    refuse_two_stdins([args.spec, args.inputs])
    net = _load(args.spec, _dims(args.dim))     # from here the --dim values are in the graph
    write = _writer(args.output)                # after the load, which notes the libraries it read
    say = messages(args.output)
    feed = None
    if args.inputs:
        with input_file(args.inputs, ".npz") as path:
            feed = net.feed(load_npz(path), STDIN_NAME if is_stdio(args.inputs) else args.inputs)
    binding = feed.dims if feed else net.default_binding()
    # once, for either back end (onnxruntime's needs are alike), and before random inputs are made
    net.check_memory(binding, args.max_memory, args.optimize)
    if args.backend == "numpy":
        net.check_compute(binding, args.max_compute)
    if feed is None:
        feed = net.random_feed(binding, seed=args.seed)
    weights, checks = _weights(net, args)
    if args.backend == "numpy":
        if args.device == "cuda":
            raise SpecError.at(Location("<command line>"), "--device cuda needs --backend onnxruntime")
        session = net.session(weights, optimize=args.optimize, max_memory=None, max_macs=None,   # checked above
                              **checks)
        outputs = session.run(feed)
        if args.profile:   # a second run: the first one's page faults and cold caches are not the kernels'
            timings = []
            session.run(feed, timings)
            print(profile_table(numpy_rows(session.plan(feed.dims), timings), "numpy"), file=say)
    else:
        net.check_bounds(feed.dims)    # the NumPy session checks them with its plan
        outputs = _run_onnxruntime(net, net.to_onnx(weights, **checks), feed, args.device, args.profile, say)
    for name, value in outputs.items():
        value = np.asarray(value)
        stats = f"mean {value.mean():.6g}, std {value.std():.6g}" if value.size and value.dtype.kind == "f" else ""
        print(f"{name}: {value.dtype}{list(value.shape)} {stats}", file=say)
    if args.output:
        with output_file(args.output, ".npz") as path:
            write(path, outputs)
        print(f"wrote {'standard output' if is_stdio(args.output) else args.output}", file=say)
    _random_note(args)
    return 0


def _run_onnxruntime(net, model, feed, device: str, profile: bool = False, say=None):
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, NotImplemented, RuntimeException
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
    if profile:     # onnxruntime's own profiler; its trace goes to a private folder, read, then removed
        import tempfile
        trace_folder = tempfile.mkdtemp(prefix="graphnet-profile-")
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(trace_folder, "ort")
    session = None
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4      # its run-time errors come back to us, to be located and printed once
    try:
        # a model onnxruntime has no kernel for (Conv on float64) fails here, naming the node
        session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)
        values = session.run(None, feed.arrays, quiet)
        if profile:   # timed again, as on NumPy: the first run pays for the warm-up
            session.run(None, feed.arrays, quiet)
    except (Fail, InvalidArgument, NotImplemented, RuntimeException) as e:
        raise _onnxruntime_failure(net.graph, feed.dims, str(e)) from None
    finally:
        if profile:
            rows = onnxruntime_rows(session.end_profiling()) if session is not None else []
            shutil.rmtree(trace_folder, ignore_errors=True)
    if profile:
        print(profile_table(rows, f"onnxruntime, {providers[0]}"), file=say)
    return dict(zip([o.name for o in session.get_outputs()], values))


def _onnxruntime_failure(graph, binding: dict[str, int], message: str) -> SpecError:
    """onnxruntime's run-time error, located at the graph node whose ONNX node it names (the
    innermost, for one inside a Scan body), with that node's input types."""
    from .backends.onnx_export import source_node
    from .dims import format_shape
    from .graph import node_error
    said = message.rpartition("Status Message: ")[2].strip() or message
    # at run time "Name:'c#Conv'"; when a session is made, "node with name 'c#Conv'"
    named = re.findall(r"Name:'([^']*)'|node with name '([^']*)'", message)
    found = next(filter(None, (source_node(graph, a or b) for a, b in reversed(named))), None)
    if found is None:
        return SpecError.at(Location(graph.source), f"onnxruntime: {said}")
    owner, node = found
    shown = ", ".join(f"{t.dtype}{format_shape(d.subs(binding) for d in t.shape)}"
                      for t in (owner.types[x] for x in node.inputs if x is not None))
    return node_error(node.trace, node.op.name, f"onnxruntime: {said}" + (f" (inputs: {shown})" if shown else ""))


def cmd_export(args) -> int:
    from .backends.onnx_export import EXTERNAL_DATA_ABOVE, MAX_OPSET, MIN_OPSET, ExportOptions
    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        raise SpecError.at(Location("<command line>"), f"--opset {args.opset} is not supported; use {MIN_OPSET} to {MAX_OPSET}")
    if (args.output is None) == (args.triton_repo is None):
        raise SpecError.at(Location("<command line>"), "export needs one of -o FILE.onnx and --triton-repo DIR")
    if args.max_batch_size < 1:
        raise SpecError.at(Location("<command line>"), f"--max-batch-size must be 1 or more, got {args.max_batch_size}")
    if args.io_dtype == "float16" and args.dtype != "float16":
        raise SpecError.at(Location("<command line>"), "--io-dtype float16 needs --dtype float16")
    if is_stdio(args.output) and args.external_data:
        raise SpecError.at(Location("<command line>"), "--external-data writes a second file, which standard "
                           "output (-o -) cannot hold")
    options = ExportOptions(args.fold_batch_norm, args.drop_zero_states, args.fold_constants, args.dtype, args.io_dtype)
    net = _load(args.spec, _dims(args.dim), args.grad)
    weights, checks = _weights(net, args)
    if args.train:      # one training step, graphnet/training/step_export.py
        from .training.step_export import export_step
        return export_step(net, args.train, weights, args.output, args.opset)
    progress = _progress_line(f"exporting {net.name}")
    if args.triton_repo is not None:
        model_path, config = net.export_triton(args.triton_repo, weights, args.opset, args.external_data or None,
                                               max_batch_size=args.max_batch_size, options=options,
                                               progress=progress, **checks)
        print(f"wrote {model_path} and {config} (opset {args.opset}, {net.graph.param_count():,} params)")
        _random_note(args)
        return 0
    if is_stdio(args.output) and sum(w.nbytes for w in weights.values()) > EXTERNAL_DATA_ABOVE:
        raise SpecError.at(Location("<command line>"), "the weights pass protobuf's 2 GB limit and go to a "
                           "separate data file, which standard output (-o -) cannot hold; write to a file")
    with output_file(args.output, ".onnx") as path:
        model = net.export_onnx(path, weights, args.opset, args.external_data or None, options=options,
                                progress=progress, **checks)
    data = next((e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"), None)
    shown = "standard output" if is_stdio(args.output) else args.output
    print(f"wrote {shown}{f' and {os.path.join(os.path.dirname(args.output), data)}' if data else ''} "
          f"(opset {args.opset}, {net.graph.param_count():,} params)", file=messages(args.output))
    _random_note(args)
    return 0


def _progress_line(what: str, above: int = 64 << 20):
    """A callback(done, total) that keeps one line on stderr up to date while an export writes more
    than `above` bytes of weights; None when stderr is no terminal (a log stays clean)."""
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int) -> None:
        if total > above:
            end = "\n" if done >= total else ""
            print(f"\r{what}: {done >> 20} of {total >> 20} MiB of weights written", end=end, file=sys.stderr, flush=True)
    return report


def cmd_render(args) -> int:
    from .files import atomic_write
    from .render import render
    _check_depth(args.depth)
    dims = _dims(args.dim)
    net = _load(args.spec, dims, args.grad)
    fmt = _render_format(args.format, args.output)      # after the load, which notes the libraries it read
    data = render(net.graph, fmt, None if args.expand else args.depth, dims)
    if args.output and not is_stdio(args.output):
        with atomic_write(args.output) as f:
            f.write(data)
        print(f"wrote {args.output} ({fmt})")
    else:
        write_stdout(data)
    return 0


def _render_format(given: str | None, output: str | None) -> str:
    """The format --format names, else the one -o's extension names; an extension that names
    another format than --format, or none that graphnet draws, is refused before drawing."""
    from .files import check_output
    from .render import SUFFIXES
    if not output or is_stdio(output):
        return given or "mermaid"
    suffix = Path(output).suffix.lower()
    named = SUFFIXES.get(suffix)
    existing = check_output(output)
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        return given or "mermaid"          # a device or FIFO (/dev/null) has no name to go by
    if given and named and named != given:
        raise SpecError.at(Location("<command line>"), f"-o {output} names {named}, but --format is {given}")
    if given or named:
        return given or named
    known = ", ".join(sorted(SUFFIXES))
    raise SpecError.at(Location("<command line>"), f"-o {output}: the format follows the extension "
                       f"({known}), and {f'{suffix!r}' if suffix else 'no extension'} names none; give --format")


def cmd_init_weights(args) -> int:
    net = _load(args.spec, _dims(args.dim))
    write = _writer(args.output)                # after the load, which notes the libraries it read
    with output_file(args.output, ".npz") as path:
        write(path, net.init_weights(args.seed))
    print(f"wrote {'standard output' if is_stdio(args.output) else args.output} ({len(net.graph.params)} params, "
          f"seed {args.seed})", file=messages(args.output))
    return 0


def cmd_weights(args) -> int:
    """How a weight file fits a spec, reading no more than the check needs and running nothing."""
    from .commands.report import dumps, report as json_report
    from .weights import format_report, load_weights, report_json, weights_report
    net = _load(args.spec, _dims(args.dim))
    report = weights_report(net.graph, load_weights(args.file, args.weights_prefix), args.file, args.allow_nonfinite)
    if args.json:
        fields = report_json(report)
        print(dumps(json_report("weights", fields.pop("ok"), spec=args.spec, **fields)))
    else:
        print(format_report(report))
    return 0 if report.ok else EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="graphnet", description="Declarative neural networks: validate, run, export. "
                "'-' for a file reads standard input or writes standard output.")
    p.add_argument("--version", action="version", version=f"graphnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp, many=False):
        if many:
            sp.add_argument("specs", nargs="+", metavar="SPEC", help="spec files or folders of them; - reads standard input")
        else:
            sp.add_argument("spec", metavar="SPEC", help="the spec file; - reads standard input")
        sp.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE", help="bind or override a dim (repeatable)")

    def grad_option(sp):
        sp.add_argument("--grad", action="store_true", help="the gradient graph: the outputs and the gradients "
                        "'grad.NAME' of every trainable param and float input, from a 'cotangent.OUTPUT' input per "
                        "float output (docs/training.md)")

    def weights_options(sp, file=True):
        if file:
            sp.add_argument("--weights", metavar="FILE", help=".npz, .safetensors, a PyTorch .pt/.pth/.bin or "
                            "a Hugging Face model folder (docs/weights.md); without it, random weights from --seed")
        sp.add_argument("--weights-prefix", metavar="PREFIX", help="only the tensors named PREFIX..., without it "
                        "(a sub-module of a bigger checkpoint)")
        sp.add_argument("--allow-nonfinite", action="store_true", help="accept NaN and infinite weights")

    def seed(sp, what):
        sp.add_argument("--seed", type=_seed, default=0, help=f"seed of {what}")

    v = sub.add_parser("validate", help="check a spec: shapes, params, MACs")
    common(v, many=True)
    v.add_argument("--json", action="store_true", help="print the JSON report (docs/report.schema.json)")
    v.add_argument("--depth", type=int, metavar="N", help="one row per block call N path levels down, with its "
                   "share of the params and MACs; 0 prints the totals only (default: a row per op)")
    v.add_argument("--input-shapes", action="store_true", help="a column with the shape flowing into each row")
    grad_option(v)
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("run", help="run a spec on random or given inputs")
    common(r)
    src = r.add_mutually_exclusive_group()
    src.add_argument("--inputs", metavar="FILE.npz", help="the inputs, one array per input name; - reads .npz "
                     "from standard input")
    src.add_argument("--random", action="store_true", help="random inputs (the default)")
    weights_options(r)
    seed(r, "the random inputs and weights")
    r.add_argument("-o", "--output", metavar="OUT.npz", help="the outputs, as .npz or .safetensors (by the extension); "
                   "- writes .npz to standard output")
    r.add_argument("--backend", choices=["numpy", "onnxruntime"], default="numpy", help="what runs the network")
    r.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: onnxruntime's CUDA provider")
    r.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="run the graph as written, without the NumPy back end's plan-time rewrites")
    r.add_argument("--profile", action="store_true", help="run again and print the time per op and per node "
                   "(the NumPy back end's timings, or onnxruntime's profiler)")
    r.add_argument("--max-memory", type=_size, default=DEFAULT_MAX_MEMORY, metavar="SIZE",
                   help="refuse runs estimated to need more (e.g. 8G, 512M; 'none' for no limit; "
                        "default: three quarters of the RAM)")
    r.add_argument("--max-compute", type=_count, default=DEFAULT_MAX_MACS, metavar="MACS",
                   help="refuse NumPy runs of more multiply-accumulates (e.g. 10T, 500G; 'none' for no limit; "
                        "default: 10T)")
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("export", help="export to ONNX")
    common(e)
    e.add_argument("-o", "--output", metavar="FILE.onnx", help="the model; - writes it to standard output")
    weights_options(e)
    seed(e, "the random weights")
    e.add_argument("--opset", type=int, default=17, help="the ONNX opset, 17 to 21")
    e.add_argument("--external-data", action="store_true",
                   help="weights in FILE.onnx.data beside the model (automatic above 2 GB)")
    grad_option(e)
    e.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                   help="the precision of the weights and the compute (default: float32)")
    e.add_argument("--io-dtype", choices=["float32", "float16"],
                   help="with --dtype float16, the float inputs' and outputs' dtype (default: float32)")
    e.add_argument("--no-fold-batch-norm", dest="fold_batch_norm", action="store_false",
                   help="keep batch norm as its own node instead of folding it into the conv before it")
    e.add_argument("--keep-zero-states", dest="drop_zero_states", action="store_false",
                   help="pass a recurrent op its all-zero initial states instead of leaving them out")
    e.add_argument("--no-fold-constants", dest="fold_constants", action="store_false",
                   help="keep the nodes that read only constants (shape arithmetic, weight splits)")
    e.add_argument("--triton-repo", metavar="DIR", help="write a Triton model repository instead of -o: "
                   "DIR/NAME/1/model.onnx and DIR/NAME/config.pbtxt (docs/serving.md)")
    e.add_argument("--max-batch-size", type=int, default=32, metavar="N",
                   help="with --triton-repo, the largest batch Triton may form (default: 32)")
    e.add_argument("--train", metavar="CONFIG", help="export one training step by this training config: inputs a "
                   "batch, the weights, the optimizer state; outputs the loss, new weights, new state")
    e.set_defaults(func=cmd_export)

    w = sub.add_parser("init-weights", help="write initial weights to .npz or .safetensors")
    common(w)
    w.add_argument("-o", "--output", required=True, metavar="FILE.npz", help="FILE.npz or FILE.safetensors; "
                   "- writes .npz to standard output")
    seed(w, "the weights")
    w.set_defaults(func=cmd_init_weights)

    c = sub.add_parser("weights", help="report how a weight file fits a spec: matched, missing, unexpected, mis-shaped")
    common(c)
    c.add_argument("file", metavar="FILE", help="a weight file or Hugging Face model folder")
    weights_options(c, file=False)
    c.add_argument("--json", action="store_true", help="print the JSON report (docs/report.schema.json), "
                   "every mismatch listed")
    c.set_defaults(func=cmd_weights)

    r = sub.add_parser("render", help="draw a spec: Mermaid, Graphviz DOT, or SVG, PNG, PDF")
    common(r)
    r.add_argument("--format", choices=FORMATS, help="mermaid, dot, or svg, png, pdf (laid out by Graphviz's dot); "
                   "default: what -o's extension names (.mmd .dot .gv .svg .png .pdf), else mermaid")
    level = r.add_mutually_exclusive_group()
    level.add_argument("--depth", type=int, default=0, metavar="N",
                       help="open N levels of block calls as subgraphs (default 0: one box per top-level call)")
    level.add_argument("--expand", action="store_true", help="open every block call, down to the primitive ops")
    r.add_argument("-o", "--output", metavar="FILE", help="write to FILE (atomically) instead of standard output")
    grad_option(r)
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
        files = [[p for p in (getattr(args, k, None) for k in keys) if p and not is_stdio(p)]
                 for keys in (("spec", "weights", "inputs"), ("output",))]
        with command(*files):
            return args.func(args)
    except SpecError as e:
        print(e.render(), file=sys.stderr)
        _json_error(args, e)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (`graphnet validate ... | head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as e:
        where = getattr(e, "filename", None) or "<output>"
        print(f"{where}:1:1: error: {e.strerror or e}", file=sys.stderr)
        _json_error(args, SpecError.at(Location(str(where)), str(e.strerror or e)))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _json_error(args, error: SpecError) -> None:
    """With --json, a command that fails as a whole says so in its JSON report too (the errors of
    one spec among several are in that spec's entry)."""
    if getattr(args, "json", False):
        from .commands.report import dumps, report
        extra = {"specs": []} if args.command == "validate" else {"spec": getattr(args, "spec", None)}
        print(dumps(report(args.command, False, error, **extra)))


if __name__ == "__main__":
    sys.exit(main())
