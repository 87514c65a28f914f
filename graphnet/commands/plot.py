"""`graphnet plot FILE.jsonl -o curves.png|svg`: the loss and metric curves of a training log
(`graphnet train --log`), drawn with matplotlib, an optional extra (`pip install graphnet[plot]`)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("plot", help="draw the loss and metric curves of a training log (.jsonl)")
    p.add_argument("log", metavar="FILE.jsonl", help="a log written by `graphnet train --log`")
    p.add_argument("-o", "--output", required=True, metavar="curves.png", help=".png, .svg or .pdf")
    p.set_defaults(func=cmd_plot)


FORMATS = (".png", ".svg", ".pdf")


def cmd_plot(args) -> int:
    from pathlib import Path

    from ..errors import Location, SpecError
    from ..files import atomic_write, check_output
    from ..training.logs import read_log
    suffix = Path(args.output).suffix.lower()
    if suffix not in FORMATS:
        raise SpecError.at(Location("<command line>"), f"'{args.output}': plots are written as "
                           f"{', '.join(FORMATS)}, chosen by the extension")
    check_output(args.output)
    steps, epochs = read_log(args.log)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError.at(Location("<command line>"), "graphnet plot draws with matplotlib, which is not "
                           "installed: pip install 'graphnet[plot]'") from None
    metrics = sorted({k.split("_", 1)[1] for e in epochs for k in e if k.startswith(("train_", "val_"))} - {"loss"})
    fig, axes = plt.subplots(1, 1 + bool(metrics), figsize=(11 if metrics else 6, 4), squeeze=False)
    loss = axes[0][0]
    if steps:
        per_epoch = max(1, steps[-1]["step"] // max(1, epochs[-1]["epoch"])) if epochs else 1
        loss.plot([s["step"] / per_epoch for s in steps], [s["loss"] for s in steps], lw=0.6, alpha=0.4, label="step loss")
    for split in ("train", "val"):
        points = [(e["epoch"], e[f"{split}_loss"]) for e in epochs if f"{split}_loss" in e]
        if points:
            loss.plot(*zip(*points), marker="o", label=f"{split} loss")
    loss.set_xlabel("epoch")
    loss.set_ylabel("loss")
    loss.legend()
    if metrics:
        ax = axes[0][1]
        for split in ("train", "val"):
            for m in metrics:
                points = [(e["epoch"], e[f"{split}_{m}"]) for e in epochs if f"{split}_{m}" in e]
                if points:
                    ax.plot(*zip(*points), marker="o", label=f"{split} {m}")
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    with atomic_write(args.output) as f:
        fig.savefig(f, format=suffix[1:])
    plt.close(fig)
    print(f"wrote {args.output} ({len(epochs)} epochs, {len(steps)} steps)")
    return 0
