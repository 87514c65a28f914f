"""The spec's expression language, evaluated: values are ints, floats, bools, strings, lists and
symbolic Dims; arithmetic on Dims stays exact. The syntax (tokenizer, parser, grammar) is
graphnet/expr_syntax.py; this module re-exports what callers need of it."""

from __future__ import annotations

import math
from typing import Any

from .dims import MAX_INT, Dim, DimTooLarge, dim_max, dim_min   # MAX_INT: results of arithmetic stay within it
from .expr_syntax import MAX_DEPTH, MAX_INT64, MAX_LENGTH, ExprError, Node, UnknownName, names_in, parse

__all__ = ["MAX_DEPTH", "MAX_INT", "MAX_INT64", "MAX_LENGTH", "ExprError", "Node", "UnknownName", "evaluate",
           "evaluate_text", "names_in", "parse"]


# -- evaluation ------------------------------------------------------------------------------

def _is_number(v) -> bool:
    return isinstance(v, (int, float, Dim)) and not isinstance(v, bool)


def _num(v, col):
    if isinstance(v, bool) or not _is_number(v):
        raise ExprError(f"expected a number, got {_type_name(v)} {v!r}", col)
    return v


def _type_name(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Dim):
        return "dim"
    return {int: "int", float: "float", str: "string", list: "list"}.get(type(v), type(v).__name__)


def _canon(v):
    """Constant dims become plain ints so results print and compare as users expect."""
    if isinstance(v, Dim) and v.is_const():
        return v.value
    return v


def _arith(op: str, a, b, col: int):
    a, b = _num(a, col), _num(b, col)
    dims = isinstance(a, Dim) or isinstance(b, Dim)
    if op == "/":
        if dims:
            raise ExprError("'/' gives a fraction; use '//' for whole-number division of dims", col)
        if b == 0:
            raise ExprError("division by zero", col)
        return a / b
    if op in ("//", "%"):
        if b == 0:
            raise ExprError("division by zero", col)
        if dims:
            if isinstance(b, float) or isinstance(a, float):
                raise ExprError(f"cannot use '{op}' between a dim and a float", col)
            try:
                return _canon(Dim(a) // b if op == "//" else Dim(a) % b)
            except ValueError as e:
                raise ExprError(str(e), col) from None
        return a // b if op == "//" else a % b
    if op == "**":
        if dims:
            if not isinstance(b, int) or b < 0 or b > 8:
                raise ExprError("a dim can only be raised to a small whole power", col)
            out = Dim(1)
            try:
                for _ in range(b):
                    out = _checked(out * a, col)
            except DimTooLarge as e:
                raise ExprError(str(e), col) from None
            return _canon(out)
        if isinstance(b, int) and isinstance(a, int) and (b < 0 or b > 64):
            raise ExprError("exponent out of range", col)
        try:
            result = a ** b
        except OverflowError:
            raise ExprError("overflow: the power is too large for a float", col) from None
        except ZeroDivisionError:
            raise ExprError("division by zero: 0 to a negative power", col) from None
        if isinstance(result, complex):
            raise ExprError("a negative number to a fractional power is not a real number", col)
        return _checked(result, col)
    if dims and (isinstance(a, float) or isinstance(b, float)):
        raise ExprError(f"cannot mix a dim and a float with '{op}'", col)
    try:
        result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b}[op]()
    except DimTooLarge as e:
        raise ExprError(str(e), col) from None
    return _canon(_checked(result, col))


def _checked(result, col: int):
    # a symbolic dim overflows in its coefficients: B * 2000000000 * 2000000000 is 4e18*B
    big = result.terms.values() if isinstance(result, Dim) else [result] if isinstance(result, int) else []
    if any(abs(c) > MAX_INT for c in big):
        raise ExprError("integer overflow: result exceeds 2^62", col)
    return result


def _compare(op: str, a, b, col: int) -> bool:
    if op in ("==", "!="):
        equal = (a == b) if type(a) is type(b) or (_is_number(a) and _is_number(b)) else False
        return equal if op == "==" else not equal
    if isinstance(a, Dim) or isinstance(b, Dim):
        if isinstance(a, float) or isinstance(b, float):
            raise ExprError(f"cannot compare the dim {a} with a float", col)
        diff = Dim(a) - Dim(b)
        if diff.is_const():
            a, b = diff.value, 0
        else:
            decided = _decide(op, diff)
            if decided is None:
                raise ExprError(f"cannot decide {a} {op} {b} for every value of the free dims", col)
            return decided
    if type(a) is not type(b) and not (_is_number(a) and _is_number(b)):
        raise ExprError(f"cannot compare {_type_name(a)} with {_type_name(b)}", col)
    if isinstance(a, list):
        return _compare_lists(op, a, b, col)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _compare_lists(op: str, a: list, b: list, col: int) -> bool:
    """Lists in order item by item, as Python orders them, each pair compared by _compare (so a
    string and a number, or dims that cannot be decided, are an error here, not a TypeError)."""
    for x, y in zip(a, b):
        if not _compare("==", x, y, col):
            return _compare(op, x, y, col)
    return {"<": len(a) < len(b), "<=": len(a) <= len(b), ">": len(a) > len(b), ">=": len(a) >= len(b)}[op]


def _decide(op: str, diff: Dim) -> bool | None:
    """a OP b from what the symbols' positivity proves about diff = a - b, or None."""
    if diff.is_positive():                       # a >= b + 1
        return op in (">", ">=")
    if (-diff).is_positive():                    # a <= b - 1
        return op in ("<", "<=")
    sign = diff.known_sign()
    if sign == 1 and op in (">=", "<"):          # a >= b
        return op == ">="
    if sign == -1 and op in ("<=", ">"):         # a <= b
        return op == "<="
    return None


def _truth(v, col) -> bool:
    if isinstance(v, bool):
        return v
    raise ExprError(f"expected true or false, got {_type_name(v)} {v!r}", col)


def _call(name: str, args: list, col: int):
    def arity(n):
        if len(args) != n:
            raise ExprError(f"{name}() takes {n} argument{'s' if n != 1 else ''}, got {len(args)}", col)

    if name in ("min", "max"):
        if len(args) < 1:
            raise ExprError(f"{name}() needs at least one argument", col)
        vals = args[0] if len(args) == 1 and isinstance(args[0], list) else args
        if not vals:
            raise ExprError(f"{name}() of an empty list", col)
        out = _num(vals[0], col)
        for v in vals[1:]:
            v = _num(v, col)
            if isinstance(out, Dim) or isinstance(v, Dim):
                out = _canon((dim_min if name == "min" else dim_max)(Dim(out), Dim(v)))
            else:
                out = min(out, v) if name == "min" else max(out, v)
        return out
    if name == "cdiv":
        arity(2)
        a, b = _num(args[0], col), _num(args[1], col)
        if isinstance(a, float) or isinstance(b, float):
            raise ExprError("cdiv() divides whole numbers; use ceil(a / b) for floats", col)
        if not isinstance(b, Dim) and b <= 0:
            raise ExprError("cdiv() needs a positive divisor", col)
        return _arith("//", _arith("+", a, _arith("-", b, 1, col), col), b, col)
    if name in ("sqrt", "exp", "log", "ceil", "floor", "abs", "float", "int"):
        arity(1)
        v = _num(args[0], col)
        if isinstance(v, Dim):
            if name == "abs" or name == "int":
                return v
            raise ExprError(f"{name}() needs a known number, not the free dim {v}", col)
        if name == "sqrt":
            if v < 0:
                raise ExprError("sqrt() of a negative number", col)
            return math.sqrt(v)
        if name == "log":
            if v <= 0:
                raise ExprError("log() of a non-positive number", col)
            return math.log(v)
        if name == "exp":
            if v > 700:
                raise ExprError("exp() overflows", col)
            return math.exp(v)
        if name in ("ceil", "floor", "int") and not math.isfinite(v):
            raise ExprError(f"{name}() of {v}: not a whole number", col)
        return _checked({"ceil": math.ceil, "floor": math.floor, "abs": abs, "float": float, "int": int}[name](v), col)
    if name == "len":
        arity(1)
        if not isinstance(args[0], (list, str)):
            raise ExprError(f"len() needs a list, got {_type_name(args[0])}", col)
        return len(args[0])
    if name == "prod":
        arity(1)
        if not isinstance(args[0], list):
            raise ExprError(f"prod() needs a list, got {_type_name(args[0])}", col)
        out = 1
        for v in args[0]:
            out = _arith("*", out, v, col)
        return out
    if name == "pair":
        # torch.nn's _pair: an int for both axes of a 2-D layer, or a list of two, one per axis
        arity(1)
        v = args[0]
        if isinstance(v, list):
            if len(v) != 2:
                raise ExprError(f"pair() of a list needs two items, one per axis, got {len(v)}", col)
            return [_num(x, col) for x in v]
        v = _num(v, col)
        return [v, v]
    raise ExprError(f"unknown function '{name}' (known: {', '.join(FUNCTIONS)})", col)


FUNCTIONS = ("min", "max", "cdiv", "sqrt", "exp", "log", "ceil", "floor", "round", "abs", "float", "int", "len", "sum",
             "prod", "range", "pair")


def _index(seq, idx, col: int):
    if not isinstance(seq, (list, str)):
        raise ExprError(f"cannot index a {_type_name(seq)}", col)
    if not isinstance(idx, int) or isinstance(idx, bool):
        raise ExprError(f"an index must be an int, got {_type_name(idx)}", col)
    if not -len(seq) <= idx < len(seq):
        raise ExprError(f"index {idx} out of range for length {len(seq)}", col)
    return seq[idx]


def _binary(op: str, a, b, col: int):
    if op == "+" and isinstance(a, list) and isinstance(b, list):
        if len(a) + len(b) > MAX_ITEMS:
            raise ExprError(f"a list of more than {MAX_ITEMS} items", col)
        return a + b
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    return _arith(op, a, b, col)


# One evaluation makes at most this many list items and comprehension steps in all, so nested
# ranges (`[[0 for j in range(10**5)] for i in range(10**5)]`) are refused, not run for hours.
MAX_ITEMS = 100_000


class _Budget:
    __slots__ = ("left",)

    def __init__(self):
        self.left = MAX_ITEMS

    def spend(self, n: int, col: int) -> None:
        self.left -= n
        if self.left < 0:
            raise ExprError(f"the expression makes more than {MAX_ITEMS} list items and steps", col)


def _range(args: list, col: int, budget: _Budget) -> list:
    if not 1 <= len(args) <= 3:
        raise ExprError(f"range() takes 1 to 3 arguments, got {len(args)}", col)
    for a in args:
        if isinstance(a, Dim):
            raise ExprError(f"range() needs known whole numbers, not the free dim {a}", col)
        if isinstance(a, bool) or not isinstance(a, int):
            raise ExprError(f"range() needs whole numbers, got {_type_name(a)} {a!r}", col)
    if len(args) == 3 and args[2] == 0:
        raise ExprError("range() step must not be zero", col)
    r = range(*args)
    budget.spend(len(r), col)
    return list(r)


def _sum(args: list, col: int):
    if len(args) != 1 or not isinstance(args[0], list):
        raise ExprError(f"sum() takes one list, got {', '.join(_type_name(a) for a in args) or 'nothing'}", col)
    out = 0
    for v in args[0]:
        out = _arith("+", out, v, col)
    return out


def _round(args: list, col: int):
    if len(args) not in (1, 2):
        raise ExprError(f"round() takes 1 or 2 arguments, got {len(args)}", col)
    v = _num(args[0], col)
    if isinstance(v, Dim):
        raise ExprError(f"round() needs a known number, not the free dim {v}", col)
    if len(args) == 2:
        digits = args[1]
        if isinstance(digits, bool) or not isinstance(digits, int) or not -20 <= digits <= 20:
            raise ExprError("round()'s digits must be a whole number from -20 to 20", col)
        return round(v, digits)
    if not math.isfinite(v):
        raise ExprError(f"round() of {v}: not a whole number", col)
    return _checked(round(v), col)      # Python's (and NumPy's, torch's) ties to even: round(2.5) == 2


def _comprehension(node: Node, scope: dict[str, Any], budget: _Budget) -> list:
    item, iterable, condition = node.args
    values = _eval(iterable, scope, budget)
    if not isinstance(values, list):
        raise ExprError(f"a comprehension runs over a list, got {_type_name(values)}", iterable.col)
    inner = dict(scope)
    out = []
    for v in values:
        budget.spend(1, node.col)
        inner[node.value] = v
        if condition is None or _truth(_eval(condition, inner, budget), condition.col):
            out.append(_eval(item, inner, budget))
    return out


def evaluate(node: Node, scope: dict[str, Any]):
    return _eval(node, scope, _Budget())


def _eval(node: Node, scope: dict[str, Any], budget: _Budget):
    k = node.kind
    if k in ("num", "str"):
        return node.value
    if k == "name":
        if node.value not in scope:
            raise UnknownName(node.value, node.col, sorted(scope))
        return scope[node.value]
    if k == "list":
        budget.spend(len(node.args), node.col)
        return [_eval(a, scope, budget) for a in node.args]
    if k == "comprehension":
        return _comprehension(node, scope, budget)
    if k == "call":
        args = [_eval(a, scope, budget) for a in node.args]
        if node.value == "range":
            return _range(args, node.col, budget)
        if node.value in ("sum", "round"):
            return (_sum if node.value == "sum" else _round)(args, node.col)
        return _call(node.value, args, node.col)
    if k == "index":
        seq = _eval(node.args[0], scope, budget)
        for col, arg in zip(node.value, node.args[1:]):
            seq = _index(seq, _eval(arg, scope, budget), col)
        return seq
    if k == "unary":
        v = _num(_eval(node.args[0], scope, budget), node.col)
        return _canon(-v) if node.value == "-" else v
    if k == "arith":
        out = _eval(node.args[0], scope, budget)
        for (op, col), arg in zip(node.value, node.args[1:]):
            out = _binary(op, out, _eval(arg, scope, budget), col)
        return out
    if k == "binary":
        return _binary(node.value, _eval(node.args[0], scope, budget), _eval(node.args[1], scope, budget), node.col)
    if k == "compare":
        values = [_eval(a, scope, budget) for a in node.args]
        return all(_compare(op, values[i], values[i + 1], node.col) for i, op in enumerate(node.value))
    if k in ("and", "or"):
        # each operand is checked to be a bool where it is written; evaluation stops at the first
        # that decides, as Python's does
        for i, arg in enumerate(node.args):
            value = _truth(_eval(arg, scope, budget), node.value[max(i - 1, 0)][1])
            if value == (k == "or"):
                return value
        return k == "and"
    if k == "not":
        return not _truth(_eval(node.args[0], scope, budget), node.col)
    if k == "cond":
        cond, yes, no = node.args
        return _eval(yes, scope, budget) if _truth(_eval(cond, scope, budget), cond.col) else _eval(no, scope, budget)
    raise AssertionError(k)


def evaluate_text(text: str, scope: dict[str, Any]):
    return evaluate(parse(text), scope)
