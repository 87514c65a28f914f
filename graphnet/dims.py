"""Symbolic dimensions: exact integer polynomials over free symbols (B, T, ...).

Shape inference must prove two dims equal or say it could not, so a dim is kept in a canonical
form: a sum of integer-coefficient monomials. Operations that a polynomial cannot express exactly
(floor division that does not divide, min, max) become opaque atoms, themselves canonical, so that
`(H - 1)//2 + 1` computed twice compares equal. Symbols stand for positive integers.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Iterable, Union

# Whole numbers, and so the coefficients of dims and the divisors in them, stay within this.
MAX_INT = 2**62

# A shape has at most this many dims: NumPy's own limit (NPY_MAXDIMS), so every back end can hold it.
MAX_RANK = 64

# A dim holds at most this many terms: `(a + b + ... + t)**8` would expand to 2.2 million. A product
# stops as soon as it passes the bound, and one whose factors' terms multiply past a hundred times
# the bound is refused before it starts (its terms could cancel, so the work must be bounded too).
MAX_TERMS = 10_000


class DimTooLarge(ValueError):
    """A dim that would pass MAX_TERMS terms; callers locate it at the expression or the node."""


# Free dims known to be multiples (a spec's `H: {multiple_of: 16}`: symbol -> 16) while a graph is
# expanded or typed. Under them a dim is written over the quotient atom H//16 wherever H itself
# cannot be (`(H - 2)//2` is 8*H//16 - 1), a canonical form in which `H // 16 * 16` is `H`, and
# floor division that the facts make exact is exact. Facts belong to one spec, so they are in force
# only inside `multiples_known`, never in a dim's value.
_MULTIPLES: contextvars.ContextVar[dict] = contextvars.ContextVar("multiples", default={})


@contextmanager
def multiples_known(multiples: dict[str, int]):
    """Within: every symbol of `multiples` is known to be a multiple of its number."""
    # added to those already in force: a scan body's graph, typed inside its network's, has none of its own
    token = _MULTIPLES.set({**_MULTIPLES.get(), **{s: m for s, m in multiples.items() if m > 1}})
    try:
        yield
    finally:
        _MULTIPLES.reset(token)


# A monomial is a sorted tuple of (atom, power); an atom is a symbol name or an opaque _Atom.
Monomial = tuple
DimLike = Union["Dim", int]


class _Atom:
    """An opaque operation on dims: floordiv(p, d), min(a, b), max(a, b). Its key and text are
    made once: atoms nest (a stack of strided layers on a free dim nests one floordiv per layer),
    and recomputing the inner ones at every level made each level cost twice the one below."""

    __slots__ = ("kind", "args", "_key", "_str")

    def __init__(self, kind: str, args: tuple):
        self.kind = kind
        self.args = args
        self._key = (kind, tuple(a.key() if isinstance(a, Dim) else a for a in args))
        self._str = None

    def __eq__(self, other):
        return isinstance(other, _Atom) and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def sort_key(self) -> str:
        return "~" + str(self)  # opaque atoms sort after plain symbols

    def subs(self, binding: dict) -> "Dim":
        args = [a.subs(binding) if isinstance(a, Dim) else a for a in self.args]
        if self.kind == "floordiv":
            return args[0] // args[1]
        if self.kind == "min":
            return dim_min(args[0], args[1])
        return dim_max(args[0], args[1])

    def __str__(self):
        if self._str is None:
            if self.kind == "floordiv":
                num = self.args[0]
                inner = str(num) if num.is_symbol() else f"({num})"
                self._str = f"{inner}//{self.args[1]}"
            else:
                self._str = f"{self.kind}({self.args[0]}, {self.args[1]})"
        return self._str

    __repr__ = __str__   # terms are sorted by the text of their monomials, which holds atoms


def _atom_key(atom) -> str:
    return atom if isinstance(atom, str) else atom.sort_key()


def _mono_mul(a: Monomial, b: Monomial) -> Monomial:
    powers: dict = {}
    for atom, p in a + b:
        powers[atom] = powers.get(atom, 0) + p
    return tuple(sorted(powers.items(), key=lambda ap: _atom_key(ap[0])))


class Dim:
    """An exact integer expression over positive symbols, in canonical polynomial form."""

    # A dim is never changed once made, so its key and text are computed once.
    __slots__ = ("terms", "_hash", "_key", "_str")

    def __init__(self, value: DimLike | str | dict = 0):
        if type(value) is int:        # the most common by far (not a bool: its type is bool)
            terms = {(): value} if value else {}
        elif isinstance(value, Dim):
            terms = value.terms
        elif isinstance(value, bool):
            raise TypeError("a dim cannot be a bool")
        elif isinstance(value, int):
            terms = {(): value} if value else {}
        elif isinstance(value, str):
            terms = {((value, 1),): 1}
        elif isinstance(value, dict):
            terms = {m: c for m, c in value.items() if c}
            multiples = _MULTIPLES.get()
            if multiples and terms:
                terms = _over_multiples(terms, multiples)
        else:
            raise TypeError(f"cannot make a dim from {type(value).__name__}")
        self.terms: dict = terms
        self._hash = self._key = self._str = None

    @classmethod
    def _of(cls, terms: dict) -> "Dim":
        """A dim from terms already canonical (no zero coefficient): arithmetic's results, made
        without __init__'s checks, since shape inference makes tens of thousands of them."""
        multiples = _MULTIPLES.get()
        if multiples and terms:      # a product by a constant can make a known multiple whole again
            terms = _over_multiples(terms, multiples)
        dim = cls.__new__(cls)
        dim.terms = terms
        dim._hash = dim._key = dim._str = None
        return dim

    def _const(self) -> int | None:
        """The value of a constant dim, else None."""
        terms = self.terms
        if not terms:
            return 0
        return terms.get(()) if len(terms) == 1 else None

    def _scaled(self, k: int) -> "Dim":
        return Dim._of({m: c * k for m, c in self.terms.items()}) if k else Dim._of({})

    # -- inspection -------------------------------------------------------------------------
    def key(self) -> tuple:
        if self._key is None:
            self._key = tuple(sorted(((tuple((_atom_key(a), p) for a, p in m), c) for m, c in self.terms.items())))
        return self._key

    def is_const(self) -> bool:
        terms = self.terms          # inline: shape inference and the summary ask it of every dim
        return not terms or (len(terms) == 1 and () in terms)

    def is_symbol(self) -> bool:
        if len(self.terms) != 1:
            return False
        (m, c), = self.terms.items()
        return c == 1 and len(m) == 1 and m[0][1] == 1 and isinstance(m[0][0], str)

    @property
    def value(self) -> int:
        terms = self.terms
        if not terms:
            return 0
        if len(terms) == 1 and () in terms:
            return terms[()]
        raise ValueError(f"dim {self} is not a constant")

    def symbols(self) -> set[str]:
        out: set[str] = set()
        for m in self.terms:
            for atom, _ in m:
                if isinstance(atom, str):
                    out.add(atom)
                else:
                    for a in atom.args:
                        if isinstance(a, Dim):
                            out |= a.symbols()
        return out

    def subs(self, binding: dict) -> "Dim":
        """Replace symbols by dims or ints; opaque atoms re-evaluate and may become exact."""
        if self._const() is not None:
            return self               # nothing to replace (most dims are constants)
        terms = []
        for m, c in self.terms.items():
            term = Dim(c)
            for atom, p in m:
                if isinstance(atom, str):
                    base = Dim(binding[atom]) if atom in binding else Dim(atom)
                else:
                    base = atom.subs(binding)
                for _ in range(p):
                    term = term * base
            terms.append(term)
        return dim_sum(terms)

    # -- arithmetic -------------------------------------------------------------------------
    def __add__(self, other: DimLike) -> "Dim":
        other = as_dim(other)
        a, b = self._const(), other._const()
        if a is not None and b is not None:
            return Dim._of({(): a + b} if a + b else {})
        terms = dict(self.terms)
        for m, c in other.terms.items():
            terms[m] = terms.get(m, 0) + c
        return Dim(terms)

    __radd__ = __add__

    def __neg__(self) -> "Dim":
        return Dim({m: -c for m, c in self.terms.items()})

    def __sub__(self, other: DimLike) -> "Dim":
        return self + (-as_dim(other))

    def __rsub__(self, other: DimLike) -> "Dim":
        return as_dim(other) - self

    def __mul__(self, other: DimLike) -> "Dim":
        # most dims are constants (a channel count, a kernel size): scale the other's terms
        k = other if type(other) is int else as_dim(other)._const()
        if k is not None:
            return self._scaled(k)
        other = as_dim(other)
        k = self._const()
        if k is not None:
            return other._scaled(k)
        if len(self.terms) * len(other.terms) > 100 * MAX_TERMS:
            raise self._too_large(other)
        terms: dict = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = _mono_mul(m1, m2)
                terms[m] = terms.get(m, 0) + c1 * c2
            if len(terms) > MAX_TERMS:
                raise self._too_large(other)
        return Dim(terms)

    def _too_large(self, other: "Dim") -> "DimTooLarge":
        return DimTooLarge(f"the product of a {len(self.terms)}-term dim and a {len(other.terms)}-term dim "
                           f"would pass {MAX_TERMS:,} terms (dims.MAX_TERMS)")

    __rmul__ = __mul__

    def __floordiv__(self, other: DimLike) -> "Dim":
        other = as_dim(other)
        if other.is_const():
            d = other.value
            if d == 0:
                raise ZeroDivisionError("division by zero in a dim expression")
            if self.is_const():
                return Dim(self.value // d)
            multiples = _MULTIPLES.get()
            # over the quotients of the known multiples, H = 16*(H//16), the whole part is plain
            terms = _in_quotients(self.terms, multiples) if multiples else self.terms
            if d > 0 and all(c % d == 0 for c in terms.values()):
                return Dim({m: c // d for m, c in terms.items()})
            if d == 1:
                return self
            # Pull out the part that divides exactly so (2*H + 1)//2 becomes H + 1//2 -> H.
            whole = {m: (c // d) * d for m, c in terms.items()}
            rest = self - Dim(whole)
            if rest.is_const() and d > 0:
                return Dim({m: c // d for m, c in whole.items()}) + rest.value // d
            nested = self._as_floordiv_plus_const()
            if nested is not None and d > 0 and nested[1] * d <= MAX_INT:
                # (p//a + c)//d is (p + c*a)//(a*d): a stack of strided layers on a free dim stays
                # one atom, (H - 1)//32, rather than a nest as deep as the stack
                p, a, c = nested
                return (p + c * a) // (a * d)
            return Dim({((_Atom("floordiv", (self, d)), 1),): 1})
        quotient = self._exact_quotient(other)
        if quotient is not None:
            return quotient
        raise ValueError(f"cannot divide {self} by the symbolic dim {other} exactly")

    def _as_floordiv_plus_const(self) -> "tuple[Dim, int, int] | None":
        """(p, a, c) when this dim is p//a + c for a constant c, else None."""
        atoms = [m for m in self.terms if m]
        if len(atoms) != 1 or self.terms[atoms[0]] != 1 or len(atoms[0]) != 1:
            return None
        (atom, power), = atoms[0]
        if power != 1 or not isinstance(atom, _Atom) or atom.kind != "floordiv":
            return None
        return atom.args[0], atom.args[1], self.terms.get((), 0)

    def _exact_quotient(self, other: "Dim") -> "Dim | None":
        # Division by a single monomial, e.g. (B*T*d)//T; enough for reshape bookkeeping.
        if len(other.terms) != 1:
            return None
        (om, oc), = other.terms.items()
        out: dict = {}
        for m, c in self.terms.items():
            powers = dict(m)
            for atom, p in om:
                if powers.get(atom, 0) < p:
                    return None
                powers[atom] -= p
            if c % oc:
                return None
            nm = tuple(sorted(((a, p) for a, p in powers.items() if p), key=lambda ap: _atom_key(ap[0])))
            out[nm] = out.get(nm, 0) + c // oc
        return Dim(out)

    def __rfloordiv__(self, other: DimLike) -> "Dim":
        return as_dim(other) // self

    def __mod__(self, other: DimLike) -> "Dim":
        return self - (self // other) * as_dim(other)

    def __rmod__(self, other: DimLike) -> "Dim":
        return as_dim(other) % self

    def ceil_div(self, other: DimLike) -> "Dim":
        return (self + as_dim(other) - 1) // other

    # -- comparison -------------------------------------------------------------------------
    def __eq__(self, other) -> bool:
        # a constant equals only the same constant: compared as ints, without making keys
        if type(other) is int:
            const = self._const()
            return const is not None and const == other
        if isinstance(other, bool):
            return False
        if isinstance(other, int):
            other = Dim(other)
        if not isinstance(other, Dim):
            return NotImplemented
        a, b = self._const(), other._const()
        if a is not None or b is not None:
            return a == b
        return self.key() == other.key()

    def __hash__(self):
        if self._hash is None:
            self._hash = hash(self.key())
        return self._hash

    def _lower_bound(self) -> int | None:
        """A lower bound when every non-constant term has a non-negative coefficient, using
        symbols >= 1 (floordiv, min and max atoms of dims are only known to be >= 0)."""
        total = 0
        multiples = _MULTIPLES.get()
        for mono, coeff in self.terms.items():
            if mono and coeff < 0:
                return None
            # a known multiple's quotient H//16 is >= 1, as H is
            total += coeff * (all(isinstance(a, str) or _quotient_of(a, multiples) for a, _ in mono) if mono else 1)
        return total

    def known_sign(self) -> int | None:
        """0 if zero, +1 if provably >= 0, -1 if provably <= 0, None if it depends on the symbols."""
        if not self.terms:
            return 0
        lower = self._lower_bound()
        if lower is not None and lower >= 0:
            return 1
        upper = (-self)._lower_bound()
        if upper is not None and upper >= 0:
            return -1
        return None

    def is_positive(self) -> bool:
        """Provably >= 1 for every value of the symbols (each symbol is a positive whole number)."""
        lower = self._lower_bound()
        return lower is not None and lower >= 1

    def __int__(self):
        return self.value

    def __index__(self):
        return self.value

    def __repr__(self):
        return f"Dim({self})"

    def __str__(self):
        if self._str is None:
            self._str = self._text()
        return self._str

    def _text(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for m, c in sorted(self.terms.items(), key=lambda mc: (-len(mc[0]), [(_atom_key(a), p) for a, p in mc[0]])):
            factors = []
            for atom, p in m:
                text = str(atom)
                factors.append(text if p == 1 else f"{text}^{p}")
            body = "*".join(factors)
            if not body:
                body_c = str(abs(c))
            elif abs(c) == 1:
                body_c = body
            else:
                body_c = f"{abs(c)}*{body}"
            parts.append(("-" if c < 0 else "+", body_c))
        text = ("-" if parts[0][0] == "-" else "") + parts[0][1]
        for sign, body in parts[1:]:
            text += f" {sign} {body}"
        return text


def _quotient_of(atom, multiples: dict) -> str | None:
    """The symbol S when `atom` is S//m for S known to be a multiple of m, else None."""
    if isinstance(atom, _Atom) and atom.kind == "floordiv" and atom.args[0].is_symbol():
        (name, _), = next(iter(atom.args[0].terms))
        if multiples.get(name) == atom.args[1]:
            return name
    return None


def _quotient(name: str, m: int) -> "_Atom":
    return _Atom("floordiv", (Dim(name), m))


def _in_quotients(terms: dict, multiples: dict) -> dict:
    """The same polynomial with every known multiple S written as m * (S//m)."""
    out: dict = {}
    for mono, coeff in terms.items():
        powers: dict = {}
        for atom, p in mono:
            if isinstance(atom, str) and atom in multiples:
                coeff *= multiples[atom] ** p
                atom = _quotient(atom, multiples[atom])
            powers[atom] = powers.get(atom, 0) + p
        key = tuple(sorted(powers.items(), key=lambda ap: _atom_key(ap[0])))
        out[key] = out.get(key, 0) + coeff
    return {m: c for m, c in out.items() if c}


def _over_multiples(terms: dict, multiples: dict) -> dict:
    """The canonical form under known multiples: over the quotients, then each quotient power
    S//m turned back into S wherever the coefficient holds a factor m, so H stays H and
    8*(H//16) stays as it is. Terms without a known multiple are returned untouched."""
    if not any(isinstance(a, str) and a in multiples or _quotient_of(a, multiples) for mono in terms for a, _ in mono):
        return terms
    out: dict = {}
    for mono, coeff in _in_quotients(terms, multiples).items():
        powers = dict(mono)
        for atom in sorted((a for a in powers if _quotient_of(a, multiples)), key=_atom_key):
            name, m = _quotient_of(atom, multiples), atom.args[1]
            while powers.get(atom, 0) and coeff % m == 0:
                coeff //= m
                powers[atom] -= 1
                powers[name] = powers.get(name, 0) + 1
        key = tuple(sorted(((a, p) for a, p in powers.items() if p), key=lambda ap: _atom_key(ap[0])))
        out[key] = out.get(key, 0) + coeff
    return {m: c for m, c in out.items() if c}


def as_dim(value: DimLike) -> Dim:
    return value if isinstance(value, Dim) else Dim(value)


def dim_min(a: DimLike, b: DimLike) -> Dim:
    a, b = as_dim(a), as_dim(b)
    sign = (a - b).known_sign()
    if sign is not None:
        return a if sign <= 0 else b
    lo, hi = sorted((a, b), key=lambda d: d.key())
    return Dim({((_Atom("min", (lo, hi)), 1),): 1})


def dim_max(a: DimLike, b: DimLike) -> Dim:
    a, b = as_dim(a), as_dim(b)
    sign = (a - b).known_sign()
    if sign is not None:
        return a if sign >= 0 else b
    lo, hi = sorted((a, b), key=lambda d: d.key())
    return Dim({((_Atom("max", (lo, hi)), 1),): 1})


def dim_sum(dims: Iterable[DimLike]) -> Dim:
    """The sum in one pass: adding dims one by one copies the growing total at each step, which is
    quadratic in a total of many distinct terms (the MACs of thousands of layers on a free dim)."""
    terms: dict = {}
    for d in dims:
        if type(d) is int:
            terms[()] = terms.get((), 0) + d
            continue
        for m, c in as_dim(d).terms.items():
            terms[m] = terms.get(m, 0) + c
    return Dim(terms)


def dim_prod(dims: Iterable[DimLike]) -> Dim:
    # the constant factors multiply as ints; only the symbolic ones need polynomial products
    const, out = 1, None
    for d in dims:
        if type(d) is int:
            const *= d
            continue
        terms = (d if isinstance(d, Dim) else as_dim(d)).terms
        if not terms:
            const = 0
        elif len(terms) == 1 and () in terms:
            const *= terms[()]
        else:
            out = as_dim(d) if out is None else out * d
    return Dim(const) if out is None else out._scaled(const)


def format_shape(shape: Iterable[DimLike]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _units(n: int) -> str:
    # Exact below 100,000 (a dim like 1024 reads as itself), three significant places above.
    if abs(n) < 100_000:
        return str(n)
    for suffix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}"
    return str(n)


def humanize(d: DimLike) -> str:
    """A count in readable units, biggest terms first: 18874368*B*T + 6144*B*T^2 -> '6.14K·B·T² + 18.87M·B·T'."""
    d = as_dim(d)
    terms = []
    for mono, coeff in sorted(d.terms.items(), key=lambda mc: (-sum(p for _, p in mc[0]), str(mc[0]))):
        factors = "·".join(str(a) + ("²" if p == 2 else f"^{p}" if p > 2 else "") for a, p in mono)
        terms.append("·".join(x for x in (_units(coeff), factors) if x))
    return " + ".join(terms) or "0"
