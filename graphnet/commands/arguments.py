"""How the command line's values are read, for graphnet/cli.py and the command modules alike:
--dim, memory sizes, operation counts, seeds."""

from __future__ import annotations

import argparse

from ..errors import Location, SpecError

COMMAND_LINE = Location("<command line>")


def dims(values: list[str]) -> dict[str, int]:
    """--dim NAME=VALUE, each a positive whole number."""
    out = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise SpecError.at(COMMAND_LINE, f"--dim takes NAME=VALUE, got '{item}'")
        try:
            n = int(value)
        except ValueError:
            raise SpecError.at(COMMAND_LINE, f"--dim {name}: '{value}' is not a whole number") from None
        if n < 1:
            raise SpecError.at(COMMAND_LINE, f"--dim {name}: a dim must be positive, got {n}")
        out[name] = n
    return out


def size(text: str) -> int | None:
    """A memory size: bytes, or with a K, M, G or T suffix (powers of 1024); 'none' for no limit."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return _scaled(text, text.strip().rstrip("BbIi").rstrip(), units, "a size like 8G, 512M or none",
                   "a memory size")


def count(text: str) -> int | None:
    """A count of operations: a number, or with a K, M, G, T or P suffix (powers of 1000); 'none' for no limit."""
    units = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
    return _scaled(text, text.strip(), units, "a count like 10T, 500G or none", "a compute limit")


def _scaled(text: str, number: str, units: dict[str, int], like: str, what: str) -> int | None:
    """`number` (the text less any unit letters it may end with), times its suffix's unit."""
    text = text.strip()
    if text.lower() == "none":
        return None
    unit = 1
    if number and number[-1].upper() in units:
        number, unit = number[:-1], units[number[-1].upper()]
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {like}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{what} must be positive, got '{text}'")
    return int(value * unit)


def positive(text: str) -> int:
    return _whole(text, 1, "must be 1 or more")


def seed(text: str) -> int:
    return _whole(text, 0, "a seed must be 0 or more")


def _whole(text: str, least: int, rule: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if n < least:
        raise argparse.ArgumentTypeError(f"{rule}, got {n}")
    return n
