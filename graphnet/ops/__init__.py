"""The op registry: every op class in this package with a `name`, sorted by name. Defining an op's
class in a module here is all it takes to register it.

A command imports only the op modules its spec names (most of a cold `graphnet validate` was
building op classes it never used): `index.py`, generated with the docs (`python -m
graphnet.docgen index > graphnet/ops/index.py`, a test checks it is current), says which module
defines each op. A name the index lacks, or that its module turns out not to define, and every
walk over the whole registry import every module, so a new op works before the index is
regenerated and a stale index never hides or misplaces one."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping

from .base import Example, In, Op, Port, ShapeError, TensorType
from .index import MODULE_OF


def _named_subclasses() -> list[type[Op]]:
    found, todo = [], list(Op.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if "name" in vars(cls):         # bases (Elementwise, _Recurrent) name no op
            found.append(cls)
    return found


def _op_classes() -> tuple[type[Op], ...]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    by_name: dict[str, type[Op]] = {}
    # a class made outside the package is not ours
    for cls in [c for c in _named_subclasses() if c.__module__.startswith(f"{__name__}.")]:
        other = by_name.setdefault(cls.name, cls)
        if other is not cls:
            raise TypeError(f"ops {other.__module__}.{other.__qualname__} and {cls.__module__}.{cls.__qualname__} "
                            f"share the name '{cls.name}'")
    return tuple(by_name[name] for name in sorted(by_name))


class _Registry(Mapping):
    """Op name -> op class, importing op modules as names are looked up (see the module's docstring)."""

    def __init__(self) -> None:
        self._found: dict[str, type[Op]] = {}
        self._all: tuple[type[Op], ...] | None = None

    def __getitem__(self, name: str) -> type[Op]:
        cls = self._found.get(name)
        if cls is not None:
            return cls
        module = MODULE_OF.get(name)
        if module is not None and self._all is None:
            try:
                module = importlib.import_module(f"{__name__}.{module}").__name__
            except ModuleNotFoundError:        # a stale index naming a module that is gone
                return {cls.name: cls for cls in self.every()}[name]
            for cls in _named_subclasses():
                if cls.__module__ == module:
                    self._found.setdefault(cls.name, cls)
            if name in self._found:
                return self._found[name]
        return {cls.name: cls for cls in self.every()}[name]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self[name]
        except KeyError:
            return False
        return True

    def every(self) -> tuple[type[Op], ...]:
        """Every op class, sorted by name (the whole package imported)."""
        if self._all is None:
            self._all = _op_classes()
            self._found = {cls.name: cls for cls in self._all}
        return self._all

    def __iter__(self) -> Iterator[str]:
        return iter([cls.name for cls in self.every()])

    def __len__(self) -> int:
        return len(self.every())


OPS: Mapping[str, type[Op]] = _Registry()


def __getattr__(name: str):
    # REGISTRY (every op class, sorted by name) imports every op module, so only when it is asked for.
    if name == "REGISTRY":
        return OPS.every()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["OPS", "REGISTRY", "Example", "In", "Op", "Port", "ShapeError", "TensorType"]
