"""The ONNX front end: a ModelProto (or an ONNX file nobody vouched for) becomes spec text and
weights. DESIGN "ONNX import".

- reader.py: the file read under limits (size, nesting, external data confined and sized);
- convert.py: ONNX values and nodes -> a flat list of typed graphnet op nodes (Imported);
  ops_map.py, ops_shape.py and ops_resize.py: one converter per ONNX op;
- blocks.py: repeated subgraphs and known layers folded into blocks and std calls;
- emit.py: the spec text.

The spec text is the contract: the surface loads it like a hand-written spec (graphnet.import_onnx),
so that what validate, run, render and export see is exactly what the user can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..errors import Location, SpecError
from . import ops_map, ops_resize  # noqa: F401  (register the converters, ops_shape's too)
from .args import CONVERTERS, check_supported
from .convert import Converter, Imported
from .emit import flat_spec, weights_of
from .reader import check_model, parse_model, read_model

MIN_OPSET, MAX_OPSET = 7, 21


@dataclass
class ImportResult:
    text: str                          # the spec
    weights: dict[str, np.ndarray]     # qualified param name -> array
    names: dict[str, str]              # graphnet name -> ONNX name, where they differ
    display: str                       # what errors about the spec call it
    flat: Imported


def read_source(source) -> tuple[onnx.ModelProto, str]:
    """The model and the name errors call it: a path is read under reader.py's limits; a ModelProto
    or bytes in memory are checked the same way (with no external data allowed)."""
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        check_model(model, "<model>", None)
        return model, "<model>"
    if isinstance(source, (bytes, bytearray)):
        model = parse_model(bytes(source), "<model>")
        check_model(model, "<model>", None)
        return model, "<model>"
    if isinstance(source, (str, Path)):
        return read_model(source), str(source)
    raise TypeError(f"import_onnx takes a path, bytes or an onnx.ModelProto, got {type(source).__name__}")


def _normalized(model: onnx.ModelProto, display: str) -> onnx.ModelProto:
    if model.functions:
        try:
            model = onnx.inliner.inline_local_functions(model)
        except Exception as e:        # noqa: BLE001  (onnx's C++ raises several kinds)
            raise SpecError.at(Location(display), f"its local functions cannot be inlined: {e}") from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise SpecError.at(Location(display), "the model imports no version of the default ONNX domain")
    if opset < MIN_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, 13)
        except Exception as e:        # noqa: BLE001
            raise SpecError.at(Location(display), f"opset {opset} is older than {MIN_OPSET} and onnx's version "
                                                  f"converter cannot bring it up: {e}") from None
    return model


def import_model(source, flat: bool = False) -> ImportResult:
    """Spec text and weights for an ONNX model (a path, bytes or a ModelProto); raises SpecError."""
    model, display = read_source(source)
    original = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    model = _normalized(model, display)
    converter = Converter(model, display)
    converter.original_opset = original
    imported = converter.run(CONVERTERS, check_supported)
    if isinstance(source, (str, Path)):
        stem = Path(source).stem
        imported.name = _spec_name(imported.name, stem)
    text = flat_spec(imported)
    spec_display = str(Path(display).with_suffix(".yaml")) if display != "<model>" else "<imported>.yaml"
    if not flat:
        from .blocks import structured_spec
        folded = structured_spec(imported)
        if folded is not None and _loads(folded, spec_display, imported):
            text = folded
    return ImportResult(text, weights_of(imported), imported.names, spec_display, imported)


def _loads(text: str, display: str, imported: Imported) -> bool:
    """Whether the folded spec loads and declares the flat import's params, each at its path with
    its shape, dtype and trainability. Where block recovery made one that does not, the flat
    spec, which always does, is written instead."""
    from ..expand import expand
    from ..load import load_program
    try:
        graph = expand(load_program(display, text, trusted=True))
    except SpecError:
        return False
    want = {p.path: (tuple(p.array.shape), p.array.dtype.name, p.trainable) for p in imported.params.values()}
    got = {name: (tuple(d.value if d.is_const() else None for d in p.type.shape), p.type.dtype, p.trainable)
           for name, p in graph.params.items()}
    return got == want


def _spec_name(graph_name: str, stem: str) -> str:
    from .convert import identifier
    generic = {"main_graph", "torch_jit", "torch-jit-export", "graph", "imported", "model"}
    return identifier(stem, "model") if graph_name in generic or graph_name.startswith("torch_jit") else graph_name
