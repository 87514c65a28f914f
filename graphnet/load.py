"""Load a spec file and the block libraries it uses (`use: [std, blocks/mine.yaml]`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Location, SpecError, is_std_location  # noqa: F401 (expand reads it here)
from .source import load_yaml, parse_yaml, read_text
from .spec import BlockSpec, LibraryFile, SpecFile, validate_model

STD_DIR = Path(__file__).parent / "std"

# Libraries may use libraries that use libraries; past this many levels the chain is refused (each
# level is a Python call, and a chain of hundreds would otherwise overflow the interpreter's stack).
MAX_USE_DEPTH = 32


@dataclass
class Library:
    """A namespace of blocks: the spec's own, the std library, or a used YAML file."""

    name: str
    blocks: dict[str, BlockSpec]
    dims: dict[str, int | str]
    uses: dict[str, "Library"] = field(default_factory=dict)
    is_std: bool = False
    dim_locs: dict[str, Location] = field(default_factory=dict)


@dataclass
class Program:
    spec: SpecFile
    library: Library       # the spec's own blocks, with everything it uses
    path: Path
    digest: str = ""       # sha256 of the spec's text, as read


def load_program(path: str | Path, text: str | None = None, trusted: bool = False) -> Program:
    """The spec at `path`, or with `text` the spec read already (standard input), `path` then
    naming it in errors (`<stdin>`) and its libraries looked up from the current folder. `trusted`
    text is graphnet's own writing (an imported model's spec), parsed as source.parse_yaml says."""
    if not str(path):
        # Path("") is the current folder; an empty argument is a mistake, not a request for "."
        raise SpecError.at(Location("<command line>"), "the spec path is empty")
    path = Path(path)
    display = str(path)
    text = read_text(path, display) if text is None else text
    spec = validate_model(SpecFile, parse_yaml(text, display, trusted), display)
    cache: dict[Path, Library] = {}
    library = Library(spec.name, dict(spec.blocks), {}, {})
    library.uses = _load_uses(spec.use, spec, path.parent, cache, 0)
    return Program(spec, library, path, hashlib.sha256(text.encode()).hexdigest())


_std_cache: dict[tuple, Library] = {}


def load_std() -> Library:
    """The std library: every YAML file in graphnet/std, merged into one namespace. Made once per
    process while the files are unchanged; each file is parsed when one of its blocks is first
    looked up (a load would otherwise spend most of its time parsing blocks it never uses)."""
    files = sorted(STD_DIR.glob("*.yaml"))
    key = tuple((f.name, st.st_mtime_ns, st.st_size) for f in files for st in [f.stat()])
    if key not in _std_cache:
        _std_cache.clear()
        lib = Library("std", {}, {}, is_std=True)
        lib.uses = {"std": lib}
        lib.blocks = _StdBlocks(files)
        _std_cache[key] = lib
    return _std_cache[key]


_BLOCK_NAME = re.compile(r"  ([A-Za-z_][A-Za-z0-9_]*):(?:[ \t].*)?")


def std_block_names(text: str) -> list[str] | None:
    """A std file's block names, read from its lines: the keys indented two spaces under the
    top-level `blocks:`, how every std file is written (a test checks this reading against the
    parse); None for a file written otherwise, which is then parsed to find them."""
    lines = iter(text.splitlines())
    for line in lines:
        if line.rstrip() == "blocks:":
            break
    else:
        return None
    names = []
    for line in lines:
        body = line.lstrip(" ")
        if not body or body.startswith("#") or len(line) - len(body) > 2:
            continue                          # blank, a comment, or inside a block
        if len(line) - len(body) == 0:
            break                             # the next top-level key
        found = _BLOCK_NAME.fullmatch(line)
        if found is None:
            return None
        names.append(found.group(1))
    return names


class _StdBlocks(Mapping):
    """The std library's blocks by name, in the order of the files and of the blocks in each, each
    file parsed at the first lookup of a block in it. Two files naming one block, or a parsed file
    whose blocks are not the names read from its lines, parse every file at once as before, so an
    error is the one it always was and the names are the parsed ones."""

    def __init__(self, files: list[Path]):
        self._files = files
        self._names = {f: std_block_names(f.read_text(encoding="utf-8")) for f in files}
        self._file_of: dict[str, Path | None] = {}
        self._parsed: dict[str, BlockSpec] = {}
        for file in files:
            for name in self._names[file] or ():
                if self._file_of.setdefault(name, file) != file:
                    self._parse_all()
                    return
        if any(names is None for names in self._names.values()):
            self._parse_all()

    def _parse_all(self) -> None:
        self._parsed = dict(_parse_std(self._files).blocks)
        self._file_of = dict.fromkeys(self._parsed)

    def __getitem__(self, name: str) -> BlockSpec:
        if name not in self._parsed:
            file = self._file_of.get(name)
            if file is None:
                raise KeyError(name)
            model = validate_model(LibraryFile, load_yaml(file, _std_display(file), trusted=True), _std_display(file))
            self._parsed.update(model.blocks)
            for parsed in model.blocks:
                self._file_of[parsed] = None
            if list(model.blocks) != self._names[file]:
                self._parse_all()
        return self._parsed[name]

    def __contains__(self, name: object) -> bool:
        try:
            self[name]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._file_of))

    def __len__(self) -> int:
        return len(self._file_of)


def _parse_std(files: list[Path]) -> Library:
    lib = Library("std", {}, {}, is_std=True)
    lib.uses = {"std": lib}
    for file in files:
        model = validate_model(LibraryFile, load_yaml(file, _std_display(file), trusted=True), _std_display(file))
        for name, block in model.blocks.items():
            if name in lib.blocks:
                raise SpecError.at(block.loc, f"block 'std.{name}' is defined twice")
            lib.blocks[name] = block
    return lib


def _std_display(file: Path) -> str:
    return f"<std>/{file.name}"


def _load_uses(uses: list[str], owner, folder: Path, cache: dict, depth: int) -> dict[str, Library]:
    """The libraries `owner` (the spec at depth 0, else a library `depth` uses down) names."""
    out: dict[str, Library] = {}
    for i, entry in enumerate(uses):
        loc = owner.loc_of("use", i)
        if entry == "std":
            lib = load_std()
        elif depth >= MAX_USE_DEPTH:
            raise SpecError.at(loc, f"libraries use each other more than {MAX_USE_DEPTH} levels deep "
                                    "(load.MAX_USE_DEPTH)")
        else:
            lib = _load_file_library(entry, loc, folder, cache, depth)
        if lib.name in out:
            raise SpecError.at(loc, f"two libraries are both named '{lib.name}'")
        out[lib.name] = lib
    return out


def _load_file_library(entry: str, loc: Location, folder: Path, cache: dict, depth: int) -> Library:
    # the spec's paths are relative to its folder; a library's to its own folder, which they must
    # not leave either
    whose = "the spec's folder" if depth == 0 else f"the folder of the library that uses it ('{folder}')"
    if "\0" in entry:
        shown = entry.replace("\0", "\\0")
        raise SpecError.at(loc, f"library path '{shown}' holds a NUL character")
    rel = Path(entry)
    if rel.is_absolute():
        raise SpecError.at(loc, f"library path '{entry}' must be relative to {whose}")
    try:
        target = (folder / rel).resolve()
        root = folder.resolve()
        exists, regular = target.exists(), target.is_file()
    except (OSError, RuntimeError) as e:      # a name too long, a symlink loop (RuntimeError before 3.13)
        raise SpecError.at(loc, f"library path '{entry}' cannot be followed: {getattr(e, 'strerror', None) or e}") from None
    if root not in target.parents:
        raise SpecError.at(loc, f"library path '{entry}' leaves {whose}")
    if target.suffix not in (".yaml", ".yml"):
        raise SpecError.at(loc, f"library path '{entry}' is not a .yaml file")
    if not exists:
        raise SpecError.at(loc, f"library file '{entry}' does not exist")
    if not regular:
        raise SpecError.at(loc, f"library file '{entry}' is not a regular file (a FIFO, a device or a folder)")
    if target in cache:
        return cache[target]
    display = str(folder / rel)
    model = validate_model(LibraryFile, load_yaml(target, display), display)
    name = model.name or target.stem
    lib = Library(name, dict(model.blocks), dict(model.dims),
                  dim_locs={k: model.loc_of("dims", k) for k in model.dims})
    cache[target] = lib
    lib.uses = _load_uses(model.use, model, Path(display).parent, cache, depth + 1)   # named as the user named it
    lib.uses.setdefault(name, lib)
    return lib
