"""Checkpoints: one .npz holding the weights (`weights/NAME`), the optimizer state (`state/KEY`, or
L-BFGS's `lbfgs/KEY`) and, as a JSON text in `meta`, where training stands (epochs and batches done,
steps taken, the metrics so far). The shuffling order of an epoch and the dropout masks of a step are
functions of the seed and their position, so the position is the whole random state. Written
atomically (files.atomic_write, through weights.save_npz): an interrupted write leaves the last
complete checkpoint as it was."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..errors import Location, SpecError
from ..weights import load_npz, save_npz

FORMAT = "graphnet-checkpoint"
VERSION = 1


@dataclass
class Position:
    epoch: int = 0          # epochs completed
    batch: int = 0          # batches completed within the current epoch
    steps: int = 0          # optimizer steps in all
    history: list = field(default_factory=list)   # the epoch records logged so far


@dataclass
class Checkpoint:
    weights: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    position: Position
    meta: dict
    path: str = "<checkpoint>"

    def refuse(self, message: str) -> SpecError:
        return SpecError.at(Location(self.path), message)

    def state_like(self, expected: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Its optimizer state as `expected` holds it (the state a new run starts from): every key,
        each of its shape and dtype and finite, or one located error."""
        out = {}
        for key, want in expected.items():
            if key not in self.state:
                raise self.refuse(f"the checkpoint has no optimizer state '{key}' (written with other optimizer "
                                  "options?)")
            got = self.state[key]
            if got.shape != want.shape or got.dtype != want.dtype:
                raise self.refuse(f"the checkpoint's optimizer state '{key}' is {got.dtype}{list(got.shape)}, where "
                                  f"this run's is {want.dtype}{list(want.shape)}")
            if got.dtype.kind == "f" and not np.isfinite(got).all():
                raise self.refuse(f"the checkpoint's optimizer state '{key}' holds NaN or infinity")
            out[key] = np.array(got)
        return out


def save_checkpoint(path: str, weights: dict, state: dict, position: Position, meta: dict) -> None:
    info = {"format": FORMAT, "version": VERSION, **meta, "epoch": position.epoch, "batch": position.batch,
            "steps": position.steps, "history": position.history}
    arrays = {f"weights/{k}": v for k, v in weights.items()}
    arrays.update({f"state/{k}": v for k, v in state.items()})
    arrays["meta"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
    save_npz(path, arrays)


def load_checkpoint(path: str, expect: dict) -> Checkpoint:
    """A checkpoint, refused (located at the file) unless it is one and was written for what
    `expect` names (the spec, the optimizer)."""
    arrays = load_npz(path)
    where = Location(path)
    if "meta" not in arrays or arrays["meta"].dtype != np.uint8 or arrays["meta"].ndim != 1:
        raise SpecError.at(where, "not a graphnet checkpoint (no 'meta'); checkpoints are written by "
                                  "`graphnet train` (checkpoint.path in the training config)")
    try:
        meta = json.loads(arrays["meta"].tobytes().decode())
    except (ValueError, RecursionError) as e:      # not UTF-8, not JSON, nested or numbered past parsing
        raise SpecError.at(where, f"a checkpoint whose 'meta' is not JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise SpecError.at(where, f"not a graphnet checkpoint of version {VERSION}")
    for key, value in expect.items():
        if meta.get(key) != value:
            raise SpecError.at(where, f"this checkpoint was written for {key} '{meta.get(key)}', not '{value}'")
    counts = [meta.get(key) for key in ("epoch", "batch", "steps")]
    if not all(type(n) is int and 0 <= n < 2**62 for n in counts):
        raise SpecError.at(where, "a checkpoint whose 'meta' lacks its position (epoch, batch and steps, whole "
                                  "numbers from 0)")
    history = meta.get("history")
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise SpecError.at(where, "a checkpoint whose 'meta' lacks its history (a list of epoch records)")
    weights = {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}
    state = {k[len("state/"):]: v for k, v in arrays.items() if k.startswith("state/")}
    return Checkpoint(weights, state, Position(*counts, history), meta, path)
