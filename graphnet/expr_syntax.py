"""The syntax of the spec's expression language: a small tokenizer and precedence-climbing parser
(never eval). graphnet/expr.py evaluates what it parses.

Grammar (loosest first):
    expr     := or_expr ['if' or_expr 'else' expr]
    or_expr  := and_expr ('or' and_expr)*          and_expr := not_expr ('and' not_expr)*
    not_expr := 'not' not_expr | compare            compare  := sum (('=='|'!='|'<'|'<='|'>'|'>=') sum)*
    sum      := term (('+'|'-') term)*              term     := unary (('*'|'/'|'//'|'%') unary)*
    unary    := '-' unary | power                   power    := atom ['**' unary]
    atom     := INT | FLOAT | STRING | NAME | NAME '(' args ')' | '(' expr ')' | '[' items ']' | atom '[' expr ']'
              | '[' expr 'for' NAME 'in' or_expr ['if' or_expr] ']'
`for` and `in` are keywords only there, so a dim may still be named `in`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


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
    kind: str          # num, str, name, call, list, index, unary, binary, arith, compare, and, or, not, cond,
    #                    comprehension (args: item, iterable, condition or None; value: the loop name)
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
            if self.accept("op", "]"):
                return Node("list", None, (), col)
            first = self.expr()
            if self.peek()[:2] == ("name", "for"):
                return self.comprehension(first, col)
            items = [first]
            while not self.accept("op", "]"):
                self.expect("op", ",")
                items.append(self.expr())
            return Node("list", None, tuple(items), col)
        raise ExprError(f"expected a value but found {_describe((kind, value, col))}", col)

    def comprehension(self, item: Node, col: int) -> Node:
        """`[item for NAME in iterable if condition]`, after the item; the condition is optional."""
        self.take()
        kind, name, name_col = self.take()
        if kind != "name" or name in ("for", "in"):
            raise ExprError(f"expected a name after 'for' but found {_describe((kind, name, name_col))}", name_col)
        tok = self.peek()
        if tok[:2] != ("name", "in"):
            raise ExprError(f"expected 'in' but found {_describe(tok)}", tok[2])
        self.take()
        iterable = self.or_expr()
        condition = None
        if self.peek()[:2] == ("kw", "if"):
            self.take()
            condition = self.or_expr()
        self.expect("op", "]")
        return Node("comprehension", name, (item, iterable, condition), col)

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
    """The names an expression reads from its scope (a comprehension's own loop name is not one)."""
    if node.kind == "name":
        return {node.value}
    out: set[str] = set()
    for a in node.args:
        if a is not None:
            out |= names_in(a)
    if node.kind == "comprehension":
        inner = names_in(node.args[0]) | (names_in(node.args[2]) if node.args[2] is not None else set())
        out = names_in(node.args[1]) | (inner - {node.value})
    return out
