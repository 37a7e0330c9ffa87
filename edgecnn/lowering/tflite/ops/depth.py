"""DepthToSpace → DEPTH_TO_SPACE (CRD: a GATHER of the channels into DCR order first), SpaceToDepth → SPACE_TO_DEPTH."""

from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as schema

from edgecnn.lowering.tflite.context import OP, LoweringContext, attribute
from edgecnn.lowering.tflite.layout import NHWC
from edgecnn.lowering.tflite.registry import register


def crd_to_dcr(channels: int, block: int) -> np.ndarray:
    """The CRD channel each DCR channel reads: DCR d = (by·b + bx)·C' + c holds CRD c·b² + by·b + bx."""
    depth = channels // (block * block)
    d = np.arange(channels)
    return (d % depth) * block * block + d // depth


@register("DepthToSpace", "SpaceToDepth")
def lower_depth_space(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """On NHWC values, TFLite's ops are ONNX's DCR DepthToSpace and SpaceToDepth."""
    x, out_name = node.input[0], node.output[0]
    if ctx.rank(x) != 4:
        raise ctx.reject(node, "only 4-D values are lowered")
    block = int(attribute(node, "blocksize"))
    source = ctx.tensor_in(x, NHWC)
    if node.op_type == "SpaceToDepth":
        options = schema.SpaceToDepthOptionsT(blockSize=block)
        ctx.op(OP.SPACE_TO_DEPTH, [source], [ctx.declare(out_name)], options)
        return
    mode = attribute(node, "mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise ctx.reject(node, f"unknown mode '{mode}'")
    if mode == "CRD":
        channels = ctx.shape(x)[1]
        reordered = ctx.temp(f"{out_name}/dcr", ctx.builder.shape(source))
        indices = ctx.const(f"{out_name}/dcr_channels", crd_to_dcr(channels, block).astype(np.int32))
        ctx.op(OP.GATHER, [source, indices], [reordered], schema.GatherOptionsT(axis=3, batchDims=0))
        source = reordered
    options = schema.DepthToSpaceOptionsT(blockSize=block)
    ctx.op(OP.DEPTH_TO_SPACE, [source], [ctx.declare(out_name)], options)
