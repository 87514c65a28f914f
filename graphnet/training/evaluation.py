"""Evaluation: the objective in eval mode (the network and its losses, no gradients) over a data
set in batches, and its metrics."""

from __future__ import annotations

from .config import Resolved
from .data import Dataset
from .metrics import Metrics
from .objective import Objective, objective
from .runner import Runner


def metrics_of(net, obj: Objective, weights: dict, data: Dataset, names: list[str], batch_size: int) -> dict[str, float]:
    metrics = Metrics(names, obj.targets)
    runner = Runner(obj.eval, weights, "numpy")
    for batch in data.batches(batch_size):
        feed = net.feed({k: batch[k] for k in net.graph.inputs}, data.source)
        out = runner({k: batch[k] for k in obj.eval.inputs}, feed.dims)
        metrics.add(batch, out, len(next(iter(batch.values()))))
    return metrics.values()


def evaluate(net, resolved: Resolved, weights: dict, read_data) -> tuple[dict[str, float], dict]:
    """(metrics, losses) of `weights` on the data `read_data(losses, locs)` returns."""
    obj = objective(net, resolved)
    data = read_data(obj.losses, {o: resolved.loc("loss") for o in obj.losses})
    return metrics_of(net, obj, weights, data, resolved.config.metrics, resolved.config.batch_size), obj.losses
