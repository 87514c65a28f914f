"""The libyaml event composer (source._compose_events) makes exactly what PyYAML's Python composer
makes, locations included, and leaves every file it might compose otherwise to that composer, whose
messages are the ones users see."""

from pathlib import Path

import pytest
import yaml

from graphnet import source
from graphnet.errors import SpecError
from graphnet.source import LocDict, LocList, parse_yaml

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "graphnet" / "std").glob("*.yaml"))

pytestmark = pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml")


def _python_path(text: str, file: str = "f.yaml"):
    # the composer every file went through before the event composer; the same one it falls back to
    fast, source._FAST_LOADER = source._FAST_LOADER, None
    try:
        return parse_yaml(text, file)
    finally:
        source._FAST_LOADER = fast


def _same(a, b, where="") -> None:
    """Equal values of equal types, with equal locations at every level."""
    assert type(a) is type(b), where
    if isinstance(a, LocDict):
        assert list(a) == list(b) and a.loc == b.loc, where
        assert a.key_locs == b.key_locs and a.value_locs == b.value_locs, where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, LocList):
        assert len(a) == len(b) and a.loc == b.loc and a.item_locs == b.item_locs, where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_spec_and_std_file_composes_as_the_python_path_does(path):
    text = path.read_text()
    _same(source._compose_events(text, path.name), _python_path(text, path.name))


@pytest.mark.parametrize("text", [
    "\ufeffa: 1\n",                                         # a byte order mark
    "a: 1\r\nb:\r\n  - x\r\n",                               # Windows line ends
    "é: 'ünï'\nb: [\"ß\", 2]  # ça\nc: 日本: 3\n".replace("c: 日本: 3", "c: {日本: 3}"),   # columns past wide chars
    "a: |\n  one\n  two\nb: >-\n  folded\n  text\n",           # block scalars
    "a: \"esc\\t\\u00e9\\n\"\nb: 'it''s'\n",                  # escapes in quotes
    "a: {b: [1, 2.5, -3e2, 0x1f, .inf], c: ~, d: null, e: true, f: off}\n",
    "a:\n- 1\n- - 2\n  - {x: y}\n",                          # sequences not indented, nested
    "a: plain\n  continued\nb:\n",                          # a folded plain scalar, an empty value
    "'quoted key': 1\n\"k2\": 2\n? k3\n: 3\n",                # quoted and explicit keys
    "---\na: 1\n...\n",                                     # document markers
])
def test_tricky_yaml_composes_as_the_python_path_does(text):
    _same(parse_yaml(text, "f.yaml"), _python_path(text))
    _same(source._compose_events(text, "f.yaml"), _python_path(text))


@pytest.mark.parametrize("text", [
    "a: 1\na: 2\n",                                         # duplicate key
    "a: &x [1]\nb: *x\n",                                   # alias
    "a: &x 1\n",                                            # anchor
    "a: !!python/object/apply:os.system ['echo hi']\n",    # tag
    "a: !!str 1\n",                                         # an allowed tag, still left to the Python path
    "a: 2024-01-01\n",                                      # a date
    "<<: {a: 1}\n",                                         # merge key
    "[1]: 2\n",                                             # a key that is not a name
    "2024-01-01: 2\n",
    "a: " + "[" * 100 + "]" * 100,                          # deep nesting
    "a: 1\n---\nb: 2\n",                                    # two documents
    "",                                                     # empty
    "just a value\n",                                       # not a mapping
    "a:\n\t- 1\n",                                          # a tab
    "a: [1, 2\n",                                           # unclosed
    "a: \x07\n",                                            # a control character
])
def test_unusual_yaml_is_left_to_the_python_path_with_its_message(text):
    with pytest.raises((source._Unusual, yaml.YAMLError)):
        source._compose_events(text, "f.yaml")
    try:
        expected = _python_path(text)
    except SpecError as e:
        with pytest.raises(SpecError) as info:
            parse_yaml(text, "f.yaml")
        assert info.value.render() == e.render()
    else:
        _same(parse_yaml(text, "f.yaml"), expected)


def test_nesting_at_the_limit_composes_and_past_it_is_refused():
    deep = "a: " + "[" * (source.MAX_NESTING - 1) + "]" * (source.MAX_NESTING - 1)
    _same(source._compose_events(deep, "f.yaml"), _python_path(deep))
    with pytest.raises(SpecError, match="nested more than"):
        parse_yaml("a: " + "[" * source.MAX_NESTING + "]" * source.MAX_NESTING, "f.yaml")
