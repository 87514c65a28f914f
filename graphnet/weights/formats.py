"""Weights read and written in every format graphnet knows, chosen by the file's name: .npz,
.safetensors, PyTorch checkpoints (.pt, .pth, .bin), a Hugging Face model folder or its shard
index (`*.index.json`). A file with another name is recognized by its first bytes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import Location, SpecError
from .hf_folder import read_folder, read_index
from .npz import read_npz, save_npz
from .pytorch import read_torch
from .safetensors_file import read_safetensors, save_safetensors
from .tensors import WeightFile, regular_file

TORCH_SUFFIXES = (".pt", ".pth", ".bin")
WRITERS = {".npz": save_npz, ".safetensors": save_safetensors}
_READS = ("; graphnet reads .npz, .safetensors, PyTorch checkpoints (.pt, .pth, .bin) and Hugging Face "
          "model folders")


def load_weights(path: str | Path, prefix: str | None = None) -> WeightFile:
    """The tensors of a weight file or folder by name, read lazily; with `prefix` ('bert.'), only
    those whose names start with it, named without it."""
    return _reader(Path(path))(Path(path)).select(prefix)


def _reader(path: Path):
    name = path.name.lower()
    if path.is_dir():
        return read_folder
    if name.endswith(".index.json"):
        return read_index
    if name.endswith(".safetensors"):
        return read_safetensors
    if name.endswith(TORCH_SUFFIXES):
        return read_torch
    if name.endswith(".npz"):
        return read_npz
    with regular_file(path).open("rb") as f:
        head = f.read(9)
        if head[:4] == b"PK\x03\x04":
            f.seek(0)
            try:
                with zipfile.ZipFile(f) as archive:
                    if any(n.endswith("/data.pkl") for n in archive.namelist()):
                        return read_torch
            except zipfile.BadZipFile:
                pass
        elif len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") <= path.stat().st_size:
            return read_safetensors
    return lambda p: read_npz(p, hint=_READS)


def weight_writer(path: str | Path, where: Location | None = None):
    """The writer for weights named `path`, by its extension; another extension is an error at
    `where` (the path itself by default)."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITERS:
        raise SpecError.at(where or Location(str(path)), f"'{path}': weights are written as .npz or .safetensors, "
                           f"chosen by the name's extension, and {f'{suffix!r}' if suffix else 'no extension'} is neither")
    return WRITERS[suffix]


def save_weights(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Atomically, in the format the name's extension says (.npz or .safetensors)."""
    weight_writer(path)(path, arrays)
