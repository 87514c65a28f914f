"""YAML text to plain Python values that remember where each came from.

PyYAML's composer gives nodes with marks; we build dicts and lists from them ourselves so that only
plain data ever comes out (no tags are constructed), duplicate keys and aliases are refused, and
every mapping key, value and list item keeps its file:line:col for error messages.

Where PyYAML has libyaml, a file is first composed straight from libyaml's event stream (about ten
times faster than PyYAML's Python scanner, and most of a cold `graphnet validate`'s parse); any file
that path finds unusual (an error, a tag, an anchor or alias, a duplicate or odd key, deep nesting)
is parsed again by the Python composer below, so every message is the one it gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import Location, Note, SpecError
from .files import note_input

MAX_FILE_BYTES = 1 << 20
MAX_NESTING = 64

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


class LocDict(dict):
    """A mapping from YAML with the location of itself, each key and each value."""

    loc: Location
    key_locs: dict
    value_locs: dict


class LocList(list):
    loc: Location
    item_locs: list


def _loc(file: str, mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


_TRUSTED = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Composer(yaml.SafeLoader):
    """Refuses aliases (alias bombs, shared mutable nodes) and unbounded nesting while composing."""

    def __init__(self, stream, file: str):
        super().__init__(stream)
        self.file = file
        self.depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise SpecError.at(_loc(self.file, event.start_mark),
                               "YAML aliases (*name) are not supported in specs; write the value out")
        self.depth += 1
        if self.depth > MAX_NESTING:
            event = self.peek_event()
            raise SpecError.at(_loc(self.file, event.start_mark),
                               f"YAML nested more than {MAX_NESTING} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def read_text(path: Path, display: str) -> str:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise SpecError.at(Location(display), "not a file")
        if size > MAX_FILE_BYTES:
            raise SpecError.at(Location(display), f"file is {size} bytes; specs are limited to {MAX_FILE_BYTES}")
        data = path.read_bytes()
        note_input(path)          # a command's output may not replace it
    except (OSError, ValueError) as e:     # ValueError: a NUL character in the path
        raise SpecError.at(Location(display), f"cannot read file: {getattr(e, 'strerror', None) or e}") from None
    return decode_text(data, display)


def decode_text(data: bytes, display: str) -> str:
    """A spec's bytes as text (a file's, or standard input's), or a located error."""
    if len(data) > MAX_FILE_BYTES:
        raise SpecError.at(Location(display), f"more than {MAX_FILE_BYTES} bytes; specs are limited to {MAX_FILE_BYTES}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError.at(Location(display, line, col), "file is not valid UTF-8") from None


def parse_yaml(text: str, display: str, trusted: bool = False) -> Any:
    """Parse YAML text into LocDict/LocList/scalars; all YAML mistakes become located errors.
    `trusted` text (graphnet's own std library, parsed by every command) is composed by libyaml
    where PyYAML has it, ten times faster, without the alias and nesting guards user files get."""
    if _FAST_LOADER is not None and not _NON_PRINTABLE.search(text):
        try:
            return _compose_events(text, display)
        except Exception:       # noqa: BLE001 (_Unusual, any YAML error: the Python path says it as ever)
            pass
    try:
        loader = _TRUSTED(text) if trusted else _Composer(text, display)
    except yaml.reader.ReaderError as e:
        # The reader vets every character when the loader is made, before there are marks.
        raise SpecError.at(_offset_loc(text, e.position, display),
                           f"invalid YAML: unacceptable character #x{e.character:04x}: {e.reason}") from None
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        raise _yaml_error(e, display) from None
    except yaml.YAMLError as e:
        raise SpecError.at(Location(display), f"invalid YAML: {e}") from None
    finally:
        loader.dispose()
    if node is None:
        raise SpecError.at(Location(display), "the file is empty")
    if isinstance(node, yaml.ScalarNode):
        # a lone value has nowhere to keep its location, so say it here, where it is known
        _refuse_tag(node, display)
        raise SpecError.at(_loc(display, node.start_mark), "a spec file must be a YAML mapping at the top level")
    return _convert(node, display, loader)


def _yaml_error(e: yaml.MarkedYAMLError, file: str) -> SpecError:
    """PyYAML's problem where it was found, and what it was reading (an unclosed bracket or quote,
    often lines earlier) as a note at where that began."""
    problem, context = e.problem, e.context
    mark = e.problem_mark or e.context_mark
    loc = _loc(file, mark) if mark else Location(file)
    if not problem:
        return SpecError.at(loc, f"invalid YAML: {context}")
    notes = ()
    if context and problem.startswith("but "):
        # the composer splits one sentence: 'expected a single document in the stream', 'but found ...'
        problem = f"{context}, {problem}"
    elif context and e.context_mark and _loc(file, e.context_mark) != loc:
        notes = (Note(_loc(file, e.context_mark), context),)
    return SpecError.at(loc, f"invalid YAML: {problem}", notes)


def _value_loc(file: str, node) -> Location:
    # Inside the quotes of a quoted scalar, so an expression error's column offset lands on its character.
    loc = _loc(file, node.start_mark)
    quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
    return loc.shifted(1) if quoted else loc


def _offset_loc(text: str, index: int, file: str) -> Location:
    line = text.count("\n", 0, index) + 1
    return Location(file, line, index - (text.rfind("\n", 0, index) + 1) + 1)


# What YAML makes of some unquoted words by itself, which specs do not take as values.
_IMPLICIT_KINDS = {"tag:yaml.org,2002:timestamp": "a date or time", "tag:yaml.org,2002:value": "YAML's value key"}


def _refuse_tag(node, file: str) -> None:
    # Tags ask for constructed objects (!!python/object/apply:os.system [...], !!set {...}). Check
    # every node, not only scalars: a tagged list or mapping must not pass as the plain data under it.
    if isinstance(node, yaml.MappingNode):
        allowed = node.tag == "tag:yaml.org,2002:map"
    elif isinstance(node, yaml.SequenceNode):
        allowed = node.tag == "tag:yaml.org,2002:seq"
    else:
        allowed = node.tag in _SCALAR_TAGS
    if allowed:
        return
    mark = node.start_mark
    if (isinstance(node, yaml.ScalarNode) and node.tag in _IMPLICIT_KINDS and not node.style
            and not (mark.buffer or "")[mark.pointer:].startswith("!")):
        # an unquoted 2024-01-01 is a date to YAML: the user wrote a value, not a tag
        raise SpecError.at(_loc(file, node.start_mark),
                           f"YAML reads the unquoted {node.value} as {_IMPLICIT_KINDS[node.tag]}, which specs "
                           f"do not take; quote it (\"{node.value}\") to keep it as text")
    raise SpecError.at(_loc(file, node.start_mark),
                       f"YAML tag '{node.tag}' is not allowed in specs (only plain values)")


def _convert(node, file: str, loader) -> Any:
    _refuse_tag(node, file)
    if isinstance(node, yaml.MappingNode):
        out = LocDict()
        out.loc, out.key_locs, out.value_locs = _loc(file, node.start_mark), {}, {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                raise SpecError.at(_loc(file, key_node.start_mark), "mapping keys must be plain names")
            _refuse_tag(key_node, file)
            key = key_node.value
            if key in out:
                first = out.key_locs[key]
                raise SpecError.at(_loc(file, key_node.start_mark),
                                   f"duplicate key '{key}' (first given at line {first.line})")
            out[key] = _convert(value_node, file, loader)
            out.key_locs[key] = _loc(file, key_node.start_mark)
            out.value_locs[key] = _value_loc(file, value_node)
        return out
    if isinstance(node, yaml.SequenceNode):
        out = LocList(_convert(item, file, loader) for item in node.value)
        out.loc = _loc(file, node.start_mark)
        out.item_locs = [_value_loc(file, item) for item in node.value]
        return out
    return yaml.SafeLoader.yaml_constructors[node.tag](loader, node)


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
# PyYAML's Python reader refuses these characters; libyaml's set differs, so leave them to it
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
_STR = "tag:yaml.org,2002:str"


class _Unusual(Exception):
    """What the event composer leaves to the Python composer (see the module's docstring)."""


def _compose_events(text: str, file: str) -> Any:
    """The one mapping document in `text` as parse_yaml makes it, composed from libyaml's events
    (an iterative parser: no C recursion on deep nesting). Raises _Unusual where the Python
    composer would refuse the file or compose it otherwise, or might."""
    loader = _FAST_LOADER(text)
    try:
        next_event = loader.get_event
        if type(next_event()) is not yaml.StreamStartEvent or type(next_event()) is not yaml.DocumentStartEvent:
            raise _Unusual
        first = next_event()
        if type(first) is not yaml.MappingStartEvent:
            raise _Unusual      # an empty file, a lone value, an alias: said by the Python path
        out = _compose_from(first, next_event, loader, file, 1)[0]
        if type(next_event()) is not yaml.DocumentEndEvent or type(next_event()) is not yaml.StreamEndEvent:
            raise _Unusual      # a second document
        return out
    finally:
        loader.dispose()


def _compose_from(event, next_event, loader, file: str, depth: int) -> tuple[Any, Location]:
    """The value whose first event is `event`, and its location as _value_loc gives it."""
    if depth > MAX_NESTING or event.anchor is not None or getattr(event, "tag", None) is not None:
        raise _Unusual
    kind = type(event)
    mark = event.start_mark
    loc = Location(file, mark.line + 1, mark.column + 1)
    if kind is yaml.ScalarEvent:
        tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR:
            value = event.value
        elif tag in _SCALAR_TAGS:
            node = yaml.ScalarNode(tag, event.value, mark, event.end_mark, event.style)
            value = yaml.SafeLoader.yaml_constructors[tag](loader, node)
        else:
            raise _Unusual
        return value, (loc.shifted(1) if event.style in ("'", '"') else loc)
    if kind is yaml.MappingStartEvent:
        out = LocDict()
        out.loc, out.key_locs, out.value_locs = loc, {}, {}
        key_event = next_event()
        while type(key_event) is not yaml.MappingEndEvent:
            if (type(key_event) is not yaml.ScalarEvent or key_event.anchor is not None or key_event.tag is not None
                    or loader.resolve(yaml.ScalarNode, key_event.value, key_event.implicit) not in _SCALAR_TAGS
                    or key_event.value in out or depth >= MAX_NESTING):
                raise _Unusual
            key, key_mark = key_event.value, key_event.start_mark
            out[key], out.value_locs[key] = _compose_from(next_event(), next_event, loader, file, depth + 1)
            out.key_locs[key] = Location(file, key_mark.line + 1, key_mark.column + 1)
            key_event = next_event()
        return out, loc
    if kind is yaml.SequenceStartEvent:
        out, locs = LocList(), []
        item = next_event()
        while type(item) is not yaml.SequenceEndEvent:
            value, value_loc = _compose_from(item, next_event, loader, file, depth + 1)
            out.append(value)
            locs.append(value_loc)
            item = next_event()
        out.loc, out.item_locs = loc, locs
        return out, loc
    raise _Unusual              # an alias


def load_yaml(path: Path, display: str | None = None, trusted: bool = False) -> Any:
    display = display or str(path)
    return parse_yaml(read_text(path, display), display, trusted)


def location_of(raw: Any, path: tuple, fallback: Location) -> Location:
    """The location of the value reached by following `path` (keys and indices) from `raw`."""
    loc = getattr(raw, "loc", fallback)
    current = raw
    for step in path:
        if isinstance(current, LocDict) and step in current:
            loc = current.value_locs[step]
            current = current[step]
        elif isinstance(current, LocDict) and isinstance(step, str) and step not in current:
            # an unknown or missing key: point at the mapping that should (not) hold it
            return getattr(current, "loc", loc)
        elif isinstance(current, LocList) and isinstance(step, int) and 0 <= step < len(current):
            loc = current.item_locs[step]
            current = current[step]
        else:
            break
    return loc


def key_location(raw: Any, key: str) -> Location | None:
    if isinstance(raw, LocDict) and key in raw.key_locs:
        return raw.key_locs[key]
    return None
