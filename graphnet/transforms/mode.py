"""The session mode of a graph, as a Graph IR -> Graph IR transform: "eval" runs batch_norm on its
running statistics and dropout as the identity; "train" will rewrite them into primitives (batch
statistics, a seeded mask) before autodiff, so their gradients come from those primitives' vjps.

Until that rewrite lands, both modes give the graph as it is (eval semantics)."""

from __future__ import annotations

from ..graph import Graph

MODES = ("train", "eval")


def for_mode(graph: Graph, mode: str) -> Graph:
    """The graph as `mode` runs it (the hook the train-mode rewrite fills)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return graph
