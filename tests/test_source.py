"""The YAML reader: plain data only, with locations; tags, aliases and duplicate keys refused."""

import pytest

from graphnet.errors import SpecError
from graphnet.source import parse_yaml


def test_values_keep_their_locations():
    data = parse_yaml("a: 1\nb:\n  - x\n  - {c: 2.5}\n", "f.yaml")
    assert data == {"a": 1, "b": ["x", {"c": 2.5}]}
    assert (data.key_locs["b"].line, data.key_locs["b"].col) == (2, 1)
    assert (data["b"].item_locs[1].line, data["b"].item_locs[1].col) == (4, 5)
    assert data["b"][1].value_locs["c"].col == 9


@pytest.mark.parametrize("text,line,col,message", [
    ("a: 1\na: 2\n", 2, 1, "duplicate key 'a' (first given at line 1)"),
    ("a: &x [1]\nb: *x\n", 2, 4, "YAML aliases (*name) are not supported"),
    ("a: !!python/object/apply:os.system ['echo hi']\n", 1, 4, "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"),
    ("a:\n\t- 1\n", 2, 1, "invalid YAML"),
    ("", 1, 1, "the file is empty"),
    ("a: [1, 2\n", 2, 1, "invalid YAML"),
])
def test_bad_yaml_is_a_located_error(text, line, col, message):
    with pytest.raises(SpecError) as info:
        parse_yaml(text, "f.yaml")
    d = info.value.diagnostics[0]
    assert (d.loc.line, d.loc.col) == (line, col)
    assert d.message.startswith(message)


def test_deep_nesting_is_refused():
    with pytest.raises(SpecError, match="nested more than"):
        parse_yaml("a: " + "[" * 100 + "]" * 100, "f.yaml")


def test_keys_are_names_not_yaml_booleans():
    # `on:` would be the boolean true under YAML 1.1; as a key it stays the name it reads as
    assert list(parse_yaml("on: 1\nno: 2\n", "f.yaml")) == ["on", "no"]
