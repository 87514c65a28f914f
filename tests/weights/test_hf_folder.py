"""Hugging Face model folders as save_pretrained lays them out: one model.safetensors, shards with
their index, pytorch_model.bin; the index's shards must lie in its folder and agree with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from graphnet.errors import SpecError
from graphnet.weights import load_weights

ARRAYS = {f"encoder.layer.{i}.weight": np.full((2, 2), i, np.float32) for i in range(4)} | {"pooler.bias": np.ones(2, np.float32)}


def _sharded(folder, arrays=ARRAYS, name="model.safetensors", split=2):
    """The tensors in two shards and the index naming them, as transformers writes them."""
    folder.mkdir(exist_ok=True)
    names, weight_map = list(arrays), {}
    stem = name.removesuffix(".safetensors")
    for i, part in enumerate((names[:split], names[split:])):
        shard = f"{stem}-{i + 1:05d}-of-00002.safetensors"
        save_file({k: arrays[k] for k in part}, folder / shard)
        weight_map.update({k: shard for k in part})
    (folder / f"{name}.index.json").write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return folder / f"{name}.index.json"


def _same(got, want=ARRAYS):
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


def test_a_folder_with_model_safetensors(tmp_path):
    save_file(ARRAYS, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text("{}")
    _same(load_weights(tmp_path).read())


def test_sharded_safetensors_read_as_one_file_by_folder_or_index(tmp_path):
    index = _sharded(tmp_path / "m")
    _same(load_weights(tmp_path / "m").read())
    _same(load_weights(index).read())
    part = load_weights(index, prefix="encoder").read(["layer.0.weight", "layer.3.weight"])
    assert part["layer.3.weight"][0, 0] == 3


def test_pytorch_model_bin_when_there_are_no_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({k: torch.from_numpy(v) for k, v in ARRAYS.items()}, tmp_path / "pytorch_model.bin")
    _same(load_weights(tmp_path).read())


def _error(path) -> str:
    with pytest.raises(SpecError) as e:
        load_weights(path)
    return e.value.render()


def test_a_folder_without_weights(tmp_path):
    assert _error(tmp_path) == (f"{tmp_path}:1:1: error: a folder without weights: a Hugging Face model folder holds "
                                "model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
                                "pytorch_model.bin.index.json")


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "link.safetensors", "a\0b"])
def test_a_shard_outside_the_index_folder_is_refused(shard, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    save_file(ARRAYS, tmp_path / "outside.safetensors")
    (folder / "link.safetensors").symlink_to(tmp_path / "outside.safetensors")
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {k: shard for k in ARRAYS}}))
    assert _error(index) == (f"{index}:1:1: error: the shard '{shard}' is outside the index's folder; "
                             "shards must be beside it")


def test_an_index_and_its_shards_must_agree(tmp_path):
    index = _sharded(tmp_path / "m")
    mapping = json.loads(index.read_text())
    first = mapping["weight_map"]["encoder.layer.0.weight"]
    mapping["weight_map"]["encoder.layer.0.weight"] = mapping["weight_map"]["pooler.bias"]
    index.write_text(json.dumps(mapping))
    err = _error(index)
    assert "'encoder.layer.0.weight' is not in this shard, where model.safetensors.index.json says it is" in err
    mapping["weight_map"]["encoder.layer.0.weight"] = first
    del mapping["weight_map"]["encoder.layer.1.weight"]
    index.write_text(json.dumps(mapping))
    assert _error(index) == (f"{tmp_path / 'm' / first}:1:1: error: this shard holds 'encoder.layer.1.weight', "
                             "which model.safetensors.index.json does not list in it")


@pytest.mark.parametrize("text,message", [
    ("{", "not a readable shard index: not JSON"),
    ('{"weight_map": [1]}', "no 'weight_map' of tensor names to shard files"),
    ('{"weight_map": {"a": 3}}', "no 'weight_map' of tensor names to shard files"),
])
def test_a_broken_index(text, message, tmp_path):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(text)
    assert message in _error(index)
