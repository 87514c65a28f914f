"""The spec's expression language: a small tokenizer and precedence-climbing parser (never eval).

Grammar (loosest first):
    expr     := or_expr ['if' or_expr 'else' expr]
    or_expr  := and_expr ('or' and_expr)*          and_expr := not_expr ('and' not_expr)*
    not_expr := 'not' not_expr | compare            compare  := sum (('=='|'!='|'<'|'<='|'>'|'>=') sum)*
    sum      := term (('+'|'-') term)*              term     := unary (('*'|'/'|'//'|'%') unary)*
    unary    := '-' unary | power                   power    := atom ['**' unary]
    atom     := INT | FLOAT | STRING | NAME | NAME '(' args ')' | '(' expr ')' | '[' items ']' | atom '[' expr ']'
Values are ints, floats, bools, strings, lists and symbolic Dims; arithmetic on Dims stays exact.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .dims import MAX_INT, Dim, DimTooLarge, dim_max, dim_min   # MAX_INT: results of arithmetic stay within it

MAX_LENGTH = 2000
MAX_DEPTH = 64
MAX_INT64 = 2**63 - 1  # a number as written (ONNX's INT64_MAX, a slice's 'to the end', is one)


class ExprError(Exception):
    """A mistake in an expression; `column` is the 0-based offset of the offending token."""

    def __init__(self, message: str, column: int = 0):
        super().__init__(message)
        self.message = message
        self.column = column


class UnknownName(ExprError):
    def __init__(self, name: str, column: int, known: list[str]):
        super().__init__(f"unknown name '{name}'", column)
        self.name = name
        self.known = known


_TOKEN = re.compile(
    r"\s*(?:(?P<float>\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<int>\d+)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<str>'[^'\\]*'|\"[^\"\\]*\")"
    r"|(?P<op>\*\*|//|==|!=|<=|>=|[-+*/%<>()\[\],]))"
)
_KEYWORDS = {"and", "or", "not", "if", "else", "true", "false", "True", "False"}


@dataclass(frozen=True)
class Node:
    kind: str          # num, str, name, call, list, index, unary, binary, arith, compare, and, or, not, cond
    value: Any         # index: the column of each '['; arith, and, or: (operator, column) of each operator
    args: tuple
    col: int


def _tokenize(text: str) -> list[tuple[str, Any, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            col = pos + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise ExprError(f"unexpected character {text[col]!r}", col)
        kind = m.lastgroup
        raw = m.group(kind)
        col = m.start(kind)
        if kind == "int":
            if int(raw) > MAX_INT64:
                raise ExprError("integer overflow: the number does not fit in 64 bits", col)
            tokens.append(("num", int(raw), col))
        elif kind == "float":
            tokens.append(("num", float(raw), col))
        elif kind == "str":
            tokens.append(("str", raw[1:-1], col))
        elif kind == "name" and raw in _KEYWORDS:
            tokens.append(("kw", raw, col))
        else:
            tokens.append((kind, raw, col))
        pos = m.end()
    tokens.append(("end", None, len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self):
        return self.tokens[self.i]

    def take(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def accept(self, kind: str, value=None) -> bool:
        tok = self.peek()
        if tok[0] == kind and (value is None or tok[1] == value):
            self.i += 1
            return True
        return False

    def expect(self, kind: str, value):
        tok = self.peek()
        if not self.accept(kind, value):
            raise ExprError(f"expected '{value}' but found {_describe(tok)}", tok[2])

    def nest(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression nested more than {MAX_DEPTH} levels deep", self.peek()[2])

    def parse(self) -> Node:
        node = self.expr()
        tok = self.peek()
        if tok[0] != "end":
            raise ExprError(f"unexpected {_describe(tok)}", tok[2])
        return node

    def expr(self) -> Node:
        self.nest()
        node = self.or_expr()
        if self.peek()[:2] == ("kw", "if"):
            col = self.take()[2]
            cond = self.or_expr()
            self.expect("kw", "else")
            other = self.expr()
            node = Node("cond", None, (cond, node, other), col)
        self.depth -= 1
        return node

    # A run of one operator (`1 + 1 + ... + 1`, `a and b and c`, `x[0][1]`) is one node with all
    # its operands and each operator's column, not a nest of two-operand nodes: a nest as deep as
    # the run would make evaluating a 2,000-character expression recurse past Python's limit.
    # Each loop is written out, not shared through a helper, so a level of parentheses costs as
    # few Python frames as before.
    def at(self, kind: str, ops: tuple) -> bool:
        tok = self.peek()
        return tok[0] == kind and tok[1] in ops

    def or_expr(self) -> Node:
        args, marks = [self.and_expr()], []
        while self.at("kw", ("or",)):
            marks.append(self.take()[1:])
            args.append(self.and_expr())
        return _run("or", args, marks)

    def and_expr(self) -> Node:
        args, marks = [self.not_expr()], []
        while self.at("kw", ("and",)):
            marks.append(self.take()[1:])
            args.append(self.not_expr())
        return _run("and", args, marks)

    def not_expr(self) -> Node:
        if self.peek()[:2] == ("kw", "not"):
            col = self.take()[2]
            self.nest()
            node = Node("not", None, (self.not_expr(),), col)
            self.depth -= 1
            return node
        return self.compare()

    def compare(self) -> Node:
        first = self.sum()
        ops, rest = [], []
        while self.peek()[0] == "op" and self.peek()[1] in ("==", "!=", "<", "<=", ">", ">="):
            ops.append(self.take()[1])
            rest.append(self.sum())
        if not ops:
            return first
        return Node("compare", tuple(ops), (first, *rest), first.col)

    def sum(self) -> Node:
        args, marks = [self.term()], []
        while self.at("op", ("+", "-")):
            marks.append(self.take()[1:])
            args.append(self.term())
        return _run("arith", args, marks)

    def term(self) -> Node:
        args, marks = [self.unary()], []
        while self.at("op", ("*", "/", "//", "%")):
            marks.append(self.take()[1:])
            args.append(self.unary())
        return _run("arith", args, marks)

    def unary(self) -> Node:
        tok = self.peek()
        if tok[0] == "op" and tok[1] in ("-", "+"):
            self.take()
            self.nest()
            node = Node("unary", tok[1], (self.unary(),), tok[2])
            self.depth -= 1
            return node
        return self.power()

    def power(self) -> Node:
        node = self.postfix()
        if self.peek()[:2] == ("op", "**"):
            col = self.take()[2]
            self.nest()
            node = Node("binary", "**", (node, self.unary()), col)
            self.depth -= 1
        return node

    def postfix(self) -> Node:
        node = self.atom()
        args, cols = [node], []
        while self.peek()[:2] == ("op", "["):
            cols.append(self.take()[2])
            args.append(self.expr())
            self.expect("op", "]")
        return Node("index", tuple(cols), tuple(args), cols[0]) if cols else node

    def atom(self) -> Node:
        kind, value, col = self.take()
        if kind == "num":
            return Node("num", value, (), col)
        if kind == "str":
            return Node("str", value, (), col)
        if kind == "kw" and value in ("true", "True", "false", "False"):
            return Node("num", value in ("true", "True"), (), col)
        if kind == "name":
            if self.accept("op", "("):
                args = self.items(")")
                return Node("call", value, tuple(args), col)
            return Node("name", value, (), col)
        if (kind, value) == ("op", "("):
            node = self.expr()
            self.expect("op", ")")
            return node
        if (kind, value) == ("op", "["):
            return Node("list", None, tuple(self.items("]")), col)
        raise ExprError(f"expected a value but found {_describe((kind, value, col))}", col)

    def items(self, close: str) -> list[Node]:
        out = []
        if self.accept("op", close):
            return out
        while True:
            out.append(self.expr())
            if self.accept("op", close):
                return out
            self.expect("op", ",")


def _run(kind: str, args: list, marks: list) -> Node:
    """One node for a run of operators, or the single operand when there is none."""
    return Node(kind, tuple(marks), tuple(args), marks[0][1]) if marks else args[0]


def _describe(tok) -> str:
    kind, value, _ = tok
    if kind == "end":
        return "the end of the expression"
    return f"'{value}'"


@lru_cache(maxsize=4096)
def parse(text: str) -> Node:
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters", 0)
    return _Parser(text).parse()


def names_in(node: Node) -> set[str]:
    if node.kind == "name":
        return {node.value}
    out: set[str] = set()
    for a in node.args:
        out |= names_in(a)
    return out


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
    raise ExprError(f"unknown function '{name}' (known: {', '.join(FUNCTIONS)})", col)


FUNCTIONS = ("min", "max", "cdiv", "sqrt", "exp", "log", "ceil", "floor", "abs", "float", "int", "len", "prod")


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
        return a + b
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    return _arith(op, a, b, col)


def evaluate(node: Node, scope: dict[str, Any]):
    k = node.kind
    if k in ("num", "str"):
        return node.value
    if k == "name":
        if node.value not in scope:
            raise UnknownName(node.value, node.col, sorted(scope))
        return scope[node.value]
    if k == "list":
        return [evaluate(a, scope) for a in node.args]
    if k == "call":
        return _call(node.value, [evaluate(a, scope) for a in node.args], node.col)
    if k == "index":
        seq = evaluate(node.args[0], scope)
        for col, arg in zip(node.value, node.args[1:]):
            seq = _index(seq, evaluate(arg, scope), col)
        return seq
    if k == "unary":
        v = _num(evaluate(node.args[0], scope), node.col)
        return _canon(-v) if node.value == "-" else v
    if k == "arith":
        out = evaluate(node.args[0], scope)
        for (op, col), arg in zip(node.value, node.args[1:]):
            out = _binary(op, out, evaluate(arg, scope), col)
        return out
    if k == "binary":
        return _binary(node.value, evaluate(node.args[0], scope), evaluate(node.args[1], scope), node.col)
    if k == "compare":
        values = [evaluate(a, scope) for a in node.args]
        return all(_compare(op, values[i], values[i + 1], node.col) for i, op in enumerate(node.value))
    if k in ("and", "or"):
        # each operand is checked to be a bool where it is written; evaluation stops at the first
        # that decides, as Python's does
        for i, arg in enumerate(node.args):
            value = _truth(evaluate(arg, scope), node.value[max(i - 1, 0)][1])
            if value == (k == "or"):
                return value
        return k == "and"
    if k == "not":
        return not _truth(evaluate(node.args[0], scope), node.col)
    if k == "cond":
        cond, yes, no = node.args
        return evaluate(yes, scope) if _truth(evaluate(cond, scope), cond.col) else evaluate(no, scope)
    raise AssertionError(k)


def evaluate_text(text: str, scope: dict[str, Any]):
    return evaluate(parse(text), scope)
