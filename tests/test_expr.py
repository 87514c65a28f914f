"""The expression language: a parser that never evaluates Python, with located errors."""

import pytest

from graphnet.dims import Dim
from graphnet.expr import ExprError, UnknownName, evaluate_text, parse

SCOPE = {"d_model": 512, "heads": 8, "H": Dim("H"), "v": "M", "cfg": [64, "M"], "bias": True}


@pytest.mark.parametrize("text,expected", [
    ("d_model // heads", 64),
    ("d_model % heads == 0", True),
    ("2 ** 10 - 1", 1023),
    ("-3 + +4", 1),
    ("max(3, 7, 5)", 7),
    ("cdiv(7, 2)", 4),
    ("2 if v == 'M' else 1", 2),
    ("cfg[1]", "M"),
    ("len(cfg) * 2", 4),
    ("not bias or heads > 4", True),
    ("1 < 2 <= 2", True),
    ("1 / 4", 0.25),
    ("sqrt(16.0)", 4.0),
])
def test_values(text, expected):
    assert evaluate_text(text, SCOPE) == expected


def test_dims_stay_symbolic():
    assert evaluate_text("(H + 2 - 3) // 2 + 1", SCOPE) == (Dim("H") - 1) // 2 + 1
    assert evaluate_text("cdiv(H, 2)", SCOPE) == (Dim("H") + 1) // 2


@pytest.mark.parametrize("text,message,column", [
    ("1 +", "expected a value but found the end of the expression", 3),
    ("3 $ 4", "unexpected character '$'", 2),
    ("(1", "expected ')' but found the end of the expression", 2),
    ("d_model / 0", "division by zero", 8),
    ("H / 2", "'/' gives a fraction; use '//' for whole-number division of dims", 2),
    ("H > 3", "cannot decide H > 3 for every value of the free dims", 0),
    ("foo(1)", "unknown function 'foo'", 0),
    ("__import__('os')", "unknown function '__import__'", 0),
    ("cfg[5]", "index 5 out of range for length 2", 3),
    ("2 ** 100", "exponent out of range", 2),
])
def test_errors_are_located(text, message, column):
    with pytest.raises(ExprError) as info:
        evaluate_text(text, SCOPE)
    assert info.value.message.startswith(message)
    assert info.value.column == column


def test_unknown_names_list_what_is_known():
    with pytest.raises(UnknownName) as info:
        evaluate_text("d_modle * 2", SCOPE)
    assert info.value.name == "d_modle" and "d_model" in info.value.known


def test_nesting_and_length_are_bounded():
    with pytest.raises(ExprError, match="nested more than"):
        parse("(" * 200 + "1" + ")" * 200)
    with pytest.raises(ExprError, match="longer than"):
        parse("1+" * 2000 + "1")


def test_attribute_access_is_not_part_of_the_language():
    with pytest.raises(ExprError):
        evaluate_text("cfg.__class__", SCOPE)


@pytest.mark.parametrize("text,expected", [("H >= 1", True), ("H <= 0", False), ("H > 0", True),
                                           ("H + 1 > H", True), ("H < H + 2", True)])
def test_comparisons_decided_by_positivity(text, expected):
    assert evaluate_text(text, SCOPE) is expected


# -- long runs of one operator: evaluated without recursing once per operand ----------------------

@pytest.mark.parametrize("text,expected", [
    ("+".join(["1"] * 999), 999),                                   # issue 13: RecursionError
    ("-".join(["1"] * 999), 1 - 998),
    ("*".join(["1"] * 999), 1),
    ("100000 // 2 // 2 // 2 % 7 * 3 - 1", ((100000 // 2 // 2 // 2) % 7) * 3 - 1),
    (" and ".join(["true"] * 200), True),
    (" or ".join(["false"] * 200) + " or true", True),
    ("x" + "[0]" * 600, 5),
    ("[1] + [2] + [3] + [4]", [1, 2, 3, 4]),
    ("'a' + 'b' + 'c'", "abc"),
    ("1 + 2 * 3 - 4 // 2 + 2 ** 3", 1 + 2 * 3 - 4 // 2 + 2 ** 3),    # precedence as Python's
    ("false and x[9]", False),                                       # stops at the first that decides
    ("true or x[9]", True),
], ids=lambda v: v[:30] if isinstance(v, str) else None)
def test_long_runs_evaluate_as_python_would(text, expected):
    nested = 5
    for _ in range(600):
        nested = [nested]
    assert evaluate_text(text, {**SCOPE, "x": nested}) == expected


@pytest.mark.parametrize("text,column", [
    ("1 + 2 + 'a' + 4", 6),           # at the operator that fails, not the first of the run
    ("true and true and 3", 14),
    ("3 and true", 2),
    ("cfg[0][1]", 6),
])
def test_errors_in_a_run_point_at_their_operator(text, column):
    with pytest.raises(ExprError) as info:
        evaluate_text(text, SCOPE)
    assert info.value.column == column


def test_a_product_past_the_term_bound_is_located_at_its_operator():
    sum20 = "(" + "+".join(f"s{i}" for i in range(20)) + ")"
    scope = {f"s{i}": Dim(f"s{i}") for i in range(20)}
    with pytest.raises(ExprError, match="would pass 10,000 terms") as info:
        evaluate_text(f"{sum20}**8", scope)
    assert info.value.column == len(sum20)
    sum100 = "(" + "+".join(f"a{i}" for i in range(100)) + ")"
    scope = {f"a{i}": Dim(f"a{i}") for i in range(100)}
    with pytest.raises(ExprError, match="the product of a 5050-term dim and a 100-term dim") as info:
        evaluate_text(f"{sum100}*{sum100}*{sum100}*{sum100}", scope)
    assert info.value.column == 2 * len(sum100) + 1       # the second '*': 5050 terms times 100


# -- ordering lists ------------------------------------------------------------------------------

@pytest.mark.parametrize("a,b", [([1, 2], [1, 3]), ([1, 2], [1, 2]), ([1, 2, 3], [1, 2]), ([], [0]),
                                 ([[1], [2]], [[1], [3]]), (["a", "b"], ["a", "c"]), ([2.5], [2])])
@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_lists_are_ordered_as_python_orders_them(a, b, op):
    assert evaluate_text(f"a {op} b", {"a": a, "b": b}) == eval(f"a {op} b", {}, {"a": a, "b": b})


@pytest.mark.parametrize("text,message", [
    ("[1, 'a'] < [1, 2]", "cannot compare string with int"),          # issue 13: a TypeError
    ("[[1]] < [1]", "cannot compare list with int"),
    ("[H] < [3]", "cannot decide H < 3"),
])
def test_lists_that_cannot_be_ordered_are_located_errors(text, message):
    with pytest.raises(ExprError, match=message) as info:
        evaluate_text(text, SCOPE)
    assert info.value.column == 0


# -- issue 12: round, range, comprehensions, sum; bounded --------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("round(2.5) + round(3.5)", 6),                 # ties to even, as Python, NumPy and torch round
    ("round(3.14159, 2)", 3.14),
    ("floor(log(1000) / log(10) + 1e-9)", 3),
    ("range(3)", [0, 1, 2]),
    ("range(10, 0, -4)", [10, 6, 2]),
    ("[2 * i for i in range(4)]", [0, 2, 4, 6]),
    ("[c for c in cfg if c != 'M']", [64]),
    ("[[i * j for j in range(3)] for i in range(2)]", [[0, 0, 0], [0, 1, 2]]),
    ("sum([1, 2, 3]) + len(range(5))", 11),
    ("sum([])", 0),
    ("[x for x in []]", []),
])
def test_issue_12_values(text, expected):
    assert evaluate_text(text, SCOPE) == expected


def test_sum_of_dims_stays_symbolic_and_a_dim_may_be_named_in():
    assert evaluate_text("sum([H, H, 1])", SCOPE) == Dim("H") * 2 + 1
    assert evaluate_text("in * 2", {"in": 3}) == 6


def test_regnet_widths_are_computed_in_an_expression():
    # torchvision's RegNet width rule, quantised, grouped into stages and made divisible by the
    # group width, for regnet_x_400mf: the stage widths and depths torchvision's BlockParams gives
    regnet = pytest.importorskip("torchvision.models.regnet")
    want = regnet.BlockParams.from_init_params(depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16)
    scope = {"w_0": 24, "w_a": 24.48, "w_m": 2.54, "depth": 22, "quant": 8, "g": 16}
    steps = [
        ("widths", "[int(round(w_0 * w_m ** round(log((i * w_a + w_0) / w_0) / log(w_m)) / quant) * quant) "
                   "for i in range(depth)]"),
        ("starts", "[i for i in range(depth) if i == 0 or widths[i] != widths[i - 1]]"),
        ("depths", "[(starts[k + 1] if k + 1 < len(starts) else depth) - starts[k] for k in range(len(starts))]"),
        ("rounded", "[max(g, int(widths[i] + g / 2) // g * g) for i in starts]"),
        ("stages", "[rounded[k] + g if rounded[k] < 0.9 * widths[starts[k]] else rounded[k] "
                   "for k in range(len(starts))]"),
    ]
    for name, text in steps:
        scope[name] = evaluate_text(text, scope)
    assert (scope["stages"], scope["depths"]) == (want.widths, want.depths)
    assert evaluate_text("sum(depths)", scope) == 22


@pytest.mark.parametrize("text,message,column", [
    ("[0 for i in range(1000) for j in range(1000)]", "expected ']' but found 'for'", 24),
    ("[[0 for j in range(1000)] for i in range(1000)]", "the expression makes more than 100000 list items and steps",
     13),
    ("range(200000)", "the expression makes more than 100000 list items and steps", 0),
    ("range(H)", "range() needs known whole numbers, not the free dim H", 0),
    ("range(0.5)", "range() needs whole numbers, got float 0.5", 0),
    ("range(1, 5, 0)", "range() step must not be zero", 0),
    ("sum(3)", "sum() takes one list, got int", 0),
    ("sum(['a'])", "expected a number, got string 'a'", 0),
    ("round(H)", "round() needs a known number, not the free dim H", 0),
    ("[i for 3 in cfg]", "expected a name after 'for' but found '3'", 7),
    ("[i for i of cfg]", "expected 'in' but found 'of'", 9),
    ("[i for i in heads]", "a comprehension runs over a list, got int", 12),
])
def test_issue_12_errors(text, message, column):
    with pytest.raises(ExprError) as e:
        evaluate_text(text, SCOPE)
    assert (e.value.message, e.value.column) == (message, column)


def test_pair_is_torchs_pair():
    assert evaluate_text("pair(3)", {}) == [3, 3] and evaluate_text("pair([1, 7])", {}) == [1, 7]
    assert evaluate_text("pair(k)[1]", {"k": [3, 5]}) == 5
    with pytest.raises(ExprError, match=r"pair\(\) of a list needs two items, one per axis, got 3"):
        evaluate_text("pair([1, 2, 3])", {})
    with pytest.raises(ExprError, match="expected a number, got string 'a'"):
        evaluate_text("pair('a')", {})
