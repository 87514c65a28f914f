"""One training step as one graph: (batch, weights, optimizer state, learning rates) -> (loss,
outputs, new weights, new state). From a gradient graph of the objective (the network and its
losses, differentiated with respect to the trained params with the cotangent of `loss` an input)
and an optimizer's update graph: the trained params become inputs, the loss's cotangent the
constant 1, and the update reads the gradients where the gradient graph makes them. The NumPy back
end runs it with one plan per batch size; exported, it is a standard ONNX model."""

from __future__ import annotations

import dataclasses

from ..graph import Graph, Node
from ..ops import OPS
from .optim import Update, grad_name


def gradient_step(grads: Graph, trained: list[str], cotangent: str) -> Graph:
    """`grads` with the `trained` params (and any other param that changes from step to step, such
    as batch norm's running statistics) as inputs, and the loss's `cotangent` input the constant 1:
    what a host-driven optimizer (L-BFGS) evaluates, and what training_step adds the update to."""
    inputs = {k: t for k, t in grads.inputs.items() if k != cotangent}
    trace = (dataclasses.replace(grads.nodes[0].trace[-1], path=cotangent, block=""),) if grads.nodes else ()
    one = Node(cotangent, OPS["constant"](value=1.0, dtype=grads.inputs[cotangent].dtype), (), (cotangent,), trace)
    locs = {k: v for k, v in grads.input_locs.items() if k != cotangent}
    for p in trained:
        inputs[p] = grads.params[p].type
        locs[p] = grads.params[p].loc
    params = {k: v for k, v in grads.params.items() if k not in set(trained)}
    return dataclasses.replace(grads, inputs=inputs, params=params, nodes=[one] + list(grads.nodes), input_locs=locs)


def training_step(grads: Graph, update: Update, gradient_of: dict[str, str], cotangent: str,
                  keep: list[str], carried: tuple[str, ...] = ()) -> Graph:
    """The step graph. `gradient_of`: trained param -> the tensor of `grads` holding its gradient;
    `cotangent`: the input of `grads` that is the loss's cotangent; `keep`: the outputs of `grads`
    the step still gives (the loss, the network's outputs, the new running statistics); `carried`:
    the further params that become inputs, their new values among `keep`."""
    base = gradient_step(grads, list(update.params) + list(carried), cotangent)
    inputs, types, nodes = dict(base.inputs), dict(base.types), list(base.nodes)
    trained = set(update.params)
    taken = set(types)
    rename = {grad_name(p): gradient_of[p] for p in update.params}
    for name, t in update.graph.inputs.items():
        if name in rename:
            continue
        if name in taken and name not in trained:
            raise ValueError(f"the update's input '{name}' is a tensor of the gradient graph")
        rename[name] = name
        inputs.setdefault(name, t)
        types.setdefault(name, t)
    for node in update.graph.nodes:
        for t in node.outputs:
            fresh, n = t, 1
            while fresh in taken:
                n += 1
                fresh = f"{t}#{n}"
            rename[t] = fresh
            taken.add(fresh)
            types[fresh] = update.graph.types[t]
        nodes.append(Node(rename[node.outputs[0]], node.op, tuple(rename[t] for t in node.inputs),
                          tuple(rename[t] for t in node.outputs), node.trace))
    outputs = {k: grads.outputs[k] for k in keep}
    outputs.update({k: rename[v] for k, v in update.graph.outputs.items()})
    locs = {**{k: v for k, v in update.graph.input_locs.items() if k in inputs}, **base.input_locs}
    return dataclasses.replace(base, inputs=inputs, nodes=nodes, types=types, outputs=outputs, input_locs=locs)
