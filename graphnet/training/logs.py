"""Training logs: one JSON object a line, `kind` step or epoch (as `graphnet train --log` writes
them), read back with every malformed line located."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import Location, SpecError
from ..source import MAX_FILE_BYTES
from ..files import note_input

MAX_LOG_BYTES = 64 * MAX_FILE_BYTES


def read_log(path: str) -> tuple[list[dict], list[dict]]:
    """(step records, epoch records) of a log file."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise SpecError.at(Location(path), f"cannot read the log: {e.strerror or e}") from None
    if not p.is_file():
        raise SpecError.at(Location(path), "not a file")
    if size > MAX_LOG_BYTES:
        raise SpecError.at(Location(path), f"the log is {size} bytes, over the {MAX_LOG_BYTES} this reads")
    note_input(p)
    steps, epochs = [], []
    for number, line in enumerate(p.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise SpecError.at(Location(path, number, e.colno), f"not a JSON object: {e.msg}") from None
        except (ValueError, RecursionError) as e:   # an integer of 5,000 digits; arrays nested 100,000 deep
            raise SpecError.at(Location(path, number), f"not a readable JSON object: {e}") from None
        kind = entry.get("kind") if isinstance(entry, dict) else None
        fields = {"step": ("step", "loss"), "epoch": ("epoch",)}.get(kind)
        if fields is None:
            raise SpecError.at(Location(path, number), "a log line needs \"kind\": \"step\" or \"epoch\"")
        for key in fields:
            if not isinstance(entry.get(key), (int, float)) or isinstance(entry.get(key), bool):
                raise SpecError.at(Location(path, number), f"a {kind} line needs a number \"{key}\"")
        (steps if kind == "step" else epochs).append(entry)
    if not epochs and not steps:
        raise SpecError.at(Location(path), "the log has no step or epoch lines")
    return steps, epochs
