"""The objective: the network's graph with, for each output that has a loss, that std loss block
(graphnet/std/losses.yaml) applied to the output and its target, and their weighted sum as the
output `loss`. The loss block is expanded from a spec written here, so its args are checked by the
block's own declarations; a mistake in them is reported at the config's loss key."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
import tempfile
from pathlib import Path

from ..dims import Dim
from ..errors import Location, Note, SpecError
from ..expand import expand
from ..load import load_program
from ..graph import Graph, Node
from ..transforms.emit import GraphWriter
from ..types import FLOAT_DTYPES, TensorType
from .data import CLASS_LOSSES

TOTAL = "loss"
# only these reduce a batch to the one number a step descends on
REDUCTIONS = ("mean", "sum")


def loss_output(output: str) -> str:
    return f"loss:{output}"


def target_type(loss, out: TensorType) -> TensorType:
    """The target a loss compares output type `out` with: class indices (int64, the output's shape
    less its class axis) for the class losses, else the output's own type."""
    if loss.name in CLASS_LOSSES:
        return TensorType("int64", out.shape[:1] + out.shape[2:])
    return out


def with_losses(graph: Graph, losses: dict, locs: dict[str, Location]) -> Graph:
    """`graph` with an input per target, an output `loss:<output>` per loss and the output `loss`,
    their weighted sum. `losses`: output -> LossSpec; `locs`: output -> where its loss is written."""
    inputs, types, nodes = dict(graph.inputs), dict(graph.types), list(graph.nodes)
    outputs, input_locs = dict(graph.outputs), dict(graph.input_locs)
    terms = []
    for out, spec in losses.items():
        where = locs.get(out, Location(graph.source))
        reduction = spec.args.get("reduction", "mean")
        if reduction not in REDUCTIONS:
            raise SpecError.at(where, f"the loss of output '{out}' has reduction '{reduction}'; training needs "
                               "one number per batch: mean or sum")
        out_type = graph.types[graph.outputs[out]]
        want = target_type(spec, out_type)
        if spec.target in graph.types and spec.target not in inputs:
            raise SpecError.at(where, f"target '{spec.target}' is the name of a tensor of the network; name it otherwise")
        if spec.target in inputs and inputs[spec.target] != want:
            raise SpecError.at(where, f"target '{spec.target}' is {inputs[spec.target]} for another loss or an input, "
                               f"but output '{out}' needs {want}")
        inputs[spec.target] = types[spec.target] = want
        input_locs.setdefault(spec.target, where)
        loss = _loss_graph(spec, out_type, want, where)
        prefix = f"loss:{out}/"
        rename = {"input": graph.outputs[out], "target": spec.target}
        named = {t: rename.get(t, prefix + t) for t in loss.types}
        symbols = _symbols(loss, out_type)
        for t, ty in loss.types.items():
            if t not in rename:
                types[named[t]] = TensorType(ty.dtype, tuple(d.subs(symbols) for d in ty.shape))
        for node in loss.nodes:
            trace = node.trace[:-1] + (dataclasses.replace(node.trace[-1], loc=where),) if node.trace else ()
            nodes.append(Node(prefix + node.name, node.op, tuple(named[t] if t is not None else None for t in node.inputs),
                              tuple(named[t] for t in node.outputs), trace))
        outputs[loss_output(out)] = named[loss.outputs["loss"]]
        terms.append((named[loss.outputs["loss"]], spec.weight))
    if TOTAL in outputs:
        raise SpecError.at(graph.output_locs.get(TOTAL, Location(graph.source)),
                           "the network has an output named 'loss', the name of the training loss")
    w = GraphWriter.extending(dataclasses.replace(graph, inputs=inputs, types=types, nodes=nodes), "total_loss")
    total = None
    for tensor, weight in terms:
        term = tensor if weight == 1.0 else w.mul(tensor, weight)
        total = term if total is None else w.add(total, term)
    if len(terms) == 1 and total == terms[0][0]:
        total = w.op("identity", total, what="total")
    outputs[TOTAL] = total
    locs_out = {**graph.output_locs, **{loss_output(o): locs.get(o, Location(graph.source)) for o in losses}}
    return dataclasses.replace(graph, inputs=inputs, outputs=outputs, nodes=w.nodes, types=w.types,
                               input_locs=input_locs, output_locs=locs_out)


def _dim_text(d: Dim, i: int) -> str | int:
    if d.is_const():
        return int(d.value)
    return str(d) if d.is_symbol() else f"L{i}_"


def _symbols(loss: Graph, out: TensorType) -> dict:
    return {f"L{i}_": d for i, d in enumerate(out.shape) if not (d.is_const() or d.is_symbol())}


def _loss_graph(spec, out: TensorType, target: TensorType, where: Location) -> Graph:
    """The loss block alone, as a graph of inputs `input` and `target` and output `loss`."""
    shape = [_dim_text(d, i) for i, d in enumerate(out.shape)]
    target_shape = shape[:1] + shape[2:] if spec.name in CLASS_LOSSES else shape
    dims = {s: None for s in shape + target_shape if isinstance(s, str)}
    args = {k: v for k, v in spec.args.items()}
    text = json.dumps({
        "graphnet": 1, "name": f"{spec.name}_loss", "use": ["std"], "dims": dims,
        "inputs": {"input": {"shape": shape, "dtype": out.dtype}, "target": {"shape": target_shape, "dtype": target.dtype}},
        "nodes": [{"name": "loss", "block": f"std.{spec.name}", "inputs": ["input", "target"], "args": args}],
        "outputs": {"loss": "loss"}}, indent=1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "loss.yaml"
        path.write_text(text)
        try:
            graph = expand(load_program(path))
        except SpecError as e:
            first = e.diagnostics[0]
            raise SpecError.at(where, f"loss std.{spec.name}: {first.message}",
                               tuple(Note(n.loc, n.message) for n in first.notes if n.loc.file != str(path))) from None
    t = graph.types[graph.outputs["loss"]]
    if t.shape:
        raise SpecError.at(where, f"loss std.{spec.name} gives a {t}, not one number")
    return graph


@dataclass
class Objective:
    """The network with its losses, in train and eval mode, and what the losses compare."""

    train: Graph
    eval: Graph
    losses: dict             # output -> LossSpec
    targets: dict[str, str]  # classifier output -> its target's name (for accuracy)
    extras: object           # train mode's ModeExtras: running statistics, dropout masks


def objective(net, resolved) -> Objective:
    """The objective of `net` under the config's losses (train mode seeded by the config's seed)."""
    from ..transforms.train_mode import apply_mode
    g = net.graph
    losses = resolved.losses_for(list(g.outputs))
    per_output = isinstance(resolved.config.loss, dict) and "name" not in resolved.config.loss
    locs = {o: resolved.loc("loss", o) if per_output else resolved.loc("loss") for o in losses}
    targets = {o: s.target for o, s in losses.items() if s.name in ("cross_entropy", "cross_entropy_probs", "nll_loss")}
    train, extras = apply_mode(g, "train", resolved.config.seed)
    evaluation, _ = apply_mode(g, "eval", resolved.config.seed)
    return Objective(with_losses(train, losses, locs), with_losses(evaluation, losses, locs), losses, targets, extras)


def trained_params(graph: Graph) -> list[str]:
    return [k for k, p in graph.params.items() if p.trainable and p.type.dtype in FLOAT_DTYPES]
