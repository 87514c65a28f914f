"""`-` as a file name on the command line: the spec read from standard input, an output written to
standard output. Not a command (it is not in COMMANDS): the helpers the commands share for it.

A spec from standard input is named `<stdin>` in its errors and finds its `use:` files from the
current folder. An output to standard output is made under a temporary name first, by the same
code that writes a file, and copied out only once complete, so a failed command writes nothing;
the command's own messages then go to standard error, where they cannot corrupt the data."""

from __future__ import annotations

import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from ..errors import Diagnostic, Location, Note, SpecError
from ..source import MAX_FILE_BYTES, decode_text

STDIO = "-"
STDIN_NAME = "<stdin>"


def is_stdio(path) -> bool:
    return path is not None and str(path) == STDIO


def read_stdin_spec() -> str:
    """Standard input's text, refused past the size of a spec file without reading more of it."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:              # a text stream put in place of sys.stdin (a notebook, a test)
        text = sys.stdin.read(MAX_FILE_BYTES + 1)
        return decode_text(text.encode(), STDIN_NAME)
    return decode_text(stream.read(MAX_FILE_BYTES + 1), STDIN_NAME)


def refuse_two_stdins(paths: list[str]) -> None:
    if sum(map(is_stdio, paths)) > 1:
        raise SpecError.at(Location("<command line>"), "'-' (standard input) can be given once")


def messages(output: str | None) -> IO:
    """Where a command prints what it did: standard error when its data goes to standard output."""
    return sys.stderr if is_stdio(output) else sys.stdout


@contextmanager
def output_file(path: str | None, suffix: str = "") -> Iterator[str | None]:
    """The path to write: `path` itself, or for `-` a temporary file (named with `suffix`, for
    writers that go by the extension) whose bytes are copied to standard output once the command
    is done with it; nothing is written when the command fails."""
    if not is_stdio(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="graphnet-") as folder:
        staged = str(Path(folder) / f"stdout{suffix}")
        yield staged
        write_stdout(Path(staged).read_bytes())


def write_stdout(data: bytes) -> None:
    out = getattr(sys.stdout, "buffer", None)
    sys.stdout.flush()
    if out is None:                 # a text stream put in place of sys.stdout
        sys.stdout.write(data.decode(errors="replace"))
        return
    out.write(data)
    out.flush()



@contextmanager
def input_file(path: str, suffix: str = "") -> Iterator[str]:
    """The path to read: `path` itself, or for `-` standard input's bytes in a temporary file
    (named with `suffix`, for readers that go by the extension), its errors named `<stdin>`."""
    if not is_stdio(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="graphnet-") as folder:
        staged = str(Path(folder) / f"stdin{suffix}")
        stream = getattr(sys.stdin, "buffer", None)
        Path(staged).write_bytes(stream.read() if stream is not None else sys.stdin.read().encode())
        try:
            yield staged
        except SpecError as e:
            raise _renamed(e, staged) from None


def _renamed(error: SpecError, staged: str) -> SpecError:
    def loc(at: Location) -> Location:
        return Location(STDIN_NAME, at.line, at.col) if at.file == staged else at
    return SpecError([Diagnostic(loc(d.loc), d.message.replace(staged, STDIN_NAME),
                                 tuple(Note(loc(n.loc), n.message.replace(staged, STDIN_NAME)) for n in d.notes))
                      for d in error.diagnostics])
