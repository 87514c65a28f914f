"""einsum beyond the contract examples: equation mistakes, size mismatches, symbolic shapes, the
implicit output order, the explicit equation handed to ONNX, and MACs."""

import numpy as np
import pytest

from graphnet.dims import Dim
from graphnet.ops import ShapeError, TensorType
from graphnet.ops.einsum import Einsum


def t(*shape, dtype="float32"):
    return TensorType(dtype, shape)


@pytest.mark.parametrize("equation,inputs,message", [
    ("ij,jk->ik", [t(2, 3)], r"einsum equation 'ij,jk->ik' has 2 input terms but 1 input was given"),
    ("ij->ji", [t(2, 3), t(3, 4)], r"has 1 input term but 2 inputs were given"),
    ("ij->i->j", [t(2, 3)], r"einsum equation 'ij->i->j' has more than one '->'"),
    ("i$j->ij", [t(2, 3)], r"input term 0 'i\$j' has the character '\$'; only letters a-z, A-Z and '\.\.\.' may name"),
    ("i1->i", [t(2, 3)], r"has the character '1'"),
    ("i.j->ij", [t(2, 3)], r"input term 0 'i\.j' has a '\.' that is not part of '\.\.\.'"),
    ("...i...->i", [t(2, 3)], r"input term 0 '\.\.\.i\.\.\.' has more than one '\.\.\.'"),
    ("ij-ji", [t(2, 3)], r"has a stray '-' or '>'"),
    ("ij->i,j", [t(2, 3)], r"has a ',' after '->'; there is one output"),
    ("ijk->i", [t(2, 3)], r"einsum term 'ijk' names 3 axes but input 0 is float32\[2, 3\] \(rank 2\)"),
    ("ij,jk", [t(2, 3), t(3, 4, 5)], r"einsum term 'jk' names 2 axes but input 1 is float32\[3, 4, 5\] \(rank 3\)"),
    ("...ijk->...", [t(2, 3)], r"names 3 axes besides '\.\.\.' but input 0 is float32\[2, 3\] \(rank 2\)"),
    ("ij,jk->ik", [t(2, 3), t(4, 5)],
     r"einsum letter 'j' is 3 in input 0 \(float32\[2, 3\]\) axis 1 but 4 in input 1 \(float32\[4, 5\]\) axis 0; "
     r"a repeated letter needs one size"),
    ("ii->i", [t(2, 3)], r"letter 'i' is 2 in input 0 \(float32\[2, 3\]\) axis 0 but 3 in input 0 "
                         r"\(float32\[2, 3\]\) axis 1"),
    ("ij->iz", [t(2, 3)], r"einsum output letter 'z' does not appear in any input term of 'ij->iz'"),
    ("ij->ii", [t(2, 3)], r"einsum output term 'ii' repeats the letter 'i'"),
    ("...i->i", [t(2, 3)], r"the inputs use '\.\.\.' so the output term 'i' must too"),
    ("ij->...i", [t(2, 3)], r"the output term '\.\.\.i' has '\.\.\.' but no input term does"),
    ("...ij,...jk->...ik", [t(2, 1, 3, 4), t(5, 4, 2)],
     r"'\.\.\.' stands for 2 axes in input 0 \(float32\[2, 1, 3, 4\]\) but 1 in input 1 \(float32\[5, 4, 2\]\); "
     r"ONNX needs the same number in every input"),
    ("...i,...i->...", [t(2, 3, 4), t(5, 3, 4)],
     r"einsum '\.\.\.' axis 0 is 2 in input 0 \(float32\[2, 3, 4\]\) but 5 in input 1 \(float32\[5, 3, 4\]\); "
     r"they must match or one be 1"),
])
def test_equation_mistakes_say_what_is_wrong(equation, inputs, message):
    with pytest.raises(ShapeError, match=message):
        Einsum(equation=equation).infer(*inputs)


def test_dtypes_must_agree_and_be_numbers():
    with pytest.raises(ShapeError, match="inputs must have one dtype"):
        Einsum(equation="i,i->").infer(t(3), t(3, dtype="float64"))
    with pytest.raises(ShapeError, match="einsum needs numbers"):
        Einsum(equation="i->").infer(t(3, dtype="bool"))
    with pytest.raises(ShapeError, match="at least one input"):
        Einsum(equation="->").infer()


def test_symbolic_dims_flow_through_and_must_be_provably_equal():
    B, T, S = Dim("B"), Dim("T"), Dim("S")
    op = Einsum(equation="bhtd,bhsd->bhts")
    y = op.infer(t(B, 8, T, 64), t(B, 8, S, 64))
    assert y.shape == (B, 8, T, S)
    assert op.macs([t(B, 8, T, 64), t(B, 8, S, 64)], [y]) == B * T * S * 8 * 64
    with pytest.raises(ShapeError, match=r"letter 'b' is B in input 0 .* but S in input 1"):
        op.infer(t(B, 8, T, 64), t(S, 8, S, 64))
    ell = Einsum(equation="...d,de->...e").infer(t(B, T, 16), t(16, 4))
    assert ell.shape == (B, T, 4)


def test_implicit_output_is_ellipsis_then_single_letters_in_ascii_order():
    assert Einsum(equation="ba").infer(t(2, 3)).shape == (3, 2)              # "ba->ab"
    assert Einsum(equation="aB").infer(t(2, 3)).shape == (3, 2)              # 'B' < 'a' in ASCII, as NumPy
    assert Einsum(equation="ij,jk").plan(t(2, 3), t(3, 4)).equation == "ij,jk->ik"
    assert Einsum(equation="i...,ij").plan(t(2, 5, 6), t(2, 3)).equation == "i...,ij->...j"
    assert Einsum(equation=" ij , jk ->ik ").plan(t(2, 3), t(3, 4)).equation == "ij,jk->ik"


def test_lowering_always_passes_the_explicit_equation(onnxruntime_run):
    # onnxruntime rejects some implicit-mode equations (e.g. 'aB'); the explicit form runs.
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
    op = Einsum(equation="aB")
    np.testing.assert_allclose(onnxruntime_run(op, {"x": x}), op.compute(x), rtol=1e-6)
    np.testing.assert_allclose(op.compute(x), x.T)


def test_macs_are_the_product_of_every_index_size():
    op = Einsum(equation="ij,jk->ik")
    ins = [t(4, 3), t(3, 5)]
    assert op.macs(ins, [op.infer(*ins)]) == 4 * 3 * 5
    op = Einsum(equation="...ij,...jk->...ik")
    ins = [t(2, 1, 3, 4), t(1, 5, 4, 2)]
    assert op.macs(ins, [op.infer(*ins)]) == 2 * 5 * 3 * 4 * 2
    op = Einsum(equation="ii->i")
    assert op.macs([t(6, 6)], [op.infer(t(6, 6))]) == 6
