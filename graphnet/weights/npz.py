""".npz files: a zip archive of .npy arrays keyed by name, as numpy.savez writes. Every member's
header is checked before any array is read, arrays are read with allow_pickle=False, and what the
archive inflates to is bounded by its size."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import Location, SpecError
from ..files import atomic_write
from ..types import format_bytes
from .tensors import TensorInfo, WeightFile, regular_file

# A deflated member of zeros shrinks about a thousandfold, so a megabyte can claim a gigabyte of
# honest arrays (a zip bomb). Real weights barely compress: an archive may inflate to at most
# MAX_INFLATION times its own size, or to INFLATION_FLOOR bytes whatever its size.
MAX_INFLATION = 100
INFLATION_FLOOR = 64 << 20

_NOT_NPZ = "not a .npz file (a zip archive of arrays, as numpy.savez writes)"


def read_npz(path: str | Path, hint: str = "") -> WeightFile:
    """The arrays of an .npz file, their headers checked and nothing else read yet. `hint` is added
    to the error for a file that is no zip archive at all."""
    path = Path(path)
    where = Location(str(path))
    with _errors(where):
        with regular_file(path).open("rb") as f:
            # np.load also takes .npy files (an array, not a mapping) and reads anything else as a
            # pickle, whose refusal advises loading it unsafely; only a zip of arrays is an .npz.
            if not zipfile.is_zipfile(f):
                raise SpecError.at(where, _NOT_NPZ + hint)
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                infos = _archive_infos(archive, path.stat().st_size, where)

    def read(names: list[str]) -> dict[str, np.ndarray]:
        with _errors(where), regular_file(path).open("rb") as f, np.load(f, allow_pickle=False) as data:
            return {name: data[name] for name in names}

    return WeightFile(str(path), infos, read)


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, by name."""
    return read_npz(path).read()


class _errors:
    """What zipfile and np.load raise for a bad archive, as one located error."""

    def __init__(self, where: Location):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if kind is None or issubclass(kind, SpecError):
            return False
        if issubclass(kind, MemoryError):
            raise SpecError.at(self.where, "not a readable .npz file: its arrays do not fit in memory") from None
        # zipfile says NotImplementedError for a compression it lacks, RuntimeError for a password
        if issubclass(kind, (OSError, ValueError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError)):
            raise SpecError.at(self.where, f"not a readable .npz file: {e}") from None
        return False


def _archive_infos(archive: zipfile.ZipFile, size: int, where: Location) -> dict[str, TensorInfo]:
    """Each member's dtype and shape, from its .npy header. Each member must be one .npy array
    (np.load would hand anything else over as raw bytes), named once, of a dtype read without
    pickles, holding as many bytes as its header says (a header may claim terabytes); and the
    archive must not inflate past its bound."""
    members = archive.infolist()
    inflated = sum(info.file_size for info in members)
    if inflated > max(INFLATION_FLOOR, MAX_INFLATION * size):
        raise SpecError.at(where, f"not a readable .npz file: its members inflate to {format_bytes(inflated)}, "
                           f"over {MAX_INFLATION} times the file's {format_bytes(size)} (a zip bomb?)")
    infos = {}
    for info in members:
        problem = _member_problem(archive, info, infos)
        if problem:
            raise SpecError.at(where, f"not a readable .npz file: {problem}")
    return infos


def _member_problem(archive: zipfile.ZipFile, info: zipfile.ZipInfo, infos: dict[str, TensorInfo]) -> str | None:
    name = info.filename
    if not name.endswith(".npy"):
        return f"'{name}' in the archive is not a .npy array"
    key = name[:-len(".npy")]
    if key in infos:
        return f"the archive holds '{name}' twice"
    if info.flag_bits & 0x1:
        return f"'{name}' in the archive is encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        return f"'{name}' in the archive is compressed by a method zipfile cannot read ({info.compress_type})"
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
        except ValueError:
            return f"'{name}' in the archive is not a .npy array (no .npy magic string)"
        if version not in ((1, 0), (2, 0), (3, 0)):
            return f"'{name}' in the archive is a .npy array of a version NumPy does not write ({version})"
        # 3.0 is 2.0 with a UTF-8 header; the headers graphnet can use are ASCII in both
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        try:
            shape, _, dtype = read_header(member)
        except (ValueError, SyntaxError, TypeError):
            # NumPy's own message quotes its parser's internals (`<ast.Call object at 0x...>`)
            return (f"'{name}' in the archive has a header that is not a .npy header (a Python dict literal "
                    "of 'descr', 'fortran_order' and 'shape')")
        if dtype.hasobject:
            return f"Object arrays cannot be loaded when allow_pickle=False ('{name}' holds one; it was not unpickled)"
        claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        held = info.file_size - member.tell()
        if claimed > held:
            return f"'{name}' says it holds {dtype}{list(shape)} ({claimed} bytes) but has {held} bytes of data"
    infos[key] = TensorInfo(dtype.name, tuple(int(d) for d in shape))
    return None


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Written as numpy.savez does, member by member: a name is never a keyword argument, so one
    called `file` or `allow_pickle` is written like any other."""
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
