"""The CLI's commands beyond the core ones in graphnet/cli.py, one module each (`train.py`, ...).

Each module defines `register(sub)`, which adds its subparser and sets `func`; it imports what the
command needs inside that function, so `graphnet validate` never pays for `graphnet train`'s imports.
A new command is its module plus its name in COMMANDS."""

from __future__ import annotations

import importlib

COMMANDS: tuple[str, ...] = ("completion", "train", "evaluate", "plot", "import_onnx")


def register_all(sub) -> None:
    """Add every command module's subparser to `sub`, in COMMANDS' order."""
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
