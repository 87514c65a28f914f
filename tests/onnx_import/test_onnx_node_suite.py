"""The ONNX backend node suite through graphnet: every case the onnx wheel generates for an op
graphnet imports runs through import + the NumPy back end (node_suite.py) and gives the outputs
onnx stores with it, or fails for a reason listed here. A listed case that passes fails the test,
so the list stays true. The count is printed and recorded in docs/onnx.md."""

from __future__ import annotations

import re

import pytest
from node_suite import run_case, supported_cases

# (case name pattern, why graphnet cannot pass it): what the spec language or an op leaves out on
# purpose, each said once.
EXPECTED = [
    (r"_(u?int16|uint32|uint64|int4|uint4|int2|uint2)$|_types_float32_uint|^test_cast_\w*(BFLOAT16|FLOAT8|FLOAT4|INT4|INT2)|_bfloat16$|_string",
     "a dtype graphnet has not (its dtypes: float32/64/16, int64/32/8, uint8, bool)"),
    (r"^test_shape|^test_size", "the output is a constant shape: the spec refuses an input no op reads"),
    (r"dropout_default_ratio$|^test_training_dropout", "training-mode dropout (random); graphnet's dropout is inference"),
    (r"_mask(_ratio)?$|maxpool_with_argmax", "a second output (dropout's mask, max_pool's indices) graphnet's op has not"),
    (r"^test_layer_normalization_(?!.*expanded)", "LayerNormalization's Mean/InvStdDev outputs, which layer_norm has not"),
    (r"(averagepool|lppool)\w*dilations", "dilated average/Lp pooling, which graphnet's pools have not"),
    (r"ceil_last_window_starts_on_pad|ceil_output_size_reduce_by_one",
     "a ceil_mode window past the input, where ONNX and onnxruntime disagree (graphnet refuses it)"),
    (r"clip_default_int8_\w+(?<!expanded)$|maxpool_2d_uint8|pow_types_int|bool_inputs|empty_set_bool",
     "integer or bool inputs to an op graphnet defines on floats (clip, pools, pow base, reduce max/min)"),
    (r"empty_set|zero_size|constantofshape_int_shape_zero|tri[lu]_zero$|allowzero", "a dim of size 0; graphnet's dims are positive"),
    (r"convtranspose_(autopad_same|kernel_shape|output_shape)", "ConvTranspose's output_shape / SAME auto_pad"),
    (r"identity_opt|identity_sequence", "optional and sequence types"),
    (r"wrap_pad", "Pad mode 'wrap', which graphnet's pad has not"),
    (r"min_greater_than_max$", "Clip with min > max, which graphnet's clip refuses"),
    (r"lstm_with_peepholes", "LSTM sequence_lens and peepholes"),
    (r"^test_mod_(mixed_sign_float|float)", "Mod of float data: graphnet has no mod op (Mod of sizes and constants folds)"),
    (r"^test_resize_\w*(cubic|antialias|tf_crop_and_resize|half_pixel_symmetric|not_larger|not_smaller)",
     "Resize's cubic mode, antialias, crop and keep_aspect_ratio_policy, which graphnet's resize has not"),
    (r"^test_resize_downsample_scales_(linear|linear_align_corners|nearest)$",
     "a scale giving a fractional length (ONNX floors it, samples at the scale given): graphnet's resize refuses it"),
]


def _expected(name: str) -> str | None:
    return next((why for pattern, why in EXPECTED if re.search(pattern, name)), None)


@pytest.fixture(scope="module")
def outcomes():
    return {case.name: run_case(case) for case in supported_cases()}


def test_every_supported_case_passes_or_fails_for_a_listed_reason(outcomes):
    passed = sum(1 for r in outcomes.values() if r is None)
    print(f"\nONNX node suite: {passed} of {len(outcomes)} cases pass "
          f"({len(outcomes) - passed} expected failures, {len(EXPECTED)} reasons)")
    unexpected = {n: r for n, r in outcomes.items() if r is not None and _expected(n) is None}
    assert unexpected == {}, '\n'.join(f'{n}: {r}' for n, r in unexpected.items())
    stale = [n for n, r in outcomes.items() if r is None and _expected(n) is not None]
    assert stale == [], stale
    assert passed >= 400
