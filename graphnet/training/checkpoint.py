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
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SpecError.at(where, f"a checkpoint whose 'meta' is not JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise SpecError.at(where, f"not a graphnet checkpoint of version {VERSION}")
    for key, value in expect.items():
        if meta.get(key) != value:
            raise SpecError.at(where, f"this checkpoint was written for {key} '{meta.get(key)}', not '{value}'")
    try:
        position = Position(int(meta["epoch"]), int(meta["batch"]), int(meta["steps"]), list(meta["history"]))
    except (KeyError, TypeError, ValueError):
        raise SpecError.at(where, "a checkpoint whose 'meta' lacks its position (epoch, batch, steps)") from None
    weights = {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}
    state = {k[len("state/"):]: v for k, v in arrays.items() if k.startswith("state/")}
    return Checkpoint(weights, state, position, meta)
