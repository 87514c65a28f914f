"""Whole-graph inference reproduces the types expansion assigned, and names a broken node."""

from pathlib import Path

import pytest

import graphnet as gn
from graphnet.graph import Node
from graphnet.infer import infer_types
from graphnet.ops import ShapeError
from graphnet.ops.shape import Reshape

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.mark.parametrize("name", sorted(p.stem for p in SPECS.glob("*.yaml")))
def test_reinference_matches_expansion(name):
    graph = gn.load(SPECS / f"{name}.yaml").graph
    assert infer_types(graph) == graph.types


def test_a_broken_node_is_named():
    graph = gn.load(SPECS / "mlp.yaml").graph
    bad = graph.nodes[4]
    graph.nodes[4] = Node(bad.name, Reshape(shape=[3, 7]), bad.inputs, bad.outputs, bad.trace)
    with pytest.raises(ShapeError, match=r"node 'fc2.weight_t' \(reshape\): cannot reshape \[1024, 1024\]"):
        infer_types(graph)
