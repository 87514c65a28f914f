"""The op registry: every op class in this package with a `name`, sorted by name. Defining an op's
class in a module here is all it takes to register it."""

from __future__ import annotations

import importlib
import pkgutil

from .base import Example, In, Op, Port, ShapeError, TensorType


def _op_classes() -> tuple[type[Op], ...]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    found, todo = [], list(Op.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        # Bases (Elementwise, _Recurrent) name no op; a class made outside the package is not ours.
        if "name" in vars(cls) and cls.__module__.startswith(f"{__name__}."):
            found.append(cls)
    by_name: dict[str, type[Op]] = {}
    for cls in found:
        other = by_name.setdefault(cls.name, cls)
        if other is not cls:
            raise TypeError(f"ops {other.__module__}.{other.__qualname__} and {cls.__module__}.{cls.__qualname__} "
                            f"share the name '{cls.name}'")
    return tuple(by_name[name] for name in sorted(by_name))


REGISTRY: tuple[type[Op], ...] = _op_classes()
OPS: dict[str, type[Op]] = {cls.name: cls for cls in REGISTRY}

__all__ = ["OPS", "REGISTRY", "Example", "In", "Op", "Port", "ShapeError", "TensorType"]
