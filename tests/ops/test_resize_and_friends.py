"""The ops networks outside the zoo reach for (issue 12), against PyTorch's own functions, on NumPy
and onnxruntime: resize in PyTorch's interpolate modes, adaptive average pooling, group norm,
pixel shuffle, roll, topk and cumsum; and what each refuses, in its own words."""

import numpy as np
import pytest

from graphnet.dims import Dim
from graphnet.ops import ShapeError, TensorType
from graphnet.ops.norm import GroupNorm
from graphnet.ops.pool import AdaptiveAvgPool
from graphnet.ops.ranking import TopK
from graphnet.ops.rearrange import DepthToSpace, Roll
from graphnet.ops.reduce import CumSum
from graphnet.ops.resize import Resize

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional: pip install torch==2.13.0)")
F = torch.nn.functional


def _x(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(np.float32)


# (our attributes, interpolate's keywords): PyTorch's modes as ONNX's coordinate modes
RESIZES = [
    ({"scales": [2.0, 2.0], "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
     {"scale_factor": 2, "mode": "nearest"}),
    ({"sizes": [7, 9], "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
     {"size": (7, 9), "mode": "nearest"}),
    ({"sizes": [7, 3], "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_ceil"},
     {"size": (7, 3), "mode": "nearest-exact"}),
    ({"scales": [2.0, 2.0], "mode": "linear", "coordinate_transformation_mode": "half_pixel"},
     {"scale_factor": 2, "mode": "bilinear", "align_corners": False}),
    ({"sizes": [1, 11], "mode": "linear", "coordinate_transformation_mode": "half_pixel"},
     {"size": (1, 11), "mode": "bilinear", "align_corners": False}),
    ({"sizes": [9, 4], "mode": "linear", "coordinate_transformation_mode": "align_corners"},
     {"size": (9, 4), "mode": "bilinear", "align_corners": True}),
    ({"scales": [0.5, 1.5], "mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"},
     {"scale_factor": (0.5, 1.5), "mode": "bilinear", "align_corners": False}),
]


@pytest.mark.parametrize("attrs,torch_args", RESIZES, ids=lambda v: str(v)[:40])
def test_resize_is_pytorchs_interpolate(attrs, torch_args, onnxruntime_run):
    x = _x(2, 3, 6, 4)
    op = Resize(**attrs)
    want = F.interpolate(torch.from_numpy(x), **torch_args).numpy()
    got = op.compute(x)
    assert got.shape == want.shape == tuple(d.value for d in op.infer(TensorType("float32", x.shape)).shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(onnxruntime_run(op, {"x": x}), want, rtol=1e-5, atol=1e-6)


def test_resize_keeps_free_dims_under_whole_scales():
    out = Resize(scales=[2.0, 3.0]).infer(TensorType("float32", (Dim("B"), 3, Dim("H"), Dim("W"))))
    assert out.shape == (Dim("B"), Dim(3), Dim("H") * 2, Dim("W") * 3)


@pytest.mark.parametrize("attrs,shape,message", [
    ({"scales": [0.7]}, (1, 1, Dim("L")), "scale 0.7 on the free dim L may not give a whole length; give `sizes`, "
                                          "or a whole scale"),
    ({"scales": [0.5]}, (1, 1, 5), "scale 0.5 on the spatial dim 5 gives 2.5, not a whole length; give `sizes` instead"),
    ({"scales": [2.0], "sizes": [4]}, (1, 1, 3), "resize needs exactly one of 'scales' or 'sizes'"),
    ({"sizes": [4]}, (1, 1, 3, 3), "sizes has 1 values but the input has 2 spatial axes"),
])
def test_resize_refuses(attrs, shape, message):
    with pytest.raises(ShapeError) as e:
        Resize(**attrs).infer(TensorType("float32", shape))
    assert str(e.value) == message


@pytest.mark.parametrize("shape,size", [((2, 3, 7, 5), (3, 2)), ((1, 2, 13, 13), (6, 6)), ((1, 2, 3, 4), (7, 7)),
                                        ((2, 4, 10), (4,)), ((1, 2, 6, 9), (1, 4))])
def test_adaptive_avg_pool_is_torchs(shape, size, onnxruntime_run):
    x = _x(*shape)
    op = AdaptiveAvgPool(output_size=list(size))
    fn = F.adaptive_avg_pool2d if len(shape) == 4 else F.adaptive_avg_pool1d
    want = fn(torch.from_numpy(x), size).numpy()
    np.testing.assert_allclose(op.compute(x), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(onnxruntime_run(op, {"x": x}), want, rtol=1e-5, atol=1e-6)


def test_adaptive_avg_pool_needs_known_spatial_dims_unless_to_one():
    free = TensorType("float32", (Dim("B"), 8, Dim("H"), Dim("W")))
    assert AdaptiveAvgPool(output_size=1).infer(free).shape == (Dim("B"), Dim(8), Dim(1), Dim(1))
    with pytest.raises(ShapeError) as e:
        AdaptiveAvgPool(output_size=7).infer(free)
    assert str(e.value) == ("adaptive_avg_pool to 7 cells needs a known spatial dim, not the free dim H "
                            "(only output_size 1 works on any size)")


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_norm_is_torchs(groups, onnxruntime_run):
    x, w, b = _x(2, 6, 4, 3), _x(6, seed=1), _x(6, seed=2)
    want = F.group_norm(torch.from_numpy(x), groups, torch.from_numpy(w), torch.from_numpy(b), eps=1e-5).numpy()
    op = GroupNorm(groups=groups)
    np.testing.assert_allclose(op.compute(x, w, b), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(onnxruntime_run(op, {"x": x, "w": w, "b": b}), want, rtol=1e-5, atol=1e-5)


def test_group_norm_refuses_groups_that_do_not_divide_the_channels():
    with pytest.raises(ShapeError) as e:
        GroupNorm(groups=4).infer(TensorType("float32", (2, 6, 3)))
    assert str(e.value) == "the 6 channels of float32[2, 6, 3] do not split into 4 groups"


def test_depth_to_space_crd_is_pixel_shuffle(onnxruntime_run):
    x = _x(2, 18, 3, 4)
    want = F.pixel_shuffle(torch.from_numpy(x), 3).numpy()
    op = DepthToSpace(blocksize=3, mode="CRD")
    np.testing.assert_array_equal(op.compute(x), want)
    np.testing.assert_array_equal(onnxruntime_run(op, {"x": x}), want)


@pytest.mark.parametrize("shifts,axes", [([3, -2], [2, 3]), ([-7], [1]), ([4, 4], [-1, -2])])
def test_roll_is_torchs(shifts, axes, onnxruntime_run):
    x = _x(2, 5, 7, 7)
    want = torch.roll(torch.from_numpy(x), shifts, axes).numpy()
    op = Roll(shifts=shifts, axes=axes)
    np.testing.assert_array_equal(op.compute(x), want)
    np.testing.assert_array_equal(onnxruntime_run(op, {"x": x}), want)


def test_roll_needs_a_known_size():
    with pytest.raises(ShapeError) as e:
        Roll(shifts=[1], axes=[1]).infer(TensorType("float32", (2, Dim("T"))))
    assert str(e.value) == "roll along axis 1 needs its size known, not the free dim T"


def test_topk_and_cumsum_are_torchs():
    x = _x(3, 8)
    values, indices = TopK(k=3).compute(x)
    want = torch.topk(torch.from_numpy(x), 3)
    np.testing.assert_array_equal(values, want.values.numpy())
    np.testing.assert_array_equal(indices, want.indices.numpy())
    np.testing.assert_allclose(CumSum(axis=1).compute(x), torch.cumsum(torch.from_numpy(x), 1).numpy(),
                               rtol=1e-5, atol=1e-6)
