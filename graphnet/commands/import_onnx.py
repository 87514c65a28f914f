"""`graphnet import MODEL.onnx -o SPEC.yaml [--weights-out W.safetensors|.npz] [--flat]`: an ONNX
model as a readable spec (blocks and std calls recovered unless --flat) and its weights. The spec is
loaded and checked before anything is written; each file is written whole or not at all."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("import", help="turn an ONNX model into a spec (and its weights)")
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model to read")
    p.add_argument("-o", "--output", required=True, metavar="SPEC.yaml", help="the spec to write")
    p.add_argument("--weights-out", metavar="W.safetensors|W.npz",
                   help="write the model's weights here, by the spec's param names")
    p.add_argument("--flat", action="store_true", help="one op per node: no blocks recovered")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..expand import expand
    from ..files import atomic_write
    from ..load import load_program
    from ..onnx_import import import_model
    from ..weights import weight_writer
    result = import_model(args.model, flat=args.flat)
    graph = expand(load_program(args.output, result.text, trusted=True))     # a spec that loads, or nothing
    if args.weights_out:
        weight_writer(args.weights_out)(args.weights_out, result.weights)
    with atomic_write(args.output) as f:
        f.write(result.text.encode())
    lines = result.text.count("\n")
    renamed = f", {len(result.names)} names changed to fit the spec" if result.names else ""
    print(f"wrote {args.output} ({lines} lines, {len(graph.nodes)} ops, {graph.param_count():,} params{renamed})"
          + (f" and {args.weights_out}" if args.weights_out else ""))
    return 0
