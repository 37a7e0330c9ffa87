"""Window attributes (kernel, strides, dilations, pads), explicit padding and the DEPTHWISE_CONV_2D op, shared by Conv,
the pools and BatchNormalization."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute
from edgecnn.lowering.tflite.padding import tf_same_pads


@dataclass(frozen=True)
class Window:
    """A 2-D sliding window; ``pads`` in ONNX order (top, left, bottom, right)."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]

    def extent(self, axis: int) -> int:
        """The dilated kernel size along spatial ``axis`` (0: H, 1: W)."""
        return (self.kernel[axis] - 1) * self.dilations[axis] + 1


def _pair(values: Sequence[int] | None, default: int) -> tuple[int, int]:
    values = list(values) if values else [default, default]
    return int(values[0]), int(values[1])


def read_window(node: onnx.NodeProto, ctx: LoweringContext, kernel: Sequence[int]) -> Window:
    """The window of a Conv/pool node over its 4-D input, with ``auto_pad`` turned into explicit pads."""
    in_shape = ctx.shape(node.input[0])
    if len(in_shape) != 4 or len(kernel) != 2:
        raise ctx.reject(node, f"only 2-D windows over 4-D inputs are lowered (input shape {list(in_shape)})")
    strides = _pair(attribute(node, "strides"), 1)
    dilations = _pair(attribute(node, "dilations"), 1)
    kernel = (int(kernel[0]), int(kernel[1]))
    auto_pad = attribute(node, "auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = tuple(int(p) for p in attribute(node, "pads", [0, 0, 0, 0]))
    elif auto_pad == "VALID":
        pads = (0, 0, 0, 0)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for axis in range(2):
            extent = (kernel[axis] - 1) * dilations[axis] + 1
            size = in_shape[2 + axis]
            total = max((math.ceil(size / strides[axis]) - 1) * strides[axis] + extent - size, 0)
            first = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            begin.append(first)
            end.append(total - first)
        pads = (begin[0], begin[1], end[0], end[1])
    else:
        raise ctx.reject(node, f"unknown auto_pad '{auto_pad}'")
    if any(p < 0 for p in pads):
        raise ctx.reject(node, f"negative pads {list(pads)}")
    return Window(kernel, strides, dilations, pads)  # type: ignore[arg-type]


def padding_mode(in_hw: Sequence[int], window: Window, allow_same: bool = True) -> int | None:
    """VALID for no pads, SAME when the pads are TF's SAME pads (and ``allow_same``), else None."""
    if not any(window.pads):
        return schema.Padding.VALID
    if allow_same and window.pads == tf_same_pads(in_hw, (window.extent(0), window.extent(1)), window.strides):
        return schema.Padding.SAME
    return None


def pad_nhwc(ctx: LoweringContext, index: int, pads: Sequence[int], value: float = 0.0) -> int:
    """PAD (PADV2 when ``value`` is not 0) the H and W axes of NHWC tensor ``index`` by ONNX-order ``pads``."""
    n, h, w, c = ctx.builder.shape(index)
    top, left, bottom, right = (int(p) for p in pads)
    name = f"{ctx.builder.name(index)}/pad"
    out = ctx.temp(name, [n, h + top + bottom, w + left + right, c])
    paddings = ctx.const(f"{name}/paddings", np.array([[0, 0], [top, bottom], [left, right], [0, 0]], np.int32))
    if value == 0.0:
        ctx.op(OP.PAD, [index, paddings], [out], schema.PadOptionsT())
    else:
        fill = ctx.const(f"{name}/value", np.array(value, np.float32))
        ctx.op(OP.PADV2, [index, paddings, fill], [out], schema.PadV2OptionsT())
    return out


def depthwise_conv(
    ctx: LoweringContext,
    source: int,
    weight: np.ndarray,
    bias: np.ndarray,
    window: Window,
    mode: int,
    act: int,
    out: int,
) -> None:
    """DEPTHWISE_CONV_2D of NHWC tensor ``source`` by ONNX-layout ``weight`` [C·mult, 1, kh, kw] plus ``bias``."""
    name = ctx.builder.name(out)
    channels = ctx.builder.shape(source)[3]
    options = schema.DepthwiseConv2DOptionsT(
        padding=mode,
        strideH=window.strides[0],
        strideW=window.strides[1],
        depthMultiplier=weight.shape[0] // channels,
        dilationHFactor=window.dilations[0],
        dilationWFactor=window.dilations[1],
        fusedActivationFunction=act,
    )
    filters = ctx.const(f"{name}/weights", weight.transpose(1, 2, 3, 0))  # [C·mult, 1, kh, kw] -> [1, kh, kw, C·mult]
    version = 2 if window.dilations != (1, 1) else 1  # TFLite's op versioning: dilation needs version 2
    ctx.op(OP.DEPTHWISE_CONV_2D, [source, filters, ctx.const(f"{name}/bias", bias)], [out], options, version)
