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
