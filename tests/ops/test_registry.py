"""The registry is derived from the op classes, and op inputs are declared as data."""

from __future__ import annotations

import gc
import importlib
import inspect
import pkgutil

import pytest

import graphnet.ops
from graphnet.ops import OPS, REGISTRY, Op, Port, _op_classes
from graphnet.ops.base import ports


def _classes_in_modules() -> set[type[Op]]:
    """Every op class a module of the package defines, found by reading the modules' names (not by
    walking subclasses, as the registry does)."""
    found = set()
    for info in pkgutil.iter_modules(graphnet.ops.__path__):
        module = importlib.import_module(f"graphnet.ops.{info.name}")
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Op) and "name" in vars(value) and value.__module__ == module.__name__:
                found.add(value)
    return found


def test_the_registry_is_every_op_class_sorted_by_name():
    assert set(REGISTRY) == _classes_in_modules()
    names = [cls.name for cls in REGISTRY]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert OPS == {cls.name: cls for cls in REGISTRY}


def test_two_ops_with_one_name_are_refused():
    clash = type("Relu2", (Op,), {"__module__": "graphnet.ops.elementwise", "name": "relu"})
    with pytest.raises(TypeError, match=r"ops graphnet\.ops\.elementwise\.\w+ and graphnet\.ops\.elementwise\.\w+ "
                                        r"share the name 'relu'"):
        _op_classes()
    del clash
    gc.collect()
    assert _op_classes() == REGISTRY


def test_a_class_made_outside_the_package_is_not_registered():
    outside = type("Outside", (Op,), {"__module__": "elsewhere", "name": "outside"})
    assert outside not in _op_classes()


def test_ports_declare_required_then_optional_then_variadic():
    assert ports("x", "w", optional=("b",)) == (Port("x"), Port("w"), Port("b", optional=True))
    assert ports(variadic="xs") == (Port("xs", variadic=True),)
    assert [str(p) for p in ports("x", optional=("b",), variadic="rest")] == ["x", "b?", "*rest"]


def test_every_op_declares_its_inputs_as_ports():
    for cls in REGISTRY:
        assert all(isinstance(p, Port) for p in cls.inputs), cls.name
        kinds = [2 if p.variadic else 1 if p.optional else 0 for p in cls.inputs]
        assert kinds == sorted(kinds) and kinds.count(2) <= 1, cls.name


def test_a_lookup_imports_only_the_module_the_index_names():
    import graphnet.ops as package
    registry = package._Registry()
    assert registry["softmax"] is OPS["softmax"]
    assert registry._all is None       # no walk over every module
    assert set(registry._found) == {cls.name for cls in REGISTRY if cls.__module__ == "graphnet.ops.softmax"}


@pytest.mark.parametrize("module_of", [{}, {"relu": "softmax"}, {"no_such_op": "softmax"}, {"relu": "no_such_module"}],
                         ids=["missing", "misplaced", "stale", "gone"])
def test_a_stale_index_still_finds_every_op(monkeypatch, module_of):
    import graphnet.ops as package
    monkeypatch.setattr(package, "MODULE_OF", module_of)
    registry = package._Registry()
    assert registry["relu"] is OPS["relu"]
    assert "relu" in registry and "no_such_op" not in registry and None not in registry
    with pytest.raises(KeyError):
        registry["no_such_op"]
    assert list(registry) == [cls.name for cls in REGISTRY]
