"""Converters of ONNX's resampling ops onto graphnet's resize: Resize (opsets 10 to 19, its
scales or sizes as inputs) and the Upsample it replaced (opsets 7 and 9, scales an attribute,
then an input). Both must leave the batch and channel axes alone; the scales or sizes must be
known when the model is imported."""

from __future__ import annotations

from .args import converter, input_at, known, refuse_attrs
from .convert import ImportFailure

COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


def _spatial(cv, x, scales, sizes, what: str) -> dict:
    shape = cv.type_of(x).shape
    if scales:
        scales = [float(s) for s in scales]
        if len(scales) != len(shape) or scales[:2] != [1.0, 1.0]:
            raise ImportFailure(f"{what} scales {scales}: graphnet resizes the spatial axes of [N, C, ...] only")
        return {"scales": scales[2:]}
    if sizes:
        if len(sizes) != len(shape) or list(sizes[:2]) != [d.value if d.is_const() else d for d in shape[:2]]:
            raise ImportFailure(f"{what} sizes {sizes}: graphnet resizes the spatial axes of [N, C, ...] only")
        return {"sizes": list(sizes[2:])}
    raise ImportFailure(f"{what} gives neither scales nor sizes")


def _on_axes(cv, x, axes: list[int], scales, sizes):
    """Resize-18's scales or sizes for the listed axes only, spread over every axis (the others
    kept as they are)."""
    shape = cv.type_of(x).shape
    rank = len(shape)
    axes = [a % rank for a in axes]
    if len(set(axes)) != len(axes):
        raise ImportFailure(f"Resize's axes {axes} repeat an axis")
    full_scales = [1.0] * rank if scales else None
    full_sizes = [d.value if d.is_const() else d for d in shape] if sizes else None
    for i, a in enumerate(axes):
        if scales:
            full_scales[a] = scales[i]
        if sizes:
            full_sizes[a] = sizes[i]
    return full_scales, full_sizes


@converter("Resize")
def _resize(cv, node, attrs):
    x = cv.value(node.input[0])
    refuse_attrs(attrs, exclude_outside=0, antialias=0, keep_aspect_ratio_policy=b"stretch")
    mode = attrs.get("mode", b"nearest").decode()
    if mode not in ("nearest", "linear"):
        raise ImportFailure(f"mode '{mode}' is not supported (graphnet's resize is nearest or linear)")
    if cv.opset < 11:       # Resize-10: scales the second input, coordinates asymmetric
        scales, sizes, coords, rounding = known(input_at(cv, node, 1), "Resize's scales"), None, "asymmetric", "floor"
    else:
        scales = known(input_at(cv, node, 2), "Resize's scales")
        sizes = known(input_at(cv, node, 3), "Resize's sizes")
        coords = attrs.get("coordinate_transformation_mode", b"half_pixel").decode()
        rounding = attrs.get("nearest_mode", b"round_prefer_floor").decode()
    if "axes" in attrs:
        scales, sizes = _on_axes(cv, x, list(attrs["axes"]), scales, sizes)
    if coords not in COORDINATES:
        raise ImportFailure(f"coordinate_transformation_mode '{coords}' is not supported "
                            f"(graphnet's resize has {', '.join(COORDINATES)})")
    out = {**_spatial(cv, x, scales, sizes, "Resize"), "mode": mode, "coordinate_transformation_mode": coords}
    if mode == "nearest":
        out["nearest_mode"] = rounding
    return cv.emit("resize", [x], out)


@converter("Upsample")
def _upsample(cv, node, attrs):
    x = cv.value(node.input[0])
    mode = attrs.get("mode", b"nearest").decode()
    if mode not in ("nearest", "linear", "bilinear"):
        raise ImportFailure(f"mode '{mode}' is not supported (graphnet's resize is nearest or linear)")
    scales = attrs.get("scales") or known(input_at(cv, node, 1), "Upsample's scales")
    # Upsample samples at out / scale (asymmetric), nearest taking the cell below
    out = {**_spatial(cv, x, scales, None, "Upsample"), "mode": "nearest" if mode == "nearest" else "linear",
           "coordinate_transformation_mode": "asymmetric"}
    if mode == "nearest":
        out["nearest_mode"] = "floor"
    return cv.emit("resize", [x], out)
