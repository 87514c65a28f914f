"""Weights: read from and written to .npz files keyed by qualified param name (init.init_weights
makes them from each param's scheme). Files are read with allow_pickle=False and checked against the graph."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import Diagnostics, Location, SpecError, did_you_mean
from .files import write_npz
from .graph import Graph


def check_weights(graph: Graph, weights: dict[str, np.ndarray], source: str, allow_nonfinite: bool = False) -> None:
    """Every param present with its declared shape and dtype, nothing extra."""
    diags = Diagnostics()
    where = Location(source)
    for name, p in graph.params.items():
        if name not in weights:
            diags.add(where, f"weight '{name}' is missing (declared at {p.loc})"
                      f"{did_you_mean(name, [k for k in weights if k not in graph.params])}")
            continue
        w = np.asarray(weights[name])
        shape = tuple(d.value for d in p.type.shape)
        if w.shape != shape:
            diags.add(where, f"weight '{name}' has shape {list(w.shape)} but the spec declares {list(shape)} (at {p.loc})")
        elif w.dtype != np.dtype(p.type.dtype):
            diags.add(where, f"weight '{name}' has dtype {w.dtype} but the spec declares {p.type.dtype} (at {p.loc})")
        elif not allow_nonfinite and w.dtype.kind == "f" and not np.all(np.isfinite(w)):
            bad = int(np.size(w) - np.count_nonzero(np.isfinite(w)))
            diags.add(where, f"weight '{name}' has {bad} NaN or infinite value{'s' if bad != 1 else ''} "
                      f"(--allow-nonfinite accepts them; declared at {p.loc})")
    for name in weights:
        if name not in graph.params:
            diags.add(where, f"weight '{name}' is not a param of '{graph.name}'{did_you_mean(name, graph.params)}")
    diags.raise_if_any()


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    where = Location(str(path))
    try:
        with path.open("rb") as f:
            # np.load also takes .npy files (an array, not a mapping) and reads anything else as a
            # pickle, whose refusal advises loading it unsafely; only a zip of arrays is an .npz.
            if not zipfile.is_zipfile(f):
                raise SpecError.at(where, "not a .npz file (a zip archive of arrays, as numpy.savez writes)")
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                problem = _archive_problem(archive)
            if problem:
                raise SpecError.at(where, f"not a readable .npz file: {problem}")
            f.seek(0)
            with np.load(f, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise SpecError.at(where, "file not found") from None
    except MemoryError:
        raise SpecError.at(where, "not a readable .npz file: its arrays do not fit in memory") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as e:
        # zipfile says NotImplementedError for a compression it lacks, RuntimeError for a password
        raise SpecError.at(where, f"not a readable .npz file: {e}") from None


def _archive_problem(archive: zipfile.ZipFile) -> str | None:
    """What is wrong with the members of an .npz, checked from their headers before any array is
    read: each must be one .npy array (np.load would hand anything else over as raw bytes), named
    once, holding as many bytes as its header says (a header may claim terabytes)."""
    seen = set()
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(".npy"):
            return f"'{name}' in the archive is not a .npy array"
        if name in seen:
            return f"the archive holds '{name}' twice"
        seen.add(name)
        if info.flag_bits & 0x1:
            return f"'{name}' in the archive is encrypted"
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
            return f"'{name}' in the archive is compressed by a method zipfile cannot read ({info.compress_type})"
        with archive.open(info) as member:
            try:
                version = np.lib.format.read_magic(member)
            except ValueError:
                return f"'{name}' in the archive is not a .npy array (no .npy magic string)"
            if version not in ((1, 0), (2, 0)):
                continue   # np.load reads or refuses the rarer formats itself
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(member)
            if dtype.hasobject:
                continue   # refused by np.load(allow_pickle=False), never unpickled
            claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
            held = info.file_size - member.tell()
            if claimed > held:
                return (f"'{name}' says it holds {dtype}{list(shape)} ({claimed} bytes) "
                        f"but has {held} bytes of data")
    return None


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    write_npz(path, arrays)      # not np.savez(**arrays): an array named `file` or `allow_pickle` would clash
