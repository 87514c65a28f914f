"""einsum (ONNX Einsum): a sum of products over labelled axes, written as an equation."""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from ..dims import Dim, dim_prod
from ..types import FLOAT_DTYPES
from .base import Drawn, Example, In, NoVjp, Op, ShapeError, TensorType, ports, same_dtype

ELLIPSIS = "..."
LETTERS = frozenset(string.ascii_letters)


@dataclass(frozen=True)
class Plan:
    terms: tuple[tuple[str, ...], ...]   # per input: letters and at most one "..."
    output: tuple[str, ...]
    letters: dict[str, Dim]              # every letter's size
    ellipsis: tuple[Dim, ...]            # the broadcast dims "..." stands for (empty when unused)

    @property
    def equation(self) -> str:
        """The explicit form (always with "->"), which is what the kernel and the lowering run."""
        return ",".join("".join(t) for t in self.terms) + "->" + "".join(self.output)


def _tokens(term: str, equation: str, where: str) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(term):
        if term.startswith(ELLIPSIS, i):
            out.append(ELLIPSIS)
            i += 3
        elif term[i] == ".":
            raise ShapeError(f"einsum equation '{equation}': {where} '{term}' has a '.' that is not part of '...'")
        elif term[i] in LETTERS:
            out.append(term[i])
            i += 1
        else:
            raise ShapeError(f"einsum equation '{equation}': {where} '{term}' has the character '{term[i]}'; "
                             "only letters a-z, A-Z and '...' may name axes")
    if out.count(ELLIPSIS) > 1:
        raise ShapeError(f"einsum equation '{equation}': {where} '{term}' has more than one '...'")
    return tuple(out)


def parse(equation: str) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...] | None]:
    """The input terms and the explicit output term (None in implicit mode, without "->")."""
    eq = equation.replace(" ", "")
    if eq.count("->") > 1:
        raise ShapeError(f"einsum equation '{equation}' has more than one '->'")
    lhs, arrow, rhs = eq.partition("->")
    if "-" in lhs or ">" in lhs or "-" in rhs or ">" in rhs:
        raise ShapeError(f"einsum equation '{equation}' has a stray '-' or '>'; the output is given by '->'")
    if "," in rhs:
        raise ShapeError(f"einsum equation '{equation}' has a ',' after '->'; there is one output")
    terms = tuple(_tokens(t, equation, f"input term {i}") for i, t in enumerate(lhs.split(",")))
    if not arrow:
        return terms, None
    output = _tokens(rhs, equation, "the output term")
    return terms, output


class Einsum(Op):
    """ONNX Einsum. Each input has a term of letters (one per axis) and optionally '...' standing for
    leading broadcast axes; a letter used more than once must have one size everywhere. Without '->'
    the output is '...' followed by the letters used exactly once, in sorted (ASCII) order."""

    name = "einsum"
    onnx = "Einsum"
    inputs = ports(variadic="xs")
    equation: str
    examples = (
        Example((In((3, 4)), In((4, 5))), {"equation": "ij,jk->ik"}),
        Example((In((2, 3, 4)), In((2, 4, 5))), {"equation": "bij, bjk -> bik"}),
        Example((In((2, 3, 4)),), {"equation": "bij->jb"}),
        Example((In((4,)), In((4,))), {"equation": "i,i->"}),
        Example((In((3,)), In((5,))), {"equation": "i,j"}),
        Example((In((3, 3)),), {"equation": "ii->i"}),
        Example((In((4, 4)),), {"equation": "ii"}),
        Example((In((2, 1, 3, 4)), In((1, 5, 4, 2))), {"equation": "...ij,...jk->...ik"}),
        Example((In((2, 3, 4)), In((4, 6))), {"equation": "...j,jk"}),
        Example((In((2, 3, 4)), In((3, 4)), In((4, 5))), {"equation": "Bij,ij,jK->BK"}),
        Example((In((2, 3), "int64", -4, 4), In((3, 2), "int64", -4, 4)), {"equation": "ij,jk->ki"}),
    )

    def plan(self, *xs: TensorType) -> Plan:
        terms, output = parse(self.equation)
        if len(terms) != len(xs):
            raise ShapeError(f"einsum equation '{self.equation}' has {len(terms)} input "
                             f"term{'s' if len(terms) != 1 else ''} but {len(xs)} input"
                             f"{'s were' if len(xs) != 1 else ' was'} given")
        letters: dict[str, Dim] = {}
        seen_at: dict[str, str] = {}
        ellipsis: tuple[Dim, ...] | None = None
        ellipsis_from = ""
        for i, (term, x) in enumerate(zip(terms, xs)):
            named = [t for t in term if t != ELLIPSIS]
            text = "".join(term)
            if ELLIPSIS not in term and len(named) != x.rank:
                raise ShapeError(f"einsum term '{text}' names {len(named)} axes but input {i} is {x} "
                                 f"(rank {x.rank})")
            if ELLIPSIS in term and len(named) > x.rank:
                raise ShapeError(f"einsum term '{text}' names {len(named)} axes besides '...' but input {i} "
                                 f"is {x} (rank {x.rank})")
            before = term.index(ELLIPSIS) if ELLIPSIS in term else len(term)
            n_ell = x.rank - len(named)
            dims = list(x.shape)
            for k, t in enumerate(term):
                if t == ELLIPSIS:
                    continue
                axis = k if k < before else k - 1 + n_ell
                d = dims[axis]
                here = f"input {i} ({x}) axis {axis}"
                if t in letters and letters[t] != d:
                    raise ShapeError(f"einsum letter '{t}' is {letters[t]} in {seen_at[t]} but {d} in {here}; "
                                     "a repeated letter needs one size")
                letters.setdefault(t, d)
                seen_at.setdefault(t, here)
            if ELLIPSIS in term:
                mine = tuple(dims[before:before + n_ell])
                if ellipsis is None:
                    ellipsis, ellipsis_from = mine, f"input {i} ({x})"
                    continue
                if len(mine) != len(ellipsis):
                    raise ShapeError(f"einsum '...' stands for {len(ellipsis)} axes in {ellipsis_from} but "
                                     f"{len(mine)} in input {i} ({x}); ONNX needs the same number in every "
                                     "input (unsqueeze the smaller one)")
                merged = []
                for k, (a, c) in enumerate(zip(ellipsis, mine)):
                    if a == c or c == 1:
                        merged.append(a)
                    elif a == 1:
                        merged.append(c)
                    else:
                        raise ShapeError(f"einsum '...' axis {k} is {a} in {ellipsis_from} but {c} in input {i} "
                                         f"({x}); they must match or one be 1")
                ellipsis = tuple(merged)
        used_ellipsis = ellipsis is not None
        if output is None:
            counts = {}
            for term in terms:
                for t in term:
                    counts[t] = counts.get(t, 0) + 1
            output = ((ELLIPSIS,) if used_ellipsis else ()) + tuple(
                sorted(t for t, c in counts.items() if c == 1 and t != ELLIPSIS))
        else:
            text = "".join(output)
            for t in output:
                if t != ELLIPSIS and t not in letters:
                    raise ShapeError(f"einsum output letter '{t}' does not appear in any input term of "
                                     f"'{self.equation}'")
                if output.count(t) > 1:
                    raise ShapeError(f"einsum output term '{text}' repeats the letter '{t}'")
            if used_ellipsis and ELLIPSIS not in output:
                raise ShapeError(f"einsum equation '{self.equation}': the inputs use '...' so the output term "
                                 f"'{text}' must too")
            if ELLIPSIS in output and not used_ellipsis:
                raise ShapeError(f"einsum equation '{self.equation}': the output term '{text}' has '...' but no "
                                 "input term does")
        return Plan(terms, output, letters, ellipsis or ())

    def infer(self, *xs: TensorType) -> TensorType:
        if not xs:
            raise ShapeError("einsum needs at least one input")
        dtype = same_dtype(*xs)
        if dtype == "bool":
            raise ShapeError(f"einsum needs numbers, got {', '.join(str(x) for x in xs)}")
        plan = self.plan(*xs)
        shape = []
        for t in plan.output:
            shape.extend(plan.ellipsis if t == ELLIPSIS else (plan.letters[t],))
        return TensorType(dtype, tuple(shape))

    def compute(self, *xs):
        plan = self.plan(*(TensorType(str(x.dtype), x.shape) for x in xs))
        return np.asarray(np.einsum(plan.equation, *xs)).astype(xs[0].dtype, copy=False)

    def to_onnx(self, b, *xs):
        plan = self.plan(*(b.type_of(x) for x in xs))
        return b.node("Einsum", list(xs), equation=plan.equation)

    def vjp(self, g, xs, ys, dys):
        # input i's cotangent is the einsum of the other inputs and dy back to term i
        types = [g.type_of(x) for x in xs]
        plan = self.plan(*types)
        if types[0].dtype not in FLOAT_DTYPES:
            return (None,) * len(xs)
        # '...' written out as letters of its own, so that a term may drop it
        spare = [c for c in string.ascii_letters if c not in plan.letters][:len(plan.ellipsis)]
        spelled = lambda term, rank: tuple(c for t in term for c in (spare[len(spare) - rank:] if t == ELLIPSIS else [t]))
        terms = []
        for i, (term, t) in enumerate(zip(plan.terms, types)):
            rank = t.rank - sum(1 for c in term if c != ELLIPSIS)
            if ELLIPSIS in term and tuple(t.shape[:term.index(ELLIPSIS) + rank][term.index(ELLIPSIS):]) != \
                    plan.ellipsis[len(plan.ellipsis) - rank:]:
                raise NoVjp(f"einsum '{self.equation}': input {i} broadcasts along '...', which its vjp does not cover")
            terms.append(spelled(term, rank))
        output = spelled(plan.output, len(plan.ellipsis))
        out = []
        for i, (term, t) in enumerate(zip(terms, types)):
            if len(set(term)) != len(term):
                raise NoVjp(f"einsum '{self.equation}': term '{''.join(plan.terms[i])}' repeats a letter (a diagonal), "
                            "which its vjp does not cover")
            others = [u for j, u in enumerate(terms) if j != i]
            reached = set(output).union(*others)
            kept = [c for c in term if c in reached]
            equation = ",".join("".join(u) for u in others + [output]) + "->" + "".join(kept)
            dx = g.emit("einsum", *[x for j, x in enumerate(xs) if j != i], dys[0], equation=equation)
            if len(kept) < len(term):     # letters summed in this input alone: each cell had slope 1
                dx = g.emit("unsqueeze", dx, axes=[k for k, c in enumerate(term) if c not in reached])
                dx = g.emit("expand", dx, shape=list(t.shape))
            out.append(dx)
        return tuple(out)

    def macs(self, ins, outs) -> Dim:
        """One multiply-accumulate per point of the full index space: the product of every
        distinct letter's size and of the '...' dims."""
        plan = self.plan(*ins)
        return dim_prod(plan.letters.values()) * dim_prod(plan.ellipsis)

    def label(self, node: Drawn) -> str:
        return self.equation
