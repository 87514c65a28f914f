"""Computed names: the `path` a node or param is made under, written as a name template.

A template is literal text with `{expr}` parts, each an expression of the spec language evaluated in
the scope of the node or param (`features.{index + 1}`, `weight_ih{suffix}`). The name it gives is
one or more segments separated by '.', each of letters, digits, '_' and '-': the characters of
PyTorch's module and param names, so that a spec can name its params as a torch module's
state_dict does. Braces cannot appear in a name, so they need no escape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import expr
from .dims import Dim
from .errors import did_you_mean

RULE = "a name is one or more segments separated by '.', each of letters, digits, '_' and '-'"
MAX_LENGTH = 1000
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_LITERAL = re.compile(r"[A-Za-z0-9_.-]*")


class BadName(Exception):
    """A mistake in a name template or in the name it gives; `column` is the 0-based offset of the
    offending character in the template."""

    def __init__(self, message: str, column: int = 0):
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True)
class _Part:
    text: str            # literal text, or the expression's source
    column: int          # where it starts in the template (after the '{' for an expression)
    is_expr: bool


@lru_cache(maxsize=4096)
def parse_template(template: str) -> tuple[_Part, ...]:
    """Split a template into literal text and expressions; every expression is parsed here, so a
    syntax mistake is found even in a node that is never made."""
    if len(template) > MAX_LENGTH:
        raise BadName(f"a name template is longer than {MAX_LENGTH} characters")
    parts, pos = [], 0
    while pos < len(template):
        literal = _LITERAL.match(template, pos)
        if literal.end() > pos:
            parts.append(_Part(literal.group(), pos, False))
            pos = literal.end()
            continue
        c = template[pos]
        if c == "}":
            raise BadName(f"in name '{template}': '}}' without a '{{' before it", pos)
        if c != "{":
            raise BadName(f"in name '{template}': {c!r} cannot be in a name; {RULE}, "
                          "written as text and {expr} parts", pos)
        close = _closing_brace(template, pos)
        source = template[pos + 1:close]
        if not source.strip():
            raise BadName(f"in name '{template}': '{{}}' holds no expression", pos)
        try:
            expr.parse(source)
        except expr.ExprError as e:
            raise BadName(f"in name '{template}': {e.message}", pos + 1 + e.column) from None
        parts.append(_Part(source, pos + 1, True))
        pos = close + 1
    return tuple(parts)


def _closing_brace(template: str, start: int) -> int:
    quote = None
    for i in range(start + 1, len(template)):
        c = template[i]
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "{":
            raise BadName(f"in name '{template}': '{{' inside a {{...}} part", i)
        elif c == "}":
            return i
    raise BadName(f"in name '{template}': '{{' is never closed", start)


def format_name(template: str, scope: dict[str, Any], empty_ok: bool = False) -> str:
    """The name a template gives in `scope`, checked against the name rules. An empty name is
    allowed only where `empty_ok` says (a block call that adds no segment)."""
    pieces = []
    for part in parse_template(template):
        pieces.append(_evaluated(template, part, scope) if part.is_expr else part.text)
    name = "".join(pieces)
    if name == "" and empty_ok:
        return name
    problem = name_problem(name)
    if problem:
        shown = f"name '{name}'" + (f" (from '{template}')" if name != template else "")
        raise BadName(f"{shown} {problem}; {RULE}")
    return name


def _evaluated(template: str, part: _Part, scope: dict[str, Any]) -> str:
    try:
        value = expr.evaluate(expr.parse(part.text), scope)
    except expr.UnknownName as e:
        raise BadName(f"in name '{template}': {e.message}{did_you_mean(e.name, e.known)}",
                      part.column + e.column) from None
    except expr.ExprError as e:
        raise BadName(f"in name '{template}': {e.message}", part.column + e.column) from None
    except (ZeroDivisionError, OverflowError, ValueError) as e:
        raise BadName(f"in name '{template}': {{{part.text}}}: {e}", part.column) from None
    if isinstance(value, Dim) and value.is_const():
        value = value.value
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    got = f"the free dim {value}" if isinstance(value, Dim) else _shown(value)
    raise BadName(f"in name '{template}': {{{part.text}}} gives {got}; a part of a name must be a "
                  "whole number or a string", part.column)


def name_problem(name: str) -> str | None:
    """What is wrong with a computed name, or None."""
    if len(name) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if name == "":
        return "is empty"
    for segment in name.split("."):
        if segment == "":
            return "has an empty segment"
        if not _SEGMENT.fullmatch(segment):
            bad = next(c for c in segment if not _SEGMENT.fullmatch(c))
            return f"holds {bad!r}"
    return None


def check_template(template: str) -> str:
    """For the spec models: a template that cannot be parsed is a structural error (ValueError)."""
    try:
        parse_template(template)
    except BadName as e:
        raise ValueError(e.message) from None
    return template


def _shown(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, list):
        return "a list"
    return str(value)
