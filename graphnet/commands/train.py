"""`graphnet train SPEC --data TRAIN.npz [--config TRAIN.yaml] [flags] -o OUT.safetensors|.npz`:
train a spec on a data file by a training config (graphnet/training/config.py), every config key
also a flag, the flags over the file. Progress is a bar per epoch on a terminal, one line per epoch
otherwise; `--log FILE.jsonl` records every step and epoch; checkpoints follow the config's policy
and `--resume` continues from one."""

from __future__ import annotations

import sys

# flag -> (its dotted config key, how the flag's text becomes the value)
FLAGS = {
    "loss": ("loss", str), "target": ("loss.target", str), "optimizer": ("optimizer", str),
    "lr": ("optimizer.lr", float), "momentum": ("optimizer.momentum", float),
    "weight_decay": ("optimizer.weight_decay", float), "schedule": ("schedule", str),
    "clip_grad_norm": ("clip_grad_norm", float), "epochs": ("epochs", int), "batch_size": ("batch_size", int),
    "shuffle": ("shuffle", None), "seed": ("seed", int), "metrics": ("metrics", None),
    "checkpoint": ("checkpoint.path", str), "checkpoint_every": ("checkpoint.every", int),
}


def register(sub) -> None:
    p = sub.add_parser("train", help="train a spec on a data file (.npz) by a training config")
    p.add_argument("spec", metavar="SPEC", help="the spec to train")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE", help="bind or override a dim")
    p.add_argument("--data", required=True, metavar="TRAIN.npz", help="one array per spec input, plus the targets")
    p.add_argument("--val", metavar="VAL.npz", help="validation data (config: validation.file)")
    p.add_argument("--val-split", type=float, metavar="SHARE", help="hold out this share of --data (config: validation.split)")
    add_config_flags(p)
    p.add_argument("--weights", metavar="INIT", help="initial weights (any format graphnet reads); default: the spec's inits")
    p.add_argument("-o", "--output", required=True, metavar="OUT.safetensors", help="the trained weights, .npz or .safetensors")
    p.add_argument("--log", metavar="FILE.jsonl", help="every step's and epoch's metrics, one JSON object a line")
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint written by an earlier run")
    p.add_argument("--backend", choices=["numpy", "onnxruntime"], default="numpy",
                   help="where the training step runs: the NumPy back end, or its exported ONNX model on onnxruntime")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="with --backend onnxruntime, its provider (default: cpu)")
    p.add_argument("--max-memory", type=_size, default="default", metavar="SIZE",
                   help="refuse a step estimated to need more (e.g. 8G; 'none'; default: three quarters of the RAM)")
    p.set_defaults(func=cmd_train)


def add_config_flags(p, training: bool = True) -> None:
    """The config's keys as flags (and --set for any key); also used by `evaluate` and `export --train`."""
    p.add_argument("--config", metavar="TRAIN.yaml", help="the training config (docs/training.md)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, dotted, the value as YAML: --set optimizer.betas=[0.9,0.99]")
    p.add_argument("--loss", metavar="NAME", help="the std loss (config: loss)")
    p.add_argument("--target", metavar="NAME", help="the data array the loss compares with (config: loss.target)")
    p.add_argument("--batch-size", type=int, metavar="N", help="config: batch_size")
    p.add_argument("--metrics", metavar="LIST", help="comma-separated: loss,accuracy,top5 (config: metrics)")
    if not training:
        return
    p.add_argument("--optimizer", metavar="NAME", help="sgd, adam, adamw, ... (config: optimizer)")
    p.add_argument("--lr", type=float, metavar="X", help="config: optimizer.lr")
    p.add_argument("--momentum", type=float, metavar="X", help="config: optimizer.momentum")
    p.add_argument("--weight-decay", type=float, metavar="X", help="config: optimizer.weight_decay")
    p.add_argument("--schedule", metavar="NAME", help="step, exponential, cosine, linear_warmup (config: schedule)")
    p.add_argument("--clip-grad-norm", type=float, metavar="X", help="config: clip_grad_norm")
    p.add_argument("--epochs", type=int, metavar="N", help="config: epochs")
    p.add_argument("--shuffle", action="store_true", default=None, help="config: shuffle")
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="config: shuffle, off")
    p.add_argument("--seed", type=int, metavar="N", help="initial weights, shuffling, dropout (config: seed)")
    p.add_argument("--checkpoint", metavar="CKPT.npz", help="config: checkpoint.path")
    p.add_argument("--checkpoint-every", type=int, metavar="EPOCHS", help="config: checkpoint.every")


def _size(text: str):
    from ..network import DEFAULT_MAX_MEMORY
    from .arguments import size
    return DEFAULT_MAX_MEMORY if text == "default" else size(text)


def overrides(args) -> list[tuple[str, object]]:
    """The flags given, as (dotted config key, value), --set first so that a named flag wins."""
    from ..training.config import parse_setting
    out = [parse_setting(s) for s in args.set]
    for flag, (key, _) in FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if flag == "metrics":
            value = [m.strip() for m in value.split(",") if m.strip()]
        out.append((key, value))
    if getattr(args, "val", None):
        out.append(("validation", {"file": args.val}))
    if getattr(args, "val_split", None) is not None:
        out.append(("validation", {"split": args.val_split}))
    return out


def load_setup(args):
    """The network, the resolved config and the losses, as every training command needs them."""
    from ..network import load
    from ..training.config import load_config
    from .arguments import dims
    net = load(args.spec, dims(args.dim))
    resolved = load_config(args.config, overrides(args))
    return net, resolved


def initial_weights(net, path: str | None, seed: int) -> dict:
    from ..weights import load_weights, weights_report
    if not path:
        return net.init_weights(seed)
    report = weights_report(net.graph, load_weights(path), path)
    if not report.ok:
        raise report.error()
    return report.weights


def refuse_clashing_outputs(output: str, checkpoint: str | None, log: str | None, resume: str | None) -> None:
    """Each output its own file, none an input (files.check_output), and none the checkpoint
    resumed from but the checkpoint itself, whose atomic write keeps its last complete version."""
    import os

    from ..errors import Location, SpecError
    from ..files import check_output
    claimed = {os.path.realpath(resume): "the checkpoint resumed from"} if resume else {}
    for role, path in {"the output": output, "the checkpoint": checkpoint, "the log": log}.items():
        if not path:
            continue
        check_output(path)
        other = claimed.setdefault(os.path.realpath(path), role)
        if other != role and (role, other) != ("the checkpoint", "the checkpoint resumed from"):
            raise SpecError.at(Location("<command line>"), f"'{path}' is both {other} and {role}")


def cmd_train(args) -> int:
    import json

    from ..errors import Location, SpecError
    from ..files import note_input
    from ..training.checkpoint import load_checkpoint
    from ..training.data import load_data
    from ..training.loop import Trainer
    from ..weights import weight_writer
    net, resolved = load_setup(args)
    cfg = resolved.config
    for path in (args.data, cfg.validation.file if cfg.validation else None, args.weights):
        if path:
            note_input(path)        # no output may replace what the command reads
    write = weight_writer(args.output, Location("<command line>"))
    refuse_clashing_outputs(args.output, cfg.checkpoint.path, args.log, args.resume)
    losses = resolved.losses_for(list(net.graph.outputs))
    locs = {o: resolved.loc("loss") for o in losses}
    train = load_data(args.data, net, losses, locs)        # refused before anything is built or run
    val = None
    if cfg.validation is not None and cfg.validation.file:
        val = load_data(cfg.validation.file, net, losses, locs)
    elif cfg.validation is not None:
        import numpy as np
        train, val = train.split(cfg.validation.split, np.random.default_rng(cfg.seed))
    trainer = Trainer(net, resolved, initial_weights(net, args.weights, cfg.seed), backend=args.backend,
                      device=args.device, max_memory=args.max_memory)
    meta = {"spec": net.name, "optimizer": type(resolved.optimizer).name}
    if args.resume:
        trainer.restore(load_checkpoint(args.resume, meta))
        per_epoch = -(-train.size // cfg.batch_size)
        if trainer.position.batch > per_epoch:
            raise SpecError.at(Location(args.resume), f"this checkpoint stopped after batch {trainer.position.batch} "
                               f"of an epoch, where this run's epochs have {per_epoch} (other data or batch size?)")
        if trainer.position.epoch >= cfg.epochs:
            raise SpecError.at(Location(args.resume), f"this checkpoint has done {trainer.position.epoch} epochs, "
                               f"all the {cfg.epochs} the config asks for (raise --epochs to train on)")
    log = open(args.log, "w") if args.log else None      # a log grows as training goes: not written atomically

    def record(entry):
        if log:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    def on_epoch(entry):
        record(entry)
        shown = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items() if k != "kind")
        print(shown, flush=True)

    checkpoint = (lambda: trainer.save(cfg.checkpoint.path, meta)) if cfg.checkpoint.path else None
    try:
        trainer.fit(train, val, on_step=record if log else None, on_epoch=on_epoch, checkpoint=checkpoint,
                    progress=_progress_bar() if sys.stderr.isatty() else None)
    finally:
        if log:
            log.close()
    write(args.output, trainer.all_weights())
    print(f"wrote {args.output} ({len(trainer.all_weights())} params, {trainer.position.steps} steps)")
    return 0


def _progress_bar():
    from tqdm import tqdm

    def bar(epoch: int, total: int, done: int):
        return tqdm(total=total, initial=done, desc=f"epoch {epoch + 1}", leave=False, file=sys.stderr)
    return bar
