"""Symbolic dims: canonical forms make equal expressions compare equal, and nothing else."""

import pytest

from graphnet.dims import Dim, dim_max, dim_min, dim_prod, humanize

B, T, H = Dim("B"), Dim("T"), Dim("H")


def test_polynomials_are_canonical():
    assert (B + T) * 2 == 2 * T + B * 2
    assert B * T - T * B == 0
    assert (B + 1) * (B - 1) == B * B - 1


def test_distinct_symbols_are_never_assumed_equal():
    assert B != T
    assert B * 2 != B + B + 1


def test_floor_division_is_exact_when_it_divides_and_opaque_otherwise():
    assert (4 * B * T) // 2 == 2 * B * T
    assert (2 * H + 1) // 2 == H            # (2H + 1) // 2 = H for whole H
    conv_out = (H - 3) // 2 + 1
    assert conv_out == (H - 3) // 2 + 1    # the same opaque atom twice compares equal
    assert conv_out != H // 2
    assert conv_out.subs({"H": 224}) == (224 - 3) // 2 + 1


def test_division_by_a_monomial():
    assert (B * T * 512) // T == B * 512
    with pytest.raises(ValueError):
        (B + T) // T


def test_ceil_div_and_min_max():
    assert H.ceil_div(2).subs({"H": 7}) == 4
    assert dim_min(B, B + 1) == B
    assert dim_max(B, B + 1) == B + 1
    assert dim_max(B, T).subs({"B": 3, "T": 5}) == 5
    assert str(dim_max(B, T)) == "max(B, T)"


def test_printing_and_products():
    assert str(2 * B * T + 1) == "2*B*T + 1"
    assert str(B - 3) == "B - 3"
    assert dim_prod([B, 3, T]) == 3 * B * T
    with pytest.raises(ZeroDivisionError):
        B // 0


def test_symbols_are_at_least_one():
    # a free dim is a positive whole number, so these are decided; T - 1 may be 0, so it is not positive
    assert dim_min(1, T) == 1 and dim_max(1, T) == T
    assert (T - 1).known_sign() == 1 and not (T - 1).is_positive()
    assert (1 - T).known_sign() == -1
    assert (B * T + 1).is_positive()
    assert (B * T - 2).known_sign() is None


def test_humanize():
    assert humanize(18874368 * B * T + 6144 * B * T * T) == "6144·B·T² + 18.87M·B·T"
    assert humanize(250_000 * B) == "250.00K·B"
    assert humanize(Dim(1814073344) * B) == "1.81G·B"
    assert humanize(Dim(12)) == "12"


# -- stacks of strided layers on a free dim: one atom, linear in the depth ------------------------

def _pool(d, kernel=1, stride=2, pad=0):
    return (d + 2 * pad - kernel) // stride + 1


def test_a_stride_2_stack_stays_one_floor_division():
    # issue 13: 26 of these took minutes, each level recomputing the text of the ones inside it
    d = H
    for _ in range(26):
        d = _pool(d)
    assert str(d) == "(H - 1)//67108864 + 1"
    h = 10 ** 9 + 7
    for _ in range(26):
        h = (h - 1) // 2 + 1                     # the oracle: Python's own floor division
    assert d.subs({"H": 10 ** 9 + 7}) == h


@pytest.mark.parametrize("stride,pad,kernel,plus", [(2, 0, 1, 1), (2, 1, 3, 0), (3, 2, 5, 1), (2, 0, 2, 7)])
def test_nested_floor_divisions_equal_python_s_for_every_h(stride, pad, kernel, plus):
    # (p//a + c)//d == (p + c*a)//(a*d) for positive a, d: checked against Python on many H
    d = H + 40
    for _ in range(6):
        d = _pool(d, kernel, stride, pad) + plus
    for h in range(1, 400):
        expect = h + 40
        for _ in range(6):
            expect = (expect + 2 * pad - kernel) // stride + 1 + plus
        assert d.subs({"H": h}) == expect, h


def test_the_same_stack_written_twice_compares_equal_and_different_stacks_do_not():
    a, b = H, H
    for _ in range(5):
        a, b = _pool(a), (b + 1) // 2 + 1
    assert a == _pool(_pool(_pool(_pool(_pool(H)))))
    assert a != b and (H // 2) // 2 == H // 4


def test_a_stack_deeper_than_2_62_nests_instead_of_overflowing_the_divisor():
    d = H
    for _ in range(1000):
        d = _pool(d)
    # 1000 layers: past 62 halvings the divisor would pass 2^62, so the atoms nest, once per 62
    assert str(d).count("//") == 1000 // 62 + 1 and len(str(d)) < 2000
    assert d.subs({"H": 2 ** 70}) == 1


# -- the number of terms of a dim --------------------------------------------------------------------

def test_a_product_past_max_terms_is_refused_before_it_is_made():
    from graphnet.dims import MAX_TERMS, DimTooLarge
    s = Dim(0)
    for i in range(20):
        s = s + Dim(f"s{i}")
    p = s * s * s * s                              # 8855 terms: C(23, 4), within the bound
    assert len(p.terms) == 8855
    with pytest.raises(DimTooLarge, match=f"the product of a 8855-term dim and a 20-term dim would pass {MAX_TERMS:,}"):
        p * s                                      # C(24, 5) = 42504
    hundred = Dim(0)
    for i in range(100):
        hundred = hundred + Dim(f"a{i}")
    assert len((hundred * hundred).terms) == 5050
    with pytest.raises(DimTooLarge):
        hundred * hundred * hundred


def test_a_product_that_would_take_too_long_is_refused_before_it_starts(monkeypatch):
    from graphnet import dims
    from graphnet.dims import DimTooLarge
    big = Dim({((f"x{i}", 1),): 1 for i in range(1001)})
    calls = []
    monkeypatch.setattr(dims, "_mono_mul", lambda a, b: calls.append(1))
    with pytest.raises(DimTooLarge):
        big * big                                  # 1,002,001 products: over 100 x MAX_TERMS
    assert calls == []


def test_dim_sum_is_the_sum():
    from graphnet.dims import dim_sum
    parts = [B * i + T * (i % 3) + (H - 1) // (i + 2) for i in range(300)]
    total = Dim(0)
    for p in parts:
        total = total + p
    assert dim_sum(parts) == total and dim_sum([]) == 0
    assert dim_sum(parts).subs({"B": 3, "T": 5, "H": 99}) == sum(p.subs({"B": 3, "T": 5, "H": 99}).value for p in parts)


def test_text_does_not_depend_on_where_atoms_live_in_memory():
    # terms were sorted by str of tuples holding atoms, i.e. by their addresses
    from graphnet.summary import _bytes
    texts = {str(((H - 1) // 4) * ((T - 1) // 4) + (T - 1) // 4 + (H - 1) // 4) for _ in range(20)}
    assert len(texts) == 1
    assert _bytes(((H - 1) // 2) * 4 + ((T - 1) // 2) * 4) == _bytes(((T - 1) // 2) * 4 + ((H - 1) // 2) * 4)


def test_known_multiples_make_floor_division_exact_and_forms_canonical():
    from graphnet.dims import multiples_known
    H, W = Dim("H"), Dim("W")
    with multiples_known({"H": 16, "W": 4}):
        assert H // 16 * 16 == H and H % 16 == 0 and (H + 8) // 16 * 16 == H and H // 32 * 32 != H
        # a U-Net's pool then upsample: (H - 2)//2 + 1 twice, times 4, is H again
        half = (H - 2) // 2 + 1
        assert ((half - 2) // 2 + 1) * 4 == H and half * 2 == H
        assert str(half) == "8*H//16" and (H // 16).is_positive()
        assert (H * W) // 64 * 64 == H * W and (H * W) // 128 * 128 != H * W
        assert ((H - 2) // 2 + 1).subs({"H": 48}) == 24
    # outside, no fact is in force: the same expression is opaque
    assert H // 16 * 16 != H and str(H // 16 * 16) == "16*H//16" and not (H // 16).is_positive()
