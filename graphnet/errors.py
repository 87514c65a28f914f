"""Located diagnostics: every user mistake becomes `FILE:LINE:COL: error: message`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    file: str
    line: int = 1      # 1-based
    col: int = 1       # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def shifted(self, columns: int) -> "Location":
        return Location(self.file, self.line, self.col + columns)


def is_std_location(loc: Location) -> bool:
    """Whether `loc` is in the std library (load.py names its files `<std>/NAME.yaml`)."""
    return loc.file.startswith("<std>/")


@dataclass(frozen=True)
class Note:
    loc: Location
    message: str


@dataclass(frozen=True)
class Diagnostic:
    loc: Location
    message: str
    notes: tuple[Note, ...] = field(default=())

    def render(self) -> str:
        lines = [f"{self.loc}: error: {self.message}"]
        lines += [f"{n.loc}: note: {n.message}" for n in self.notes]
        return "\n".join(lines)


class SpecError(Exception):
    """One or more located user mistakes in a spec, a weight file or an input."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__(self.render())

    @classmethod
    def at(cls, loc: Location, message: str, notes: tuple[Note, ...] = ()) -> "SpecError":
        return cls(Diagnostic(loc, message, tuple(notes)))

    def render(self) -> str:
        # A file name that is not UTF-8 (os.fsdecode's surrogates) is shown by its bytes, '\\xff', so the
        # message prints on any stream
        text = "\n".join(d.render() for d in self.diagnostics)
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:       # a surrogate that no file name decodes to
            raw = text.encode("utf-8", "backslashreplace")
        return raw.decode("utf-8", "backslashreplace")


class Diagnostics:
    """Collects independent errors so one run reports all of them."""

    def __init__(self):
        self.items: list[Diagnostic] = []

    def add(self, loc: Location, message: str, notes: tuple[Note, ...] = ()) -> None:
        self.items.append(Diagnostic(loc, message, tuple(notes)))

    def extend(self, error: SpecError) -> None:
        self.items.extend(error.diagnostics)

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(_dedupe(self.items))


def _dedupe(items: list[Diagnostic]) -> list[Diagnostic]:
    seen, out = set(), []
    for d in items:
        key = (d.loc, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def did_you_mean(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
