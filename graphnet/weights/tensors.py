"""What every weight reader hands over: a WeightFile, the tensors of a file by name. Each tensor's
dtype and shape come from the file's header and its values are read only when asked for, so a file
is checked against a spec (and a tensor the spec has no use for is refused) before anything large
is allocated."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Location, SpecError
from ..types import ITEMSIZE as PARAM_ITEMSIZE

# The dtypes a weight file may hold, by their NumPy names: graphnet's own and those that checkpoints
# carry and a lossless cast may bring in. bfloat16 has no NumPy dtype: its values are handed over as
# float32, which holds every one of them exactly.
ITEMSIZE = PARAM_ITEMSIZE | {"bfloat16": 2, "int16": 2, "uint64": 8, "uint32": 4, "uint16": 2}


@dataclass(frozen=True)
class TensorInfo:
    dtype: str                  # a key of ITEMSIZE
    shape: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.dtype}{list(self.shape)}"

    @property
    def nbytes(self) -> int:
        n = ITEMSIZE[self.dtype]
        for d in self.shape:
            n *= d
        return n


Reader = Callable[[list[str]], dict[str, np.ndarray]]


class WeightFile(Mapping):
    """The tensors of one weight file (or folder), by name. `infos` says what each one is; `read`
    reads the values of those asked for, in one pass over the file. Indexing reads one tensor."""

    def __init__(self, source: str, infos: dict[str, TensorInfo], reader: Reader,
                 prefix: str = "", outside: int = 0):
        self.source = source
        self.infos = infos
        self._reader = reader
        self.prefix = prefix        # the --weights-prefix this selection was made with
        self.outside = outside      # tensors of the file left out because they lack the prefix

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.infos:
            raise KeyError(name)
        return self.read([name])[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.infos)

    def __len__(self) -> int:
        return len(self.infos)

    def read(self, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        names = list(self.infos if names is None else names)
        return self._reader(names) if names else {}

    def select(self, prefix: str | None) -> "WeightFile":
        """The tensors whose names start with `prefix`, named without it: a sub-module of a bigger
        checkpoint (`bert.` of a BertForSequenceClassification for a BertModel). Names are dotted
        module paths, so a prefix that does not end in '.' gets one."""
        if not prefix:
            return self
        if not prefix.endswith("."):
            prefix += "."
        inside = {name[len(prefix):]: info for name, info in self.infos.items() if name.startswith(prefix)}
        if not inside:
            heads = sorted({name.split(".", 1)[0] + "." for name in self.infos})
            shown = ", ".join(f"'{h}'" for h in heads[:8]) + (", ..." if len(heads) > 8 else "")
            raise SpecError.at(Location(self.source), f"no tensor's name starts with '{prefix}' (--weights-prefix); "
                               f"the names start with {shown or 'nothing: the file holds no tensors'}")
        outer = self._reader

        def read(names: list[str]) -> dict[str, np.ndarray]:
            got = outer([prefix + n for n in names])
            return {n: got[prefix + n] for n in names}

        return WeightFile(self.source, inside, read, self.prefix + prefix, self.outside + len(self.infos) - len(inside))


def regular_file(path: Path) -> Path:
    """`path`, when it is a regular file (through symlinks): a device (/dev/zero), a FIFO or a
    socket would be read forever or block, and a folder is not a file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise SpecError.at(Location(str(path)), "file not found") from None
    except (OSError, ValueError) as e:      # ValueError: a NUL in the name
        raise SpecError.at(Location(str(path)), f"cannot read it: {getattr(e, 'strerror', None) or e}") from None
    if not stat.S_ISREG(mode):
        what = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise SpecError.at(Location(str(path)), f"not a regular file ({what}); weights and inputs are read "
                           "only from regular files")
    return path
