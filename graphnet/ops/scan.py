"""scan: a block's expanded graph applied step by step along an axis, carrying state.

This is how recurrent cells written from primitives (the notes' LSTM and GRU formulas) become
layers. The body is itself a Graph IR; the op's inputs are the initial carried states, then the
sequences, then the params the body reads, so the outer graph shows every dependency. It lowers to
ONNX Scan, whose body reads those params from the enclosing graph's initializers.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import PrivateAttr

from ..dims import Dim
from .base import Op, ShapeError, TensorType, axis_index, nbytes, ports


class Scan(Op):
    """A block's graph applied at each step along `axis`, carrying state; made by a `scan:` node."""

    name = "scan"
    onnx = "Scan"
    inputs = ports(variadic="xs")
    takes_body: ClassVar[bool] = True    # examples come from specs (tests/ops/test_scan.py)
    body: Any                            # graphnet.graph.Graph: inputs are carried, then step slices
    carried: tuple[str, ...]             # block input names carried from step to step
    sequences: tuple[str, ...]           # block input names sliced along the axis
    stacked: tuple[str, ...]             # block outputs stacked along the axis
    params: tuple[str, ...] = ()
    axis: int = 1
    reverse: bool = False
    binding: dict[str, int] = {}
    optimize: bool = False               # rewrite the body too (set by backends/rewrites.py)
    _body_plan: Any = PrivateAttr(default=None)   # (the params it was made for, the body's plan)

    def output_names(self) -> tuple[str, ...]:
        return self.carried + self.stacked

    def body_inputs(self) -> list[str]:
        return list(self.body.inputs)

    def infer(self, *xs: TensorType) -> tuple[TensorType, ...]:
        nc, ns = len(self.carried), len(self.sequences)
        if len(xs) != nc + ns + len(self.params):
            raise ShapeError(f"scan expects {nc + ns + len(self.params)} inputs, got {len(xs)}")
        body_types = [self.body.inputs[n] for n in self.body_inputs()]
        length = None
        for name, x, want in zip(self.carried + self.sequences, xs, body_types):
            if name in self.sequences:
                axis = axis_index(self.axis, x.rank)
                if length is not None and x.shape[axis] != length:
                    raise ShapeError(f"sequences differ in length along axis {self.axis}: {length} and {x.shape[axis]}")
                length = x.shape[axis]
                x = TensorType(x.dtype, x.shape[:axis] + x.shape[axis + 1:])
            if x != want:
                raise ShapeError(f"'{name}' is {x} per step but the body was made for {want}")
        outs = [self.body.types[self.body.outputs[n]] for n in self.carried]
        for n in self.stacked:
            t = self.body.types[self.body.outputs[n]]
            axis = axis_index(self.axis, t.rank + 1)
            outs.append(TensorType(t.dtype, t.shape[:axis] + (length,) + t.shape[axis:]))
        return tuple(outs)

    def bind(self, binding: dict[str, int]) -> "Scan":
        return self.model_copy(update={"binding": dict(binding)})

    def compute(self, *xs):
        from ..backends.numpy_backend import compile_plan, run_plan
        nc, ns = len(self.carried), len(self.sequences)
        names = self.body_inputs()
        state = list(xs[:nc])
        sequences = xs[nc:nc + ns]
        params = xs[nc + ns:]
        # a plan's params are the same arrays on every run: compile the body (and fold it) once
        cached = self._body_plan
        if cached is None or len(cached[0]) != len(params) or any(a is not b for a, b in zip(cached[0], params)):
            cached = self._body_plan = (params, compile_plan(self.body, self.binding, dict(zip(self.params, params)),
                                                              self.optimize))
        plan = cached[1]
        length = sequences[0].shape[self.axis]
        steps: dict[str, list] = {n: [None] * length for n in self.stacked}
        leads = [(slice(None),) * (self.axis % s.ndim) for s in sequences]
        for t in (range(length - 1, -1, -1) if self.reverse else range(length)):
            slices = [s[lead + (t,)] for s, lead in zip(sequences, leads)]
            out = run_plan(plan, dict(zip(names, state + slices)))
            state = [out[n] for n in self.carried]
            for n in self.stacked:
                steps[n][t] = out[n]
        stacked = [np.stack(steps[n], axis=self.axis) for n in self.stacked]
        return tuple(state + stacked)

    def to_onnx(self, b, *xs):
        from ..backends.onnx_export import lower_graph
        outputs = {f"{self.body.name}/next/{n}": self.body.outputs[n] for n in self.carried}
        outputs.update({f"{self.body.name}/step/{n}": self.body.outputs[n] for n in self.stacked})
        body = lower_graph(self.body, b.opset, outputs, f"{self.body.name}/body")
        ns, no = len(self.sequences), len(self.stacked)
        rank = b.type_of(xs[len(self.carried)]).rank
        axis = self.axis % rank
        out_axis = [axis_index(self.axis, self.body.types[self.body.outputs[n]].rank + 1) for n in self.stacked]
        outs = b.node("Scan", list(xs[:len(self.carried) + ns]), n_out=len(self.carried) + no, body=body,
                      num_scan_inputs=ns, scan_input_axes=[axis] * ns, scan_output_axes=out_axis,
                      scan_input_directions=[int(self.reverse)] * ns,
                      scan_output_directions=[int(self.reverse)] * no)
        return (outs,) if isinstance(outs, str) else tuple(outs)

    def scratch_bytes(self, ins, outs) -> int:
        # one step's peak, plus the per-step outputs held until they are stacked (the outputs' size)
        from ..backends.numpy_backend import peak_bytes
        return peak_bytes(self.body, self.binding) + sum(nbytes(t) for t in outs)

    def macs(self, ins, outs) -> Dim:
        seq = ins[len(self.carried)]
        return self.body.total_macs() * seq.shape[axis_index(self.axis, seq.rank)]
