"""Resize / Upsample of H and W → RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR, or GATHERs for nearest maps TFLite lacks.

TFLite's resize ops know three coordinate mappings (align_corners, half_pixel_centers, neither),
each computed from the sizes. For nearest the lowering computes ONNX's source index of every output
row and column and picks the TFLite flags that give the same indices (else it GATHERs them); for
linear it maps each ``coordinate_transformation_mode`` to its flags and rejects the rest.
"""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute, optional_input
from edgecnn.lowering.tflite.layout import NHWC
from edgecnn.lowering.tflite.registry import register

FLAGS = ((False, False), (False, True), (True, False))  # (align_corners, half_pixel_centers)
# Linear: ONNX coordinate_transformation_mode -> the TFLite flags that compute the same source coordinates.
LINEAR_FLAGS = {"asymmetric": (False, False), "half_pixel": (False, True), "pytorch_half_pixel": (False, True)}
LINEAR_FLAGS["align_corners"] = (True, False)


def _scales(node: onnx.NodeProto, ctx: LoweringContext) -> np.ndarray | None:
    """The constant scales of every axis, or None when the node gives sizes (scale = out / in then)."""
    rank = ctx.rank(node.input[0])
    if node.op_type == "Upsample" and ctx.opset < 9:
        values = attribute(node, "scales")
    else:
        index = 1 if node.op_type == "Upsample" or ctx.opset < 11 else 2
        name = optional_input(node, index)
        if name is None:
            return None
        if not ctx.is_constant(name):
            raise ctx.reject(node, "the scales are not a constant")
        if ctx.constant(name).size == 0:
            return None
        values = ctx.constant(name).reshape(-1).tolist()
    axes = [int(a) % rank for a in attribute(node, "axes", list(range(rank)))]
    scales = np.ones(rank, np.float32)
    scales[axes] = np.asarray(values, np.float32)
    return scales


def onnx_source(mode: str, out: int, size: int, scale: np.float32) -> np.ndarray:
    """ONNX's source coordinate of each of ``out`` outputs along an axis of ``size`` (float32, as ONNX Runtime)."""
    x = np.arange(out, dtype=np.float32)
    half = np.float32(0.5)
    if mode == "half_pixel":
        return (x + half) / scale - half
    if mode == "pytorch_half_pixel":
        return (x + half) / scale - half if out > 1 else np.zeros(out, np.float32)
    if mode == "align_corners":
        return x * np.float32(size - 1) / np.float32(out - 1) if out > 1 else np.zeros(out, np.float32)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + half) / scale
    raise ValueError(mode)


def onnx_nearest(mode: str, nearest_mode: str, out: int, size: int, scale: np.float32) -> np.ndarray:
    """ONNX's nearest source index of each output along one axis."""
    x = onnx_source(mode, out, size, scale)
    if nearest_mode == "round_prefer_floor":
        index = np.ceil(x - np.float32(0.5))
    elif nearest_mode == "round_prefer_ceil":
        index = np.floor(x + np.float32(0.5))
    elif nearest_mode == "floor":
        index = np.floor(x)
    elif nearest_mode == "ceil":
        index = np.ceil(x)
    else:  # "simple": Upsample and Resize-10 (ONNX Runtime rounds up when downsampling)
        index = np.ceil(x) if scale < 1 else np.floor(x)
    return np.clip(index, 0, size - 1).astype(np.int64)


def tflite_nearest(align_corners: bool, half_pixel: bool, out: int, size: int) -> np.ndarray:
    """RESIZE_NEAREST_NEIGHBOR's source index of each output along one axis (its reference kernel)."""
    if align_corners and out > 1:
        scale = np.float32(size - 1) / np.float32(out - 1)
    else:
        scale = np.float32(size) / np.float32(out)
    value = (np.arange(out, dtype=np.float32) + np.float32(0.5 if half_pixel else 0.0)) * scale
    index = np.where(np.abs(value) % 1 == 0.5, np.sign(value) * np.ceil(np.abs(value)), np.round(value))
    index = np.minimum(index if align_corners else np.floor(value), size - 1)
    return np.maximum(index, 0).astype(np.int64) if half_pixel else index.astype(np.int64)


def _size_tensor(ctx: LoweringContext, name: str, out_hw: tuple[int, int]) -> int:
    return ctx.const(f"{name}/size", np.asarray(out_hw, np.int32))


def _nearest(node: onnx.NodeProto, ctx: LoweringContext, mode: str, scales: np.ndarray) -> None:
    """RESIZE_NEAREST_NEIGHBOR with the flags that pick ONNX's source rows and columns, else GATHERs of them."""
    x, out_name = node.input[0], node.output[0]
    in_hw, out_hw = ctx.shape(x)[2:], ctx.shape(out_name)[2:]
    nearest_mode = "simple" if ctx.opset < 11 else attribute(node, "nearest_mode", "round_prefer_floor")
    wanted = [onnx_nearest(mode, nearest_mode, out_hw[a], in_hw[a], scales[2 + a]) for a in range(2)]
    source = ctx.tensor_in(x, NHWC)
    for align, half in FLAGS:
        got = [tflite_nearest(align, half, out_hw[a], in_hw[a]) for a in range(2)]
        if all(np.array_equal(g, w) for g, w in zip(got, wanted, strict=True)):
            options = schema.ResizeNearestNeighborOptionsT(alignCorners=align, halfPixelCenters=half)
            inputs = [source, _size_tensor(ctx, out_name, out_hw)]
            ctx.op(OP.RESIZE_NEAREST_NEIGHBOR, inputs, [ctx.declare(out_name)], options, 3 if align or half else 1)
            return
    for a in range(2):  # no TFLite flags give these indices: gather rows, then columns
        if a == 1 or not np.array_equal(wanted[a], np.arange(in_hw[a])):
            last = a == 1
            n, _, w, c = ctx.builder.shape(source)
            shape = [n, out_hw[0], w if not last else out_hw[1], c]
            out = ctx.declare(out_name) if last else ctx.temp(f"{out_name}/rows", shape)
            indices = ctx.const(f"{out_name}/index{a}", wanted[a].astype(np.int32))
            ctx.op(OP.GATHER, [source, indices], [out], schema.GatherOptionsT(axis=1 + a, batchDims=0))
            source = out


def _linear(node: onnx.NodeProto, ctx: LoweringContext, mode: str, scales: np.ndarray, given: bool) -> None:
    """RESIZE_BILINEAR with the flags of ``mode``; rejects what its sizes-derived coordinates cannot express."""
    x, out_name = node.input[0], node.output[0]
    in_hw, out_hw = ctx.shape(x)[2:], ctx.shape(out_name)[2:]
    if mode not in LINEAR_FLAGS:
        raise ctx.reject(node, f"linear coordinate_transformation_mode '{mode}' has no TFLite equivalent")
    if mode == "pytorch_half_pixel" and any(o == 1 and i > 1 for o, i in zip(out_hw, in_hw, strict=True)):
        raise ctx.reject(node, "pytorch_half_pixel to an output of size 1 has no TFLite equivalent")
    ratios = [out_hw[a] / in_hw[a] for a in range(2)]
    if mode != "align_corners" and given and not np.allclose(scales[2:], ratios, rtol=1e-6):
        given_hw = scales[2:].tolist()
        raise ctx.reject(node, f"scales {given_hw} differ from output/input sizes {ratios} (TFLite uses those)")
    if attribute(node, "antialias", 0) and min(ratios) < 1:
        raise ctx.reject(node, "antialiased downsampling has no TFLite op")
    align, half = LINEAR_FLAGS[mode]
    options = schema.ResizeBilinearOptionsT(alignCorners=align, halfPixelCenters=half)
    inputs = [ctx.tensor_in(x, NHWC), _size_tensor(ctx, out_name, out_hw)]
    ctx.op(OP.RESIZE_BILINEAR, inputs, [ctx.declare(out_name)], options, 3 if half else 1)


@register("Resize", "Upsample")
def lower_resize(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Nearest or linear resize of the H and W axes of a 4-D value (scales or sizes constant)."""
    x, out_name = node.input[0], node.output[0]
    in_shape, out_shape = ctx.shape(x), ctx.shape(out_name)
    if len(in_shape) != 4 or in_shape[:2] != out_shape[:2]:
        shapes = f"{list(in_shape)} → {list(out_shape)}"
        raise ctx.reject(node, f"only H and W of a 4-D value are resized by TFLite ({shapes})")
    mode = attribute(node, "mode", "nearest")
    legacy = node.op_type == "Upsample" or ctx.opset < 11
    transform = "asymmetric" if legacy else attribute(node, "coordinate_transformation_mode", "half_pixel")
    scales = _scales(node, ctx)
    given = scales is not None
    if scales is None:
        scales = np.asarray([o / i for o, i in zip(out_shape, in_shape, strict=True)], np.float32)
    if mode == "nearest":
        if transform not in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"):
            raise ctx.reject(node, f"coordinate_transformation_mode '{transform}' has no TFLite equivalent")
        _nearest(node, ctx, transform, scales)
    elif mode in ("linear", "bilinear"):
        _linear(node, ctx, transform, scales, given)
    else:
        raise ctx.reject(node, f"mode '{mode}' has no TFLite op (nearest and linear are lowered)")
