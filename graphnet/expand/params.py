"""Params: a body's declared weights made into Graph IR params, their `init` parsed into a scheme."""

from __future__ import annotations

from pydantic import ValidationError

from ..dims import Dim, format_shape
from ..errors import did_you_mean
from ..graph import Param
from ..init import SCHEMES, Init, bare_option, make_init, scheme_options, split_init
from ..ops import TensorType
from ..spec import ParamSpec
from .names import param_name, qualified
from .scope import eval_shape, eval_truth, eval_value, item_at, show, strip_literals
from .state import Absent, Body, Expansion, Failed, Tensor


def declare_params(ex: Expansion, body: Body) -> None:
    for name, decl in body.block.params.items():
        try:
            declare_param(ex, body, name, decl)
        except Failed:
            body.locals[name] = Tensor(qualified(body, name), None)


def declare_param(ex: Expansion, body: Body, name: str, decl: ParamSpec) -> None:
    if not eval_truth(ex, decl.if_, body.scope, decl.loc_of("if")):
        body.locals[name] = Absent()
        return
    full = param_name(ex, body, name, decl)
    clash = ex.claim(full, "a param")
    if clash:
        ex.fail(decl.loc_of("path") if decl.path is not None else decl.loc, f"param '{name}': {clash}")
    shape = eval_shape(ex, decl.shape, body.scope, decl, "shape")
    for i, d in enumerate(shape):
        if not d.is_const():
            ex.fail(decl.loc_of("shape", i), f"param '{full}' has shape {format_shape(shape)}, "
                    f"which depends on the free dim(s) {', '.join(sorted(d.symbols()))}; "
                    "params need known shapes (bind free dims with --dim)")
    init = make_param_init(ex, decl, body.scope, full)
    try:
        init.check_shape(tuple(d.value for d in shape), decl.dtype)
    except ValueError as e:
        ex.fail(decl.loc_of("init"), f"param '{full}': {e}")
    t = TensorType(decl.dtype, shape)
    ex.params[full] = Param(full, t, init, decl.trainable, decl.loc, init_loc=decl.loc_of("init"))
    ex.param_order.append(full)
    ex.types[full] = t
    body.locals[name] = Tensor(full, t)
    body.declared[name] = decl.loc


def make_param_init(ex: Expansion, decl: ParamSpec, scope: dict, full: str) -> Init:
    loc = decl.loc_of("init")
    parts = split_init(decl.init)
    if parts is None:
        ex.fail(loc, "init must be a scheme name or a mapping with one scheme, e.g. {normal: {std: 0.02}}")
    kind, options = parts
    if not isinstance(options, dict) and kind in SCHEMES and bare_option(kind):
        options = {bare_option(kind): options}
    if options is None:
        options = {}
    if not isinstance(options, dict):
        ex.fail(loc, f"init '{kind}' takes a mapping of options, got {show(options)}")
    if kind not in SCHEMES:
        ex.fail(loc, f"unknown init scheme '{kind}'{did_you_mean(kind, SCHEMES)} "
                     f"(known: {', '.join(sorted(SCHEMES))})")
    # Plain words stay strings (mode: fan_out); the scheme's own validation rejects a bad one.
    values = {k: strip_literals(eval_value(ex, v, scope, *item_at(decl.raw_at("init", kind), k, loc)))[0]
              for k, v in options.items()}
    values = {k: _known(v) for k, v in values.items()}
    try:
        init = make_init(kind, values)
    except ValidationError as e:
        err = e.errors()[0]
        key = err["loc"][0] if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            fields = scheme_options(kind)
            ex.fail(loc, f"init '{kind}' has no option '{key}'{did_you_mean(str(key), fields)}"
                         f" (options: {', '.join(fields) or 'none'})")
        ex.fail(loc, f"init '{kind}' option '{key}': {err['msg']}")
    # A fan-based init on a rank-1 param, or a std that overflows, is a spec error now, not a
    # crash when weights are made.
    try:
        init.check(tuple(1 for _ in decl.shape))
    except ValueError as e:
        ex.fail(loc, f"param '{full}': {e}")
    return init


def _known(value):
    # Known dims as numbers, in lists too (a `values` init made by a comprehension over dims).
    if isinstance(value, list):
        return [_known(v) for v in value]
    return value.value if isinstance(value, Dim) and value.is_const() else value
