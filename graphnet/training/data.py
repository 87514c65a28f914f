"""Data files for training and evaluation: an .npz with one array per spec input and the targets
the losses name, examples along the first axis. Everything that would make a step fail, or train on
garbage, is refused before the first step, located at the file with the array and example named:
a missing or unknown array, a dtype or shape that does not fit the spec, arrays of different
lengths, no examples, a NaN or infinity, a class label outside the output's classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..errors import Location, Note, SpecError, did_you_mean
from ..weights import load_npz

# losses whose target may be class indices along the output's axis 1
CLASS_LOSSES = ("cross_entropy", "nll_loss")


@dataclass
class Dataset:
    arrays: dict[str, np.ndarray]
    source: str

    @property
    def size(self) -> int:
        return len(next(iter(self.arrays.values())))

    def take(self, index: np.ndarray) -> "Dataset":
        return Dataset({k: v[index] for k, v in self.arrays.items()}, self.source)

    def batches(self, batch_size: int, order: np.ndarray | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Batches of `batch_size` examples in `order` (default: as stored); the last may be smaller."""
        order = np.arange(self.size) if order is None else order
        for start in range(0, self.size, batch_size):
            index = order[start:start + batch_size]
            yield {k: np.ascontiguousarray(v[index]) for k, v in self.arrays.items()}

    def split(self, share: float, rng: np.random.Generator) -> tuple["Dataset", "Dataset"]:
        """(the rest, a held-out share), drawn by `rng`; each keeps at least one example."""
        order = rng.permutation(self.size)
        held = min(max(1, round(self.size * share)), self.size - 1)
        if self.size < 2:
            raise SpecError.at(Location(self.source), f"a validation split needs 2 examples or more, the file has {self.size}")
        return self.take(np.sort(order[held:])), self.take(np.sort(order[:held]))


def load_data(path: str, net, losses: dict, loss_locs: dict[str, Location] | None = None) -> Dataset:
    """The data file read and checked against the network's inputs and, for each output with a
    loss, the target that loss names (`losses`: output -> LossSpec)."""
    arrays = load_npz(path)
    check_data(arrays, net, losses, path, loss_locs or {})
    for spec in losses.values():      # labels checked in range above, so int64 holds them
        if spec.name in CLASS_LOSSES and arrays[spec.target].dtype.kind in "iu":
            arrays[spec.target] = arrays[spec.target].astype(np.int64)
    return Dataset(arrays, path)


def check_data(arrays: dict[str, np.ndarray], net, losses: dict, source: str, loss_locs: dict[str, Location]) -> None:
    where = Location(source)
    g = net.graph
    targets = {spec.target: out for out, spec in losses.items()}
    wanted = list(g.inputs) + list(targets)
    for name in wanted:
        if name not in arrays:
            notes = (Note(loss_locs[targets[name]], f"the loss of output '{targets[name]}' names target '{name}'"),) \
                if name in targets and targets[name] in loss_locs else ()
            what = "input" if name in g.inputs else "target"
            raise SpecError.at(where, f"the data has no array '{name}' (the {what}){did_you_mean(name, set(arrays) - set(wanted))}"
                               f" (arrays: {', '.join(arrays) or 'none'})", notes)
    for name in arrays:
        if name not in wanted:
            raise SpecError.at(where, f"array '{name}' is neither an input of '{g.name}' nor a target"
                               f"{did_you_mean(name, wanted)} (inputs: {', '.join(g.inputs)}; targets: "
                               f"{', '.join(targets) or 'none'})")
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in arrays.items()}
    for name, n in sizes.items():
        if n is None:
            raise SpecError.at(where, f"array '{name}' is a scalar; examples go along the first axis")
    first = next(iter(sizes))
    for name, n in sizes.items():
        if n != sizes[first]:
            raise SpecError.at(where, f"array '{name}' has {n} examples, '{first}' has {sizes[first]}")
    if sizes[first] == 0:
        raise SpecError.at(where, "the data set is empty (0 examples)")
    for name in g.inputs:
        t = g.inputs[name]
        if not t.shape or not t.shape[0].is_symbol():
            raise SpecError.at(g.input_locs[name], f"input '{name}' has no free leading dim to batch examples "
                               f"along (its shape is {t}); declare it like [B, ...]")
    try:
        feed = net.feed({k: arrays[k][:1] for k in g.inputs}, source)
    except SpecError as e:
        raise SpecError.at(where, f"the data does not fit the spec's inputs: {e.diagnostics[0].message}",
                           (Note(e.diagnostics[0].loc, "declared here"),)) from None
    for name, a in arrays.items():
        if a.dtype.kind == "f":
            bad = ~np.isfinite(a)
            if bad.any():
                index = np.unravel_index(int(np.argmax(bad)), a.shape)
                raise SpecError.at(where, f"array '{name}' holds {a[index]} at example {index[0]} (index "
                                   f"{list(map(int, index))}); data must be finite")
    for out, spec in losses.items():
        _check_target(arrays[spec.target], spec, out, net, feed.dims, where, loss_locs.get(out))


def _check_target(a: np.ndarray, spec, output: str, net, binding: dict, where: Location, loss_loc) -> None:
    t = net.graph.types[net.graph.outputs[output]]
    shape = [d.subs(binding) for d in t.shape]
    per_example = tuple(int(d.value) for d in shape[1:])
    notes = (Note(loss_loc, f"the loss of output '{output}'"),) if loss_loc else ()
    name = spec.target
    if spec.name in CLASS_LOSSES and a.dtype.kind in "iu":
        if len(per_example) < 1:
            raise SpecError.at(where, f"output '{output}' has no class axis for labels", notes)
        classes, rest = per_example[0], per_example[1:]
        if tuple(a.shape[1:]) != rest:
            raise SpecError.at(where, f"target '{name}' has shape {_n(a.shape[1:])}; class labels for output "
                               f"'{output}' {_shape(t.shape)} need {_n(rest)}", notes)
        ignore = spec.args.get("ignore_index", -100)
        valid = (a >= 0) & (a < classes) | (a == ignore)
        if not valid.all():
            index = np.unravel_index(int(np.argmin(valid)), a.shape)
            raise SpecError.at(where, f"target '{name}' holds label {a[index]} at example {index[0]}; output "
                               f"'{output}' has {classes} classes (labels 0 to {classes - 1})", notes)
        return
    if spec.name in CLASS_LOSSES:
        raise SpecError.at(where, f"target '{name}' is {a.dtype}; {spec.name} takes integer class labels"
                           + (" (for class probabilities: cross_entropy_probs)" if spec.name == "cross_entropy" else ""), notes)
    if a.dtype.kind not in "f":
        need = f"{t.dtype} values like output '{output}'"
        raise SpecError.at(where, f"target '{name}' is {a.dtype}; {spec.name} needs {need}", notes)
    if a.dtype != np.dtype(t.dtype):
        raise SpecError.at(where, f"target '{name}' is {a.dtype}; output '{output}' is {t.dtype}", notes)
    if tuple(a.shape[1:]) != per_example:
        raise SpecError.at(where, f"target '{name}' has shape {_n(a.shape[1:])}; output '{output}' "
                           f"{_shape(t.shape)} needs {_n(per_example)}", notes)


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _n(per_example) -> str:
    """A data array's shape as [N, ...]: N examples of this shape."""
    return "[N" + "".join(f", {d}" for d in per_example) + "]"
