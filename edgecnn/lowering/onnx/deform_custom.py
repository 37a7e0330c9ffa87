"""DeformConv → mmdeploy's custom ops (``mmdeploy::MMCVDeformConv2d`` / ``MMCVModulatedDeformConv2d``).

The form mmdeploy's ONNX Runtime custom-op library and TensorRT plugin load:
the modulated op takes (input, offset, mask, weight[, bias]); the plain op takes
(input, offset, weight) and no bias, so a bias becomes an Add after it. Both
take ``stride``, ``padding``, ``dilation`` (two ints each), ``groups`` and
``deform_groups``. Nothing here can run these ops: the result is checked with
schemas registered from Python (the ONNX checker validates every custom node
against them) and the output shapes the standard node had.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import defs, helper, numpy_helper

from edgecnn.errors import UsageError

DOMAIN = "mmdeploy"
MODULATED, PLAIN = "MMCVModulatedDeformConv2d", "MMCVDeformConv2d"
_INT, _INTS = defs.OpSchema.AttrType.INT, defs.OpSchema.AttrType.INTS


def _schema(name: str, inputs: list[tuple[str, bool]], extra: tuple[str, ...]) -> defs.OpSchema:
    option = defs.OpSchema.FormalParameterOption
    params = [
        defs.OpSchema.FormalParameter(n, "T", param_option=option.Optional if opt else option.Single)
        for n, opt in inputs
    ]
    attrs = [defs.OpSchema.Attribute(a, _INTS) for a in ("stride", "padding", "dilation")]
    attrs += [defs.OpSchema.Attribute(a, _INT) for a in ("groups", "deform_groups", *extra)]
    return defs.OpSchema(
        name,
        DOMAIN,
        1,
        f"mmdeploy's {name} (mmcv semantics)",
        inputs=params,
        outputs=[defs.OpSchema.FormalParameter("output", "T")],
        type_constraints=[("T", ["tensor(float)"], "float32 tensors")],
        attributes=attrs,
    )


def register_schemas() -> None:
    """Register both custom ops' schemas with ONNX (once per process)."""
    if defs.has(MODULATED, DOMAIN):
        return
    defs.register_schema(
        _schema(
            MODULATED, [("input", False), ("offset", False), ("mask", False), ("weight", False), ("bias", True)], ()
        )
    )
    defs.register_schema(
        _schema(PLAIN, [("input", False), ("offset", False), ("weight", False)], ("bias", "im2col_step"))
    )


def _attrs(node: onnx.NodeProto) -> dict[str, list[int] | int]:
    found = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    pads = list(found.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise UsageError(f"DeformConv '{node.name}': mmdeploy's ops take symmetric padding, got pads {pads}")
    return {
        "stride": list(found.get("strides", [1, 1])),
        "padding": pads[:2],
        "dilation": list(found.get("dilations", [1, 1])),
        "groups": int(found.get("group", 1)),
        "deform_groups": int(found.get("offset_group", 1)),
    }


def to_mmdeploy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every DeformConv replaced by the mmdeploy custom op."""
    register_schemas()
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph, nodes = model.graph, []
    for node in graph.node:
        if node.op_type != "DeformConv":
            nodes.append(node)
            continue
        x, w, offset, *rest = [*node.input, "", ""]
        bias, mask = rest[0], rest[1]
        attrs = _attrs(node)
        if mask:
            inputs = [x, offset, mask, w] + ([bias] if bias else [])
            nodes.append(helper.make_node(MODULATED, inputs, list(node.output), node.name, domain=DOMAIN, **attrs))
            continue
        out = node.output[0] if not bias else f"{node.name}/mmdeploy/no_bias"
        nodes.append(
            helper.make_node(PLAIN, [x, offset, w], [out], node.name, domain=DOMAIN, bias=0, im2col_step=32, **attrs)
        )
        if bias:
            shape_name = f"{node.name}/mmdeploy/bias_shape"
            graph.initializer.append(numpy_helper.from_array(np.array([1, -1, 1, 1], np.int64), shape_name))
            nodes += [
                helper.make_node(
                    "Reshape", [bias, shape_name], [f"{node.name}/mmdeploy/bias"], f"{node.name}/mmdeploy/reshape_bias"
                ),
                helper.make_node(
                    "Add", [out, f"{node.name}/mmdeploy/bias"], [node.output[0]], f"{node.name}/mmdeploy/add_bias"
                ),
            ]
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    onnx.checker.check_model(model, full_check=True)
    return model
