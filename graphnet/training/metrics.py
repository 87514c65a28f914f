"""Metrics over a data set, accumulated batch by batch: the loss (the mean over examples of each
batch's loss, weighted by the batch's size), and for a classifier's output, accuracy and top-k
accuracy against class labels (or the most probable class of probability targets)."""

from __future__ import annotations

import numpy as np

from .config import METRIC


class Metrics:
    """Sums over the batches seen; `values()` gives each metric's mean."""

    def __init__(self, names: list[str], outputs: dict[str, str]):
        self.names = names
        self.outputs = outputs            # output -> its target's name, for the classifiers
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def _add(self, key: str, total: float, count: int) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + total
        self.counts[key] = self.counts.get(key, 0) + count

    def add(self, batch: dict[str, np.ndarray], results: dict[str, np.ndarray], size: int) -> None:
        if "loss" in self.names:
            self._add("loss", float(results["loss"]) * size, size)
        for name in self.names:
            match = METRIC.match(name)
            if name == "loss":
                continue
            k = 1 if name == "accuracy" else int(match.group(2))
            for out, target in self.outputs.items():
                key = name if len(self.outputs) == 1 else f"{out}.{name}"
                hits, count = top_k_hits(results[out], batch[target], k)
                self._add(key, hits, count)

    def values(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}


def top_k_hits(scores: np.ndarray, target: np.ndarray, k: int, ignore_index: int = -100) -> tuple[int, int]:
    """How many examples have their class among the `k` highest scores along axis 1, of how many
    (labels equal to `ignore_index` are not counted)."""
    labels = target if target.dtype.kind in "iu" else np.argmax(target, axis=1)
    scores = np.moveaxis(scores, 1, -1)
    keep = labels != ignore_index
    k = min(k, scores.shape[-1])
    top = np.argpartition(-scores, k - 1, axis=-1)[..., :k] if k < scores.shape[-1] else None
    hit = np.ones(labels.shape, bool) if top is None else (top == labels[..., None]).any(axis=-1)
    return int((hit & keep).sum()), int(keep.sum())
