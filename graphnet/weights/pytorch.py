"""PyTorch checkpoints (.pt, .pth, .bin): a state_dict, or a dict holding one under 'state_dict' or
'model', as torch.save writes them. Read only with torch.load(weights_only=True), whose unpickler
builds tensors and plain containers and refuses any other global, so nothing in a file runs; and
only when torch is installed (graphnet's `torch` extra). Storages are memory-mapped, so a file
cannot make torch allocate more than it holds."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import Location, SpecError
from .tensors import ITEMSIZE, TensorInfo, WeightFile, regular_file

INSTALL = "pip install 'graphnet[torch]'"


def read_torch(path: str | Path) -> WeightFile:
    """The tensors of a PyTorch checkpoint, memory-mapped; values are copied out when read."""
    path = Path(path)
    where = Location(str(path))
    with regular_file(path).open("rb") as f:
        # torch.save has written zip archives since PyTorch 1.6; the older format is a bare pickle
        # stream, which cannot be memory-mapped and is not handed to an unpickler at all
        if not zipfile.is_zipfile(f):
            raise SpecError.at(where, "not a PyTorch checkpoint in the zip format torch.save writes (since "
                               "PyTorch 1.6); load an older one with its PyTorch and save it again")
    try:
        import torch
    except ImportError:
        raise SpecError.at(where, f"reading a PyTorch checkpoint needs PyTorch, which is not installed: "
                           f"{INSTALL} (or save the weights as .safetensors, which needs no torch)") from None
    try:
        with warnings.catch_warnings():
            # torch's notes to its own users (a sparse tensor's invariants scanned) are not graphnet's
            # output: what the file holds is reported below, located at it
            warnings.simplefilter("ignore")
            loaded = torch.load(str(path), weights_only=True, map_location="cpu", mmap=True)
    except pickle.UnpicklingError as e:
        refused = _refusal(e)
        if refused is None:
            raise SpecError.at(where, f"not a readable PyTorch checkpoint: its pickle is broken ({_last_line(e)})") from None
        raise SpecError.at(where, f"refused: its pickle asks for more than tensors ({refused}); "
                           "it was not loaded and nothing in it ran") from None
    except MemoryError:
        raise SpecError.at(where, "not a readable PyTorch checkpoint: it does not fit in memory") from None
    except Exception as e:   # noqa: BLE001 -- torch reports a broken archive as RuntimeError, ValueError, KeyError...
        raise SpecError.at(where, f"not a readable PyTorch checkpoint: {_first_line(e)}") from None
    state = _state_dict(loaded, where, torch)
    infos = {name: TensorInfo(_dtype_name(t.dtype), tuple(t.shape)) for name, t in state.items()}

    def read(names: list[str]) -> dict[str, np.ndarray]:
        out = {}
        for name in names:
            t = state[name].detach()
            if t.dtype == torch.bfloat16:
                t = t.float()           # exact: every bfloat16 is a float32
            out[name] = np.array(t.contiguous().numpy())      # a copy, off the mapped file
        return out

    return WeightFile(str(path), infos, read)


def _state_dict(loaded, where: Location, torch) -> dict:
    """The state_dict in what torch.load returned, every entry a dense tensor of a dtype graphnet
    reads."""
    if not isinstance(loaded, Mapping):
        raise SpecError.at(where, f"the checkpoint holds a {type(loaded).__name__}, not a state_dict "
                           "(a dict of tensors by name)")
    for key in ("state_dict", "model"):
        if isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    bad = []
    for name, t in loaded.items():
        if not isinstance(name, str):
            bad.append(f"the key {name!r} is of type {type(name).__name__}, not a name")
        elif not isinstance(t, torch.Tensor):
            bad.append(f"'{name}' is of type {type(t).__name__}, not a tensor")
        elif t.layout != torch.strided or t.is_quantized:
            bad.append(f"'{name}' is a {t.layout} tensor{' (quantized)' if t.is_quantized else ''}, not a dense one")
        elif _dtype_name(t.dtype) not in ITEMSIZE:
            bad.append(f"'{name}' is {t.dtype}, which graphnet does not read")
    if bad:
        more = f" (and {len(bad) - 1} more entries like it)" if len(bad) > 1 else ""
        raise SpecError.at(where, f"not a state_dict of tensors: {bad[0]}{more}")
    return dict(loaded)


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _refusal(e: Exception) -> str | None:
    """What torch's unpickler refused, without its advice to load the file unsafely; None when it
    refused nothing but found the pickle broken."""
    for line in str(e).splitlines():
        if "GLOBAL" in line or "nsupported" in line:
            return line.strip().rstrip(".")
    return None


def _last_line(e: Exception) -> str:
    text = [line.strip() for line in str(e).splitlines() if line.strip()]
    return text[-1] if text else type(e).__name__


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
