"""Shape and spatial ops (Split, Resize, ConvTranspose, layout-carrying Reshape/Transpose, MatMul, Tile, Expand,
Pad, DepthToSpace, Einsum) lowered to TFLite, each against ONNX Runtime on small graphs built with onnx.helper."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgecnn.errors import UsageError
from edgecnn.lowering.tflite import convert
from tests.lowering.tflite_check import check, make_model

node = helper.make_node
RNG = np.random.default_rng(4321)


def _weights(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32) * 0.3


def _ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


# --- Split
@pytest.mark.parametrize(
    ("shape", "axis", "split", "opset"),
    [
        ([1, 6, 4, 5], 1, None, 13),  # equal halves of the channels (NHWC axis 3)
        ([1, 6, 4, 5], 1, [1, 2, 3], 20),  # split as an input -> SPLIT_V
        ([1, 6, 4, 5], 2, [3, 1], 13),
        ([1, 6, 4, 5], -1, [2, 3], 11),  # split as an attribute
        ([1, 6, 4, 5], 3, "num3", 18),  # num_outputs, last part smaller (5 = 2 + 2 + 1)
        ([2, 7, 3], 1, "num2", 18),
        ([2, 9], 0, [1, 1], 20),
    ],
)
def test_split(shape, axis, split, opset):
    inits, inputs, attrs = {}, ["x"], {"axis": axis}
    if isinstance(split, str):
        count = int(split[3:])
        attrs["num_outputs"] = count
    elif split is None:
        count = 2
    else:
        count = len(split)
        if opset >= 13:
            inits["s"] = _ints(*split)
            inputs.append("s")
        else:
            attrs["split"] = split
    outs = [f"y{i}" for i in range(count)]
    nodes = [node("Split", inputs, outs, **attrs), *[node("Relu", [o], [f"r{o}"]) for o in outs]]
    model = make_model(nodes, {"x": shape}, [f"r{o}" for o in outs], inits, opset=opset)
    check(model, "split")
    assert "TRANSPOSE" not in convert(model).op_counts


# --- Resize / Upsample
RESIZE = [
    # (mode, coordinate_transformation_mode, nearest_mode, in hw, out hw, by scales)
    ("nearest", "asymmetric", "floor", (4, 5), (8, 10), True),
    ("nearest", "half_pixel", "round_prefer_floor", (4, 5), (8, 10), True),
    ("nearest", "half_pixel", "round_prefer_ceil", (4, 5), (12, 15), False),
    ("nearest", "pytorch_half_pixel", "floor", (6, 6), (3, 2), False),
    ("nearest", "align_corners", "round_prefer_ceil", (4, 5), (7, 9), False),
    ("nearest", "tf_half_pixel_for_nn", "floor", (4, 5), (8, 7), False),
    ("nearest", "asymmetric", "ceil", (5, 4), (8, 10), False),  # no TFLite flags: GATHERs
    ("linear", "half_pixel", None, (4, 5), (8, 10), True),
    ("linear", "half_pixel", None, (8, 8), (3, 5), False),
    ("linear", "pytorch_half_pixel", None, (4, 5), (9, 7), False),
    ("linear", "align_corners", None, (4, 5), (7, 9), False),
    ("linear", "asymmetric", None, (4, 6), (8, 9), True),
]


@pytest.mark.parametrize(("mode", "transform", "nearest", "in_hw", "out_hw", "by_scales"), RESIZE)
def test_resize(mode, transform, nearest, in_hw, out_hw, by_scales):
    attrs = {"mode": mode, "coordinate_transformation_mode": transform}
    if nearest:
        attrs["nearest_mode"] = nearest
    if by_scales:
        inits = {"scales": np.array([1, 1, out_hw[0] / in_hw[0], out_hw[1] / in_hw[1]], np.float32)}
        inputs = ["x", "", "scales"]
    else:
        inits, inputs = {"sizes": _ints(1, 3, *out_hw)}, ["x", "", "", "sizes"]
    model = make_model([node("Resize", inputs, ["y"], **attrs)], {"x": [1, 3, *in_hw]}, ["y"], inits)
    check(model, "resize")
    ops = convert(model).op_counts
    assert "TRANSPOSE" not in ops
    if mode == "linear":
        assert ops == {"RESIZE_BILINEAR": 1}
    else:  # pytorch_half_pixel floor at 1/2 and 1/3, asymmetric ceil: no TFLite flags give these rows
        gathers = (nearest, transform) in (("ceil", "asymmetric"), ("floor", "pytorch_half_pixel"))
        assert ops == ({"GATHER": 2} if gathers else {"RESIZE_NEAREST_NEIGHBOR": 1})


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_of_axes_by_sizes_and_by_an_uneven_scale(mode):
    """Opset 18 ``axes`` with two sizes; a scale of 0.6 (5 → 3 rows) that ONNX uses as given, not as 3/5."""
    by_axes = make_model(
        [node("Resize", ["x", "", "", "sizes"], ["y"], mode=mode, axes=[2, 3])],
        {"x": [1, 2, 4, 5]},
        ["y"],
        {"sizes": _ints(7, 3)},
        opset=18,
    )
    check(by_axes, "resize")
    if mode == "nearest":
        inits = {"scales": np.array([1, 1, 0.6, 1.5], np.float32)}
        uneven = make_model([node("Resize", ["x", "", "scales"], ["y"], mode=mode)], {"x": [1, 2, 5, 5]}, ["y"], inits)
        check(uneven, "resize")


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("opset", [7, 9, 10])
def test_upsample_and_resize_10(mode, opset):
    """Upsample (scales as an attribute at opset 7, an input at 9) and Resize-10: asymmetric coordinates."""
    scales = [1.0, 1.0, 2.0, 3.0]
    if opset == 7:
        nodes, inits = [node("Upsample", ["x"], ["y"], mode=mode, scales=scales)], {}
    else:
        op = "Upsample" if opset == 9 else "Resize"
        nodes, inits = [node(op, ["x", "scales"], ["y"], mode=mode)], {"scales": np.array(scales, np.float32)}
    check(make_model(nodes, {"x": [1, 2, 3, 4]}, ["y"], inits, opset=opset), "resize")


@pytest.mark.parametrize(
    ("attrs", "scales", "message"),
    [
        ({"mode": "cubic"}, [1, 1, 2, 2], "mode 'cubic'"),
        ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, [1, 1, 2, 2], "tf_crop"),
        ({"mode": "linear"}, [1, 1, 1.5, 1.5], "differ from output/input sizes"),
        ({"mode": "linear"}, [1, 2, 2, 2], "only H and W"),
    ],
)
def test_resize_rejections_say_why(attrs, scales, message):
    inits = {"scales": np.array(scales, np.float32)}
    model = make_model([node("Resize", ["x", "", "scales"], ["y"], **attrs)], {"x": [1, 2, 5, 5]}, ["y"], inits)
    with pytest.raises(UsageError, match=message):
        convert(model)


# --- ConvTranspose
CONV_TRANSPOSE = [
    # (c_in, c_out, k, stride, attrs, hw, groups)
    (4, 3, 3, 2, {"pads": [1, 1, 1, 1], "output_padding": [1, 1]}, (5, 6), 1),  # SAME
    (4, 3, 3, 2, {"pads": [1, 1, 1, 1]}, (5, 5), 1),  # cropped
    (3, 5, 2, 2, {}, (4, 3), 1),  # VALID, the usual 2x upsampler
    (4, 2, 4, 2, {"pads": [1, 1, 1, 1]}, (4, 4), 1),
    (3, 4, 3, 1, {"pads": [0, 1, 2, 1]}, (5, 5), 1),
    (4, 4, 3, 2, {"output_shape": [10, 9], "auto_pad": "SAME_UPPER"}, (5, 5), 1),
    (2, 3, 3, 3, {"output_padding": [2, 1]}, (3, 4), 1),
    (4, 4, 4, 2, {"pads": [1, 1, 1, 1]}, (4, 4), 4),  # depthwise
    (4, 6, 3, 2, {"pads": [1, 1, 1, 1], "output_padding": [1, 1]}, (3, 3), 2),
]


@pytest.mark.parametrize(("c_in", "c_out", "k", "stride", "attrs", "hw", "groups"), CONV_TRANSPOSE)
@pytest.mark.parametrize(("bias", "relu"), [(True, False), (False, False), (True, True)])
def test_conv_transpose(c_in, c_out, k, stride, attrs, hw, groups, bias, relu):
    inits = {"w": _weights(c_in, c_out // groups, k, k)}
    inputs = ["x", "w"]
    if bias:
        inits["b"] = _weights(c_out)
        inputs.append("b")
    attrs = {"kernel_shape": [k, k], "strides": [stride, stride], "group": groups, **attrs}
    nodes = [node("ConvTranspose", inputs, ["y"], **attrs), *([node("Relu", ["y"], ["r"])] if relu else [])]
    model = make_model(nodes, {"x": [1, c_in, *hw]}, ["r" if relu else "y"], inits)
    check(model, "conv-transpose", scale=2.0)
    ops = convert(model).op_counts
    assert "TRANSPOSE" not in ops and "RELU" not in ops


# --- Reshape / Transpose: layouts carried through, few TRANSPOSEs
@pytest.mark.parametrize(("groups", "c", "hw"), [(2, 8, (4, 5)), (4, 8, (3, 3)), (2, 6, (1, 1))])
def test_channel_shuffle_costs_one_transpose(groups, c, hw):
    """ShuffleNetV2's block: Concat → Reshape → Transpose → Reshape → Split, on NHWC values."""
    h, w = hw
    half = c // 2
    inits = {
        "w": _weights(half, half, 1, 1),
        "s5": _ints(1, groups, c // groups, h, w),
        "s4": _ints(1, c, h, w),
        "split": _ints(half, half),
    }
    nodes = [
        node("Conv", ["x", "w"], ["branch"], kernel_shape=[1, 1]),
        node("Concat", ["x", "branch"], ["cat"], axis=1),
        node("Reshape", ["cat", "s5"], ["v"]),
        node("Transpose", ["v"], ["t"], perm=[0, 2, 1, 3, 4]),
        node("Reshape", ["t", "s4"], ["shuffled"]),
        node("Split", ["shuffled", "split"], ["a", "b"], axis=1),
        node("Relu", ["b"], ["rb"]),
        node("Add", ["a", "rb"], ["y"]),
    ]
    model = make_model(nodes, {"x": [1, half, h, w]}, ["y"], inits)
    check(model, "reshape-transpose")
    ops = convert(model).op_counts
    assert ops["TRANSPOSE"] == 1, ops  # the shuffle itself: [1, H, W, g, C/g] → [1, H, W, C/g, g]


@pytest.mark.parametrize(
    ("shape", "target", "perm"),
    [
        ([1, 6, 4, 5], [1, 6, 20], [0, 2, 1]),  # tokens of a feature map: [B, HW, C]
        ([1, 8, 3, 3], [1, 2, 4, 9], [0, 1, 3, 2]),  # heads: [B, h, N, d]
        ([2, 12, 5], [2, 12, 5], [2, 0, 1]),
        ([1, 6, 4, 5], [1, 2, 3, 4, 5], [0, 3, 4, 1, 2]),
    ],
)
def test_reshape_then_transpose(shape, target, perm):
    nodes = [node("Reshape", ["x", "s"], ["r"]), node("Transpose", ["r"], ["t"], perm=perm), node("Relu", ["t"], ["y"])]
    check(make_model(nodes, {"x": shape}, ["y"], {"s": _ints(*target)}), "reshape-transpose")


def test_tokens_back_to_a_map_need_no_transpose():
    """[B, HW, C] tokens (NHWC order already) → Transpose → Reshape to [B, C, H, W] → Conv: no TRANSPOSE at all."""
    nodes = [
        node("Transpose", ["tokens"], ["t"], perm=[0, 2, 1]),
        node("Reshape", ["t", "s"], ["m"]),
        node("Conv", ["m", "w"], ["y"], kernel_shape=[1, 1]),
    ]
    inits = {"s": _ints(1, 6, 4, 5), "w": _weights(3, 6, 1, 1)}
    model = make_model(nodes, {"tokens": [1, 20, 6]}, ["y"], inits)
    check(model, "reshape-transpose")
    assert convert(model).op_counts == {"RESHAPE": 1, "CONV_2D": 1}


def test_a_transposed_graph_output_is_written_in_its_own_layout():
    nodes = [node("Transpose", ["x"], ["y"], perm=[0, 3, 1, 2])]
    check(make_model(nodes, {"x": [1, 3, 4, 5]}, ["y"]), "reshape-transpose")
    check(make_model(nodes, {"x": [1, 3, 4, 5]}, ["y"]), "reshape-transpose", nchw_io=True)


# --- MatMul / Einsum
@pytest.mark.parametrize(
    ("a", "b", "const_b"),
    [
        ([2, 5, 6], [2, 6, 3], False),
        ([1, 2, 5, 6], [1, 2, 6, 4], False),
        ([2, 3, 5, 6], [6, 4], False),  # rank 4 × rank 2
        ([3, 5, 6], [1, 3, 6, 4], False),  # rank 3 × rank 4
        ([2, 1, 5, 6], [1, 3, 6, 4], False),  # batch axes broadcast both ways
        ([2, 5, 6], [2, 6, 3], True),  # constant batched weights
        ([1, 4, 6], [1, 6, 7], True),  # constant weights of one matrix: FULLY_CONNECTED
    ],
)
def test_batched_matmul(a, b, const_b):
    if const_b:
        model = make_model([node("MatMul", ["a", "w"], ["y"])], {"a": a}, ["y"], {"w": _weights(*b)})
    else:
        model = make_model([node("MatMul", ["a", "b"], ["y"])], {"a": a, "b": b}, ["y"])
    check(model, "matmul", nchw_io=True)  # 4-D inputs and outputs in ONNX order: no TRANSPOSE around
    ops = convert(model, nchw_io=True).op_counts
    assert "TRANSPOSE" not in ops
    assert ("FULLY_CONNECTED" in ops) == (const_b and b[0] == 1)


def _attention(heads: int, tokens: int, dim: int, with_einsum: bool, cut: str = "Split") -> tuple:
    """timm's attention core: qkv → [3, B, heads, N, d], softmax(q·kᵀ·scale)·v → [B, N, C]; q, k and v cut by
    one Split or (as the dynamo exporter writes ViT's) three Slices."""
    c = heads * dim
    inits = {
        "wqkv": _weights(c, 3 * c),
        "s5": _ints(1, tokens, 3, heads, dim),
        "split": _ints(1, 1, 1),
        "scale": np.array(dim**-0.5, np.float32),
        "s3": _ints(1, tokens, c),
        "wproj": _weights(c, c),
        "sq": _ints(0),
        **{f"i{i}": _ints(i) for i in range(4)},
    }
    nodes = [
        node("MatMul", ["x", "wqkv"], ["qkv"]),
        node("Reshape", ["qkv", "s5"], ["qkv5"]),
        node("Transpose", ["qkv5"], ["qkvt"], perm=[2, 0, 3, 1, 4]),
        *(
            [node("Split", ["qkvt", "split"], ["q5", "k5", "v5"], axis=0)]
            if cut == "Split"
            else [node("Slice", ["qkvt", f"i{i}", f"i{i + 1}", "sq"], [f"{p}5"]) for i, p in enumerate("qkv")]
        ),
        node("Squeeze", ["q5", "sq"], ["q"]),
        node("Squeeze", ["k5", "sq"], ["k"]),
        node("Squeeze", ["v5", "sq"], ["v"]),
        node("Mul", ["q", "scale"], ["qs"]),
    ]
    if with_einsum:
        nodes += [
            node("Einsum", ["qs", "k"], ["scores"], equation="bhid,bhjd->bhij"),
            node("Softmax", ["scores"], ["attn"], axis=-1),
            node("Einsum", ["attn", "v"], ["o"], equation="bhij,bhjd->bhid"),
        ]
    else:
        nodes += [
            node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
            node("MatMul", ["qs", "kt"], ["scores"]),
            node("Softmax", ["scores"], ["attn"], axis=-1),
            node("MatMul", ["attn", "v"], ["o"]),
        ]
    nodes += [
        node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
        node("Reshape", ["ot", "s3"], ["merged"]),
        node("MatMul", ["merged", "wproj"], ["y"]),
    ]
    return make_model(nodes, {"x": [1, tokens, c]}, ["y"], inits)


@pytest.mark.parametrize(("with_einsum", "cut"), [(False, "Split"), (True, "Split"), (False, "Slice")])
@pytest.mark.parametrize(("heads", "tokens", "dim"), [(2, 5, 4), (3, 7, 2)])
def test_attention_block(heads, tokens, dim, with_einsum, cut):
    model = _attention(heads, tokens, dim, with_einsum, cut)
    check(model, "attention", scale=2.0)
    ops = convert(model).op_counts
    # qkv to [3, B, heads, N, d] before the split, and the heads' outputs back to [B, N, heads, d]
    assert ops["BATCH_MATMUL"] == 2 and ops["TRANSPOSE"] == 2, ops


def test_levit_attention_moves_qkv_once_before_its_split():
    """LeViT: qkv [B, N, C] → [B, N, heads, 2·kd + d] → Split on the last axis → q, v permuted to [B, heads, N, ·]
    and k to [B, heads, kd, N]: one TRANSPOSE of qkv puts all three where BATCH_MATMUL reads them."""
    heads, tokens, kd, d = 2, 6, 3, 4
    width = heads * (2 * kd + d)
    inits = {"w": _weights(8, width), "s4": _ints(1, tokens, heads, 2 * kd + d), "split": _ints(kd, kd, d)}
    nodes = [
        node("MatMul", ["x", "w"], ["qkv"]),
        node("Reshape", ["qkv", "s4"], ["view"]),
        node("Split", ["view", "split"], ["q0", "k0", "v0"], axis=3),
        node("Transpose", ["q0"], ["q"], perm=[0, 2, 1, 3]),
        node("Transpose", ["k0"], ["k"], perm=[0, 2, 3, 1]),
        node("Transpose", ["v0"], ["v"], perm=[0, 2, 1, 3]),
        node("MatMul", ["q", "k"], ["scores"]),
        node("Softmax", ["scores"], ["attn"], axis=-1),
        node("MatMul", ["attn", "v"], ["y"]),
    ]
    model = make_model(nodes, {"x": [1, tokens, 8]}, ["y"], inits)
    check(model, "attention", nchw_io=True)
    assert convert(model, nchw_io=True).op_counts["TRANSPOSE"] == 1


@pytest.mark.parametrize(
    ("equation", "a", "b"),
    [
        ("bij,bjk->bik", [2, 3, 4], [2, 4, 5]),
        ("bhid,bhjd->bhij", [1, 2, 3, 4], [1, 2, 5, 4]),
        ("bhij,bhjd->bhid", [1, 2, 3, 5], [1, 2, 5, 4]),
        ("bnc,bmc->bnm", [2, 3, 4], [2, 5, 4]),
        ("ikb,bkj->bji", [3, 4, 2], [2, 4, 5]),
    ],
)
def test_einsum(equation, a, b):
    check(make_model([node("Einsum", ["a", "b"], ["y"], equation=equation)], {"a": a, "b": b}, ["y"]), "einsum")


@pytest.mark.parametrize("equation", ["bij,bjk->bk", "ij,jk,kl->il", "...ij,...jk->...ik", "bii,bij->bj"])
def test_einsum_rejections_name_the_equation(equation):
    terms = equation.split("->")[0].split(",")
    shapes = {f"in{n}": [2] * len(t.replace("...", "x")) for n, t in enumerate(terms)}
    model = make_model([node("Einsum", list(shapes), ["y"], equation=equation)], shapes, ["y"])
    with pytest.raises(UsageError, match=f"equation '{equation}'".replace(".", r"\.")):
        convert(model)


# --- Tile / Expand
@pytest.mark.parametrize(("shape", "repeats"), [([1, 3, 2, 2], [1, 2, 3, 1]), ([2, 3], [3, 1]), ([1, 2, 3], [2, 1, 2])])
def test_tile(shape, repeats):
    nodes = [node("Relu", ["x"], ["r"]), node("Tile", ["r", "n"], ["y"])]
    check(make_model(nodes, {"x": shape}, ["y"], {"n": _ints(*repeats)}), "tile-expand")


@pytest.mark.parametrize(
    ("shape", "target"),
    [([1, 3, 1, 1], [1, 3, 4, 5]), ([1, 1, 4, 1], [2, 3, 4, 5]), ([3, 1], [2, 3, 4]), ([4], [3, 4])],
)
def test_expand(shape, target):
    nodes = [node("Relu", ["x"], ["r"]), node("Expand", ["r", "s"], ["y"])]
    check(make_model(nodes, {"x": shape}, ["y"], {"s": _ints(*target)}), "tile-expand")


# --- Pad
@pytest.mark.parametrize(
    ("mode", "pads", "shape"),
    [
        ("edge", [0, 0, 1, 2, 0, 0, 2, 1], [1, 3, 4, 5]),
        ("edge", [0, 1, 0, 0, 0, 2, 0, 0], [1, 3, 4, 5]),  # channels
        ("wrap", [0, 0, 2, 1, 0, 0, 1, 3], [1, 2, 4, 5]),
        ("reflect", [0, 0, 1, 1, 0, 0, 1, 1], [1, 2, 4, 5]),
        ("wrap", [0, 0, 5, 0, 0, 0, 0, 6], [1, 2, 3, 4]),  # wider than the input
        ("edge", [1, 0, 2, 1], [3, 4]),
        ("constant", [0, 0, -1, 2, 0, 0, 1, -2], [1, 2, 4, 5]),  # negative pads crop
        ("constant", [0, -1, 0, 0, 0, 0, -1, -1], [1, 3, 4, 5]),  # a crop only: one SLICE
        ("edge", [0, 0, -1, 2, 0, 0, 2, -1], [1, 2, 4, 5]),
        ("reflect", [0, 0, 1, -1, 0, 0, -2, 1], [1, 2, 5, 5]),
    ],
)
def test_pad_modes(mode, pads, shape):
    opset = 19 if mode == "wrap" else 18
    nodes = [node("Pad", ["x", "p"], ["y"], mode=mode)]
    model = make_model(nodes, {"x": shape}, ["y"], {"p": _ints(*pads)}, opset=opset)
    check(model, "pad")
    if max(pads) <= 0:
        assert convert(model).op_counts == {"SLICE": 1}


# --- DepthToSpace / SpaceToDepth
@pytest.mark.parametrize(
    ("mode", "block", "shape"), [("DCR", 2, [1, 8, 3, 4]), ("CRD", 2, [1, 12, 2, 3]), ("CRD", 3, [1, 9, 2, 2])]
)
def test_depth_to_space(mode, block, shape):
    model = make_model([node("DepthToSpace", ["x"], ["y"], blocksize=block, mode=mode)], {"x": shape}, ["y"])
    check(model, "depth-space")
    assert "TRANSPOSE" not in convert(model).op_counts


@pytest.mark.parametrize(("block", "shape"), [(2, [1, 3, 4, 6]), (3, [1, 2, 6, 3])])
def test_space_to_depth(block, shape):
    model = make_model([node("SpaceToDepth", ["x"], ["y"], blocksize=block)], {"x": shape}, ["y"])
    check(model, "depth-space")


# --- real networks
def _network(name: str):
    import torch
    import torch.nn.functional as F
    import torchvision
    from torch import nn

    if name == "shufflenet_v2_x0_5":
        return torchvision.models.shufflenet_v2_x0_5(weights=None, num_classes=10)

    class Decoder(nn.Module):
        """What exporters make of PyTorch's upsampling layers: ConvTranspose2d (plain, cropped, depthwise),
        PixelShuffle/Unshuffle, interpolate (nearest, nearest-exact, bilinear align_corners), reflect and
        replicate pads."""

        def __init__(self) -> None:
            super().__init__()
            self.down = nn.Conv2d(3, 8, 3, 2, 1)
            self.up = nn.ConvTranspose2d(8, 8, 2, 2)
            self.up_cropped = nn.Sequential(nn.ConvTranspose2d(8, 4, 3, 2, 1, output_padding=1), nn.BatchNorm2d(4))
            self.up_depthwise = nn.ConvTranspose2d(4, 4, 4, 2, 1, groups=4)
            self.expand = nn.Conv2d(4, 16, 3, 1, 1)
            self.shuffle, self.unshuffle = nn.PixelShuffle(2), nn.PixelUnshuffle(2)

        def forward(self, x):
            a = F.relu(self.down(x))
            b, c = F.relu(self.up(a)), F.relu(self.up_cropped(a))
            d = self.unshuffle(self.shuffle(self.expand(c)))
            e = F.interpolate(F.interpolate(d, scale_factor=0.5, mode="nearest"), size=(40, 40), mode="bilinear")
            f = F.interpolate(e, size=(64, 64), mode="bilinear", align_corners=True)
            g = F.pad(f, (1, 2, 1, 2), mode="reflect") + F.pad(f, (1, 2, 1, 2), mode="replicate")
            h = F.interpolate(g, scale_factor=2, mode="nearest-exact")
            return h.mean((2, 3)) + self.up_depthwise(c).mean((1, 2, 3)).unsqueeze(1) + b.mean((1, 2, 3)).unsqueeze(1)

    if name == "decoder":
        return Decoder()

    class Segmentation(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)

        def forward(self, x):
            return self.net(x)["out"]

    return Segmentation()


# network -> (ONNX op types it must contain, TFLite op counts it must lower to)
REAL = {
    # one TRANSPOSE per channel shuffle (the shuffle itself), none anywhere else
    "shufflenet_v2_x0_5": ({"Split", "Transpose", "Reshape"}, {"TRANSPOSE": 16, "SPLIT": 13}),
    "lraspp_mobilenet_v3_large": ({"Resize"}, {"RESIZE_BILINEAR": 2}),
    # PixelUnshuffle is a Reshape-Transpose-Reshape of 6-D values (one TRANSPOSE); nearest-exact a GatherND
    "decoder": (
        {"ConvTranspose", "DepthToSpace", "Resize", "Pad", "GatherND"},
        {"TRANSPOSE_CONV": 6, "RESIZE_BILINEAR": 2, "RESIZE_NEAREST_NEIGHBOR": 1, "TRANSPOSE": 1},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REAL))
def test_real_network_matches_onnx_runtime(tmp_path, name):
    """Random weights, BatchNorm statistics from random data, 64×64, exported and simplified as `edgecnn export`
    does, lowered to fp32 TFLite and compared with ONNX Runtime."""
    import onnx
    import torch

    from edgecnn.pipeline.onnx_export import export_onnx
    from edgecnn.pipeline.simplify import simplify
    from tests.lowering.tflite_check import run_ort

    torch.manual_seed(0)
    module = _network(name)
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.momentum = None  # a cumulative average: outputs that depend on the input
    module.train()
    with torch.no_grad():
        for _ in range(2):
            module(torch.randn(8, 3, 64, 64))
    raw, path = tmp_path / "raw.onnx", tmp_path / f"{name}.onnx"
    export_onnx(module.eval(), (1, 3, 64, 64), raw)
    simplify(raw, path)
    model = onnx.load(str(path))
    op_types, counts = REAL[name]
    assert op_types <= {n.op_type for n in model.graph.node}
    inputs = [np.random.default_rng(seed).standard_normal((1, 3, 64, 64)).astype(np.float32) for seed in (0, 1)]
    outputs = [run_ort(model, {"input": x})["logits"] for x in inputs]
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-2 * float(np.ptp(outputs[0])) > 0, "degenerate outputs"
    for x in inputs:
        check(model, f"zoo:{name}", feeds={"input": x})
    ops = convert(model).op_counts
    assert {op: ops.get(op, 0) for op in counts} == counts, ops
    assert "TRANSPOSE" in counts or "TRANSPOSE" not in ops, ops


def test_transposed_and_reshaped_constants_are_folded():
    """MatMul(x, Reshape(Transpose(W))): W stays a constant, so the product is one FULLY_CONNECTED."""
    nodes = [
        node("Transpose", ["w"], ["wt"], perm=[1, 0]),
        node("Reshape", ["wt", "s"], ["w2"]),
        node("MatMul", ["x", "w2"], ["y"]),
    ]
    model = make_model(nodes, {"x": [2, 3, 6]}, ["y"], {"w": _weights(5, 6), "s": _ints(6, 5)})
    check(model, "reshape-transpose")
    assert convert(model).op_counts == {"FULLY_CONNECTED": 1}


def test_concat_of_relabelled_values_stays_in_their_layout():
    """Swin's roll: Slices of a relabelled [B, H, W, C] map concatenated back, a Transpose to NCHW: no TRANSPOSE."""
    nodes = [
        node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        node("Slice", ["t", "b0", "e0", "ax"], ["top"]),
        node("Slice", ["t", "b1", "e1", "ax"], ["bottom"]),
        node("Concat", ["bottom", "top"], ["rolled"], axis=1),
        node("Transpose", ["rolled"], ["back"], perm=[0, 3, 1, 2]),
        node("Relu", ["back"], ["y"]),
    ]
    inits = {"b0": _ints(0), "e0": _ints(2), "b1": _ints(2), "e1": _ints(5), "ax": _ints(1)}
    model = make_model(nodes, {"x": [1, 3, 5, 4]}, ["y"], inits)
    check(model, "reshape-transpose")
    assert "TRANSPOSE" not in convert(model).op_counts


def test_layout_helpers_for_reshapes():
    from edgecnn.lowering.tflite.layout import NHWC, reshape_groups, reshape_source_layout, reshaped_layout

    assert reshape_groups([1, 6, 4, 5], [1, 2, 3, 4, 5]) == [([1], [1, 2]), ([2], [3]), ([3], [4])]
    assert reshape_groups([6, 4], [4, 6]) == [([0, 1], [0, 1])]
    # ShuffleNet: the NHWC map splits its channels in place, [1, H, W, g, C/g]
    assert reshaped_layout([1, 6, 4, 5], NHWC, [1, 2, 3, 4, 5]) == (0, 3, 4, 1, 2)
    # merging C with H is not a RESHAPE of NHWC: the input must go to NCHW first
    assert reshaped_layout([1, 6, 4, 5], NHWC, [1, 120]) is None
    assert reshape_source_layout([1, 6, 4, 5], [1, 120], (0, 1)) == (0, 1, 2, 3)
    # size-1 axes go anywhere: [1, C, 1, 1] → [1, C] and back need no TRANSPOSE
    assert reshaped_layout([1, 6, 1, 1], NHWC, [1, 6]) == (0, 1)
    assert reshaped_layout([2, 6], (0, 1), [2, 6, 1, 1]) == NHWC


# --- GatherND
@pytest.mark.parametrize(
    ("shape", "indices"),
    [
        ([1, 3, 4, 5], [[0, 2], [0, -1], [0, 0]]),  # whole [H, W] planes of channels 2, 2 and 0
        ([4, 5, 3], [[[1, 2], [3, 4]], [[0, 0], [-1, -2]]]),  # single rows
        ([4, 5, 3], [[1, 2, 0], [3, 4, 2]]),  # single elements
    ],
)
def test_gather_nd(shape, indices):
    nodes = [node("Relu", ["x"], ["r"]), node("GatherND", ["r", "i"], ["y"])]
    check(make_model(nodes, {"x": shape}, ["y"], {"i": np.array(indices, np.int64)}), "gather-nd")


def test_a_transpose_read_by_several_readers_that_need_nhwc_is_moved_once():
    nodes = [node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]), node("Relu", ["t"], ["y"])]
    nodes.append(node("Sigmoid", ["t"], ["z"]))
    model = make_model(nodes, {"x": [1, 3, 4, 5]}, ["y", "z"])
    check(model, "reshape-transpose")
    assert convert(model).op_counts == {"TRANSPOSE": 1, "RELU": 1, "LOGISTIC": 1}
