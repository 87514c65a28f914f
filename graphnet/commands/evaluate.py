"""`graphnet evaluate SPEC --weights W --data TEST.npz [--config TRAIN.yaml]`: the loss and the
metrics of trained weights on a data file, in eval mode, on the NumPy back end."""

from __future__ import annotations


def register(sub) -> None:
    from .train import add_config_flags
    p = sub.add_parser("evaluate", help="the loss and metrics of weights on a data file (.npz)")
    p.add_argument("spec", metavar="SPEC", help="the spec whose trained weights are evaluated")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE", help="bind or override a dim")
    p.add_argument("--weights", required=True, metavar="W", help="the weights (any format graphnet reads)")
    p.add_argument("--data", required=True, metavar="TEST.npz", help="one array per spec input, plus the targets")
    add_config_flags(p, training=False)
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    import json

    from ..training.data import load_data
    from ..training.evaluation import evaluate
    from .train import initial_weights, load_setup
    net, resolved = load_setup(args)
    weights = initial_weights(net, args.weights, 0)
    values, losses = evaluate(net, resolved, weights, lambda losses, locs: load_data(args.data, net, losses, locs))
    if args.json:
        print(json.dumps(values))
    else:
        for k, v in values.items():
            print(f"{k}: {v:.6g}")
    return 0
