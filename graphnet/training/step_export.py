"""`graphnet export SPEC --train CONFIG -o step.onnx`: one training step (forward, losses,
backward, the optimizer's update) as a standard ONNX model that onnxruntime runs with no training
runtime. Its inputs are the spec's inputs and the targets, every trained param by name, the
optimizer state (`state:NAME:KEY`, `state:step`), the learning rate of each param group (`lr`,
`lr:1`...), the running statistics and dropout masks of train mode; its outputs the loss
(`loss`, `loss:OUTPUT`), the network's outputs, and the new values (`new:NAME`, `new:state:...`,
and each running statistic under its param's name)."""

from __future__ import annotations

import dataclasses
import json

from ..backends.onnx_export import export
from ..errors import SpecError
from .config import load_config
from .lbfgs import LBFGS
from .loop import Trainer


def export_step(net, config_path: str, weights: dict, output: str, opset: int = 17) -> int:
    resolved = load_config(config_path)
    if isinstance(resolved.optimizer, LBFGS):
        raise SpecError.at(resolved.loc("optimizer"), "lbfgs re-evaluates its loss within a step, driven from the "
                           "host: it has no one-step graph to export; choose another optimizer")
    trainer = Trainer(net, resolved, weights, max_memory=None)
    graph = trainer.graph
    step = {"optimizer": type(resolved.optimizer).name, "params": trainer.trained}
    graph = dataclasses.replace(graph, metadata={**graph.metadata, "graphnet.training_step": json.dumps(step)})
    model = export(graph, trainer.fixed, output, opset)
    print(f"wrote {output} (one {type(resolved.optimizer).name} step: {len(model.graph.input)} inputs, "
          f"{len(model.graph.output)} outputs, opset {opset})")
    return 0
