"""The std library is parsed a file at a time, as its blocks are looked up, and is the same library
the files parsed all at once make: the same blocks in the same order, the same errors."""

import importlib
from pathlib import Path

import pytest

from graphnet.errors import SpecError
from graphnet.load import STD_DIR, _parse_std, _StdBlocks, std_block_names
from graphnet.source import load_yaml

load = importlib.import_module("graphnet.load")     # the module: graphnet.load is also the function

FILES = sorted(STD_DIR.glob("*.yaml"))
BLOCK = "    inputs: {x: [N]}\n    nodes:\n      - {op: relu}\n    outputs: {y: \"1\"}\n"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_names_read_from_a_std_file_are_the_blocks_it_defines(path):
    assert std_block_names(path.read_text()) == list(load_yaml(path, path.name, trusted=True)["blocks"])


def test_the_lazy_library_is_the_whole_library_in_its_order():
    whole = _parse_std(FILES).blocks
    lazy = _StdBlocks(FILES)
    assert list(lazy) == list(whole) and len(lazy) == len(whole)
    assert all(lazy[name] == block for name, block in whole.items())


def test_a_lookup_parses_only_the_file_that_holds_the_block():
    blocks = _StdBlocks(FILES)
    blocks["linear"]
    (file,) = [f for f in FILES if "linear" in std_block_names(f.read_text())]
    assert set(blocks._parsed) == set(std_block_names(file.read_text()))
    assert "no_such_block" not in blocks
    with pytest.raises(KeyError):
        blocks["no_such_block"]


def _std(tmp_path: Path, monkeypatch, files: dict[str, str]) -> list[Path]:
    for name, text in files.items():
        (tmp_path / name).write_text(f"graphnet: 1\nname: std\n{text}")
    monkeypatch.setattr(load, "STD_DIR", tmp_path)
    monkeypatch.setattr(load, "_std_cache", {})
    return sorted(tmp_path.glob("*.yaml"))


def test_a_block_in_two_files_is_the_error_it_always_was(tmp_path, monkeypatch):
    files = _std(tmp_path, monkeypatch, {"a.yaml": f"blocks:\n  x:\n{BLOCK}", "b.yaml": f"blocks:\n  y:\n{BLOCK}  x:\n{BLOCK}"})
    with pytest.raises(SpecError) as eager:
        _parse_std(files)
    with pytest.raises(SpecError) as lazy:
        load.load_std()
    assert lazy.value.render() == eager.value.render()
    assert "block 'std.x' is defined twice" in lazy.value.render()


@pytest.mark.parametrize("hidden", [
    "blocks: {y: {inputs: {x: [N]}, nodes: [{op: relu}], outputs: {y: '1'}}}\n",    # a flow mapping
    f"blocks:\n  \"y\":\n{BLOCK}",                                                 # a quoted name
    f"blocks:\n  ? y\n  :\n{BLOCK}",                                                # an explicit key
])
def test_blocks_the_lines_do_not_show_are_found_by_the_parse(tmp_path, monkeypatch, hidden):
    files = _std(tmp_path, monkeypatch, {"a.yaml": f"blocks:\n  x:\n{BLOCK}", "b.yaml": hidden})
    assert std_block_names(files[1].read_text()) is None
    lazy, whole = load.load_std().blocks, _parse_std(files).blocks
    assert list(lazy) == list(whole) == ["x", "y"]
    assert lazy["y"] == whole["y"]
