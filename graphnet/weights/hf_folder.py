"""Hugging Face model folders, as save_pretrained writes them: model.safetensors, or its shards
listed by model.safetensors.index.json; pytorch_model.bin (or its shard index) when there are no
safetensors. An index names each tensor's shard; a shard must lie inside the index's folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import Location, SpecError
from .pytorch import read_torch
from .safetensors_file import read_safetensors
from .tensors import WeightFile, regular_file

# In the order looked for: safetensors first, as transformers does
FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
MAX_INDEX_BYTES = 16 << 20      # an index of a 400-billion-parameter model is under 1 MB


def read_folder(folder: Path) -> WeightFile:
    for name in FILES:
        path = folder / name
        if path.exists():
            return read_index(path) if name.endswith(".index.json") else _read_shard(path)
    raise SpecError.at(Location(str(folder)), "a folder without weights: a Hugging Face model folder holds "
                       f"{', '.join(FILES[:-1])} or {FILES[-1]}")


def read_index(path: Path) -> WeightFile:
    """The tensors of every shard an index lists, as one file."""
    where = Location(str(path))
    size = regular_file(path).stat().st_size
    if size > MAX_INDEX_BYTES:
        raise SpecError.at(where, f"a shard index of {size} bytes, over the bound of {MAX_INDEX_BYTES}")
    try:
        index = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SpecError.at(where, f"not a readable shard index: not JSON ({e})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise SpecError.at(where, "not a readable shard index: no 'weight_map' of tensor names to shard files")
    folder = path.parent.resolve()
    shards = {}
    for shard in sorted(set(weight_map.values())):
        target = path.parent / shard
        if Path(shard).is_absolute() or "\0" in shard or folder not in target.resolve().parents:
            raise SpecError.at(where, f"the shard '{shard}' is outside the index's folder; shards must be beside it")
        shards[shard] = _read_shard(target)
    infos = {}
    for name, shard in weight_map.items():
        if name not in shards[shard].infos:
            raise SpecError.at(Location(shards[shard].source), f"'{name}' is not in this shard, where {path.name} says it is")
        infos[name] = shards[shard].infos[name]
    for shard, tensors in shards.items():
        stray = next((name for name in tensors.infos if weight_map.get(name) != shard), None)
        if stray is not None:
            raise SpecError.at(Location(tensors.source), f"this shard holds '{stray}', which {path.name} does not list in it")

    def read(names: list[str]) -> dict[str, np.ndarray]:
        out = {}
        for shard, tensors in shards.items():
            out.update(tensors.read([n for n in names if weight_map[n] == shard]))
        return {name: out[name] for name in names}

    return WeightFile(str(path), infos, read)


def _read_shard(path: Path) -> WeightFile:
    return read_safetensors(path) if path.name.endswith(".safetensors") else read_torch(path)
