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
    text = text.strip()
    if text.lower() == "none":
        return None
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.rstrip("BbIi").rstrip(), ""
    if number and number[-1].upper() in units:
        number, unit = number[:-1], number[-1].upper()
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size like 8G, 512M or none") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a memory size must be positive, got '{text}'")
    return int(value * units[unit])


def positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def count(text: str) -> int | None:
    """A count of operations: a number, or with a K, M, G, T or P suffix (powers of 1000); 'none' for no limit."""
    text = text.strip()
    if text.lower() == "none":
        return None
    units = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
    number, unit = (text[:-1], units[text[-1].upper()]) if text and text[-1].upper() in units else (text, 1)
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a count like 10T, 500G or none") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a compute limit must be positive, got '{text}'")
    return int(value * unit)


def seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"a seed must be 0 or more, got {seed}")
    return seed
