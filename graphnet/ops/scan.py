"""scan: a block's expanded graph applied step by step along an axis, carrying state.

This is how recurrent cells written from primitives (the notes' LSTM and GRU formulas) become
layers. The body is itself a Graph IR; the op's inputs are the initial carried states, then the
sequences, then the params the body reads, so the outer graph shows every dependency. It lowers to
ONNX Scan, whose body reads those params from the enclosing graph's initializers.

The op imports no back end: the NumPy back end hands it an engine when it plans it (`prepare_in`
compiles the body's plan once, into the kernel; `scratch_in` asks for the body plan's peak), and the
ONNX builder lowers the body (`b.subgraph`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from ..dims import Dim
from ..types import FLOAT_DTYPES, nbytes
from .base import Drawn, Engine, NoVjp, Op, ShapeError, TensorType, axis_index, ports
from .recurrent import CellFusion


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
    fuses_to: CellFusion | None = None   # the fused op a scan of this cell is, as the cell declares it
    saved: tuple[str, ...] = ()          # stacked outputs that keep each step's carried states (vjp)

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

    def prepare_in(self, engine: Engine, *shapes):
        # the body's plan is made here, once per plan of the enclosing graph, and lives in the kernel:
        # it is gone with that plan (and its session), and the IR holds nothing of it
        plan, run = engine.compile(self.body, self.binding), engine.run
        nc, ns = len(self.carried), len(self.sequences)
        names = self.body_inputs() + list(self.params)
        axis, reverse, stacked, carried = self.axis, self.reverse, self.stacked, self.carried

        def scan(*xs):
            state = list(xs[:nc])
            # the params after them: the body's plan holds those it had values for, and reads the
            # others (a trained param) from its inputs
            sequences, params = xs[nc:nc + ns], list(xs[nc + ns:])
            length = sequences[0].shape[axis]
            steps: dict[str, list] = {n: [None] * length for n in stacked}
            leads = [(slice(None),) * (axis % s.ndim) for s in sequences]
            for t in (range(length - 1, -1, -1) if reverse else range(length)):
                slices = [s[lead + (t,)] for s, lead in zip(sequences, leads)]
                out = run(plan, dict(zip(names, state + slices + params)))
                state = [out[n] for n in carried]
                for n in stacked:
                    steps[n][t] = out[n]
            return tuple(state + [np.stack(steps[n], axis=axis) for n in stacked])

        return scan

    def to_onnx(self, b, *xs):
        outputs = {f"{self.body.name}/next/{n}": self.body.outputs[n] for n in self.carried}
        outputs.update({f"{self.body.name}/step/{n}": self.body.outputs[n] for n in self.stacked})
        body = b.subgraph(self.body, outputs, f"{self.body.name}/body")
        ns, no = len(self.sequences), len(self.stacked)
        rank = b.type_of(xs[len(self.carried)]).rank
        axis = self.axis % rank
        out_axis = [axis_index(self.axis, self.body.types[self.body.outputs[n]].rank + 1) for n in self.stacked]
        outs = b.node("Scan", list(xs[:len(self.carried) + ns]), n_out=len(self.carried) + no, body=body,
                      num_scan_inputs=ns, scan_input_axes=[axis] * ns, scan_output_axes=out_axis,
                      scan_input_directions=[int(self.reverse)] * ns,
                      scan_output_directions=[int(self.reverse)] * no)
        return (outs,) if isinstance(outs, str) else tuple(outs)

    def for_backward(self) -> "Scan":
        """The scan also stacking the carried states each step starts from, 'saved.<state>': what
        the reverse scan of the vjp recomputes each step's body from (backpropagation through time)."""
        states = self.body_inputs()[:len(self.carried)]
        saved = {f"saved.{n}": t for n, t in zip(self.carried, states)}
        body = dataclasses.replace(self.body, outputs={**self.body.outputs, **saved})
        return self.model_copy(update={"body": body, "stacked": self.stacked + tuple(saved),
                                       "saved": tuple(saved), "fuses_to": None})

    def vjp(self, g, xs, ys, dys):
        # A reverse scan over the body's gradient: it carries the states' cotangents and the params'
        # running sums, and steps over the saved states, the sequences and the stacked outputs'
        # cotangents, recomputing each step's body from its saved states.
        if not self.saved:
            raise NoVjp("scan was not prepared for its vjp (for_backward)")
        nc, ns = len(self.carried), len(self.sequences)
        names = self.body_inputs()
        if any(self.body.inputs[n].dtype not in FLOAT_DTYPES for n in names):
            raise NoVjp("a scan carrying or stepping over integers has no vjp")
        stacked = [n for n in self.stacked if n not in self.saved]
        outputs = {k: v for k, v in self.body.outputs.items() if k not in self.saved}
        params = [p for p in self.params if self.body.params[p].type.dtype in FLOAT_DTYPES]
        ds = {n: f"d.{n}" for n in self.carried + tuple(stacked)}
        acc = {p: f"acc.{p}" for p in params}
        grad = g.body_gradient(dataclasses.replace(self.body, outputs=outputs), names + params, ds, acc)
        order = [ds[n] for n in self.carried] + list(acc.values()) + names + [ds[n] for n in stacked]
        new_outputs = {**{ds[n]: grad.outputs[f"grad.{t}"] for n, t in zip(self.carried, names)},
                       **{a: grad.outputs[f"grad.{p}"] for p, a in acc.items()},
                       **{f"d.{n}": grad.outputs[f"grad.{t}"] for n, t in zip(self.sequences, names[nc:])}}
        body = dataclasses.replace(grad, name=f"{self.body.name}/grad", inputs={n: grad.inputs[n] for n in order},
                                   outputs=new_outputs)
        zeros = lambda d, y: d if d is not None else g.zeros(g.type_of(y))
        by_name = dict(zip(self.output_names(), zip(ys, dys)))
        initial = [zeros(*by_name[n][::-1]) for n in self.carried] + [g.zeros(self.body.params[p].type) for p in params]
        steps = ([by_name[s][0] for s in self.saved] + list(xs[nc:nc + ns])
                 + [zeros(*by_name[n][::-1]) for n in stacked])
        carried_out = tuple(ds[n] for n in self.carried) + tuple(acc.values())
        outs = g.emit("scan", *initial, *steps, *xs[nc + ns:], body=body, carried=carried_out,
                      sequences=tuple(order[len(carried_out):]), stacked=tuple(f"d.{n}" for n in self.sequences),
                      params=self.params, axis=self.axis, reverse=not self.reverse)
        outs = (outs,) if isinstance(outs, str) else outs
        param_grads = dict(zip(params, outs[nc:nc + len(params)]))
        return (tuple(outs[:nc]) + tuple(outs[len(carried_out):])
                + tuple(param_grads.get(p) for p in self.params))

    def scratch_in(self, engine: Engine, ins, outs) -> int:
        # one step's peak, plus the per-step outputs held until they are stacked (the outputs' size)
        return engine.peak(self.body, self.binding) + sum(nbytes(t) for t in outs)

    def macs(self, ins, outs) -> Dim:
        seq = ins[len(self.carried)]
        return self.body.total_macs() * seq.shape[axis_index(self.axis, seq.rank)]

    def label(self, node: Drawn) -> str:
        return "reverse" if self.reverse else ""
