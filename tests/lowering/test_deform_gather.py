"""The DeformConv → Gather/MatMul rewrite matches torchvision and ONNX Runtime's native DeformConv."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
torchvision_ops = pytest.importorskip("torchvision.ops")

from edgecnn.errors import UsageError  # noqa: E402
from edgecnn.lowering.onnx import rewrite_deform_conv  # noqa: E402

TOLERANCE = 1e-4
WORST: dict[str, float] = {}


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _deform_model(
    shapes: dict[str, list[int]], out_shape: list[int], attrs: dict, inputs: list[str]
) -> onnx.ModelProto:
    """One DeformConv node; every input is a graph input (the weight and bias as initializers elsewhere)."""
    node = helper.make_node("DeformConv", inputs, ["Y"], name="dcn", **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in inputs if n]
    output = helper.make_tensor_value_info("Y", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph([node], "deform", graph_inputs, [output])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def _with_initializers(model: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Move the named graph inputs into initializers."""
    model.graph.initializer.extend(onnx.numpy_helper.from_array(a, n) for n, a in arrays.items())
    kept = [i for i in model.graph.input if i.name not in arrays]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return model


def _case(stride, pad, dil, groups, offset_groups, mask, bias, scale, seed=0, weight_init=True):
    """Random inputs for one configuration; returns (model, feeds, torchvision reference)."""
    rng = np.random.default_rng(seed)
    n, c, h, w, out_c, k = 2, 4, 7, 9, 6, 3
    oh = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
    arrays = {
        "X": rng.standard_normal((n, c, h, w)).astype(np.float32),
        "W": rng.standard_normal((out_c, c // groups, k, k)).astype(np.float32),
        "offset": (scale * rng.standard_normal((n, offset_groups * 2 * k * k, oh, ow))).astype(np.float32),
        "B": rng.standard_normal(out_c).astype(np.float32),
        "mask": rng.uniform(0, 2, (n, offset_groups * k * k, oh, ow)).astype(np.float32),
    }
    names = ["X", "W", "offset", "B" if bias else "", "mask" if mask else ""]
    while names[-1] == "":
        names.pop()
    attrs = dict(
        strides=[stride] * 2, pads=[pad] * 4, dilations=[dil] * 2, group=groups,
        offset_group=offset_groups, kernel_shape=[k, k],
    )  # fmt: skip
    model = _deform_model({a: list(v.shape) for a, v in arrays.items()}, [n, out_c, oh, ow], attrs, names)
    if weight_init:
        model = _with_initializers(model, {"W": arrays["W"]})
    t = {name: torch.from_numpy(v) for name, v in arrays.items()}
    reference = torchvision_ops.deform_conv2d(
        t["X"], t["offset"], t["W"], t["B"] if bias else None, (stride,) * 2, (pad,) * 2, (dil,) * 2,
        t["mask"] if mask else None,
    ).numpy()  # fmt: skip
    feeds = {name: arrays[name] for name in names if name and not (weight_init and name == "W")}
    return model, feeds, reference


def _check(group: str, model: onnx.ModelProto, feeds: dict, reference: np.ndarray) -> None:
    rewritten, sampling = rewrite_deform_conv(model)
    assert not [n for n in rewritten.graph.node if n.op_type == "DeformConv"]
    assert sampling["dcn"] and all(s.startswith("dcn/") for s in sampling["dcn"])
    assert "MatMul" not in {n.op_type for n in rewritten.graph.node if n.name in set(sampling["dcn"])}
    ours = _session(rewritten).run(None, feeds)[0]
    native = _session(model).run(None, feeds)[0]
    scale = max(1.0, float(np.abs(reference).max()))
    error = float(np.abs(ours - reference).max()) / scale
    WORST[group] = max(WORST.get(group, 0.0), error)
    assert np.abs(native - reference).max() / scale <= TOLERANCE, "ORT's own DeformConv disagrees with torchvision"
    assert error <= TOLERANCE, f"{group}: max error {error:.2e}"


GEOMETRY = list(itertools.product([1, 2], [0, 1, 2], [1, 2]))


@pytest.mark.parametrize(("stride", "pad", "dil"), GEOMETRY)
@pytest.mark.parametrize(("groups", "offset_groups"), [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_geometry_and_groups(stride: int, pad: int, dil: int, groups: int, offset_groups: int) -> None:
    _check("geometry×groups", *_case(stride, pad, dil, groups, offset_groups, mask=True, bias=True, scale=1.0))


@pytest.mark.parametrize(("mask", "bias"), list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("weight_init", [True, False])
def test_mask_bias_and_dynamic_weight(mask: bool, bias: bool, weight_init: bool) -> None:
    _check("mask/bias/weight input", *_case(2, 1, 1, 2, 2, mask, bias, 1.5, seed=1, weight_init=weight_init))


@pytest.mark.parametrize("seed", range(3))
def test_large_offsets_sample_zero_padding(seed: int) -> None:
    _check("offsets outside image", *_case(1, 1, 1, 1, 2, mask=True, bias=True, scale=8.0, seed=seed))


def test_integer_offsets_on_the_border() -> None:
    model, feeds, _ = _case(1, 2, 1, 1, 1, mask=False, bias=False, scale=0.0)
    feeds["offset"] = np.round(feeds["offset"] + np.random.default_rng(5).integers(-4, 5, feeds["offset"].shape))
    feeds["offset"] = feeds["offset"].astype(np.float32)
    t = {k: torch.from_numpy(v) for k, v in feeds.items()}
    weight = torch.from_numpy(onnx.numpy_helper.to_array(model.graph.initializer[0]).copy())
    reference = torchvision_ops.deform_conv2d(t["X"], t["offset"], weight, None, 1, 2, 1).numpy()
    _check("integer offsets", model, feeds, reference)


def test_offset_layout_is_y_then_x_tap_major() -> None:
    """A pure y shift of tap 0 only moves tap 0 along y, in torchvision as in the rewrite."""
    model, feeds, _ = _case(1, 1, 1, 1, 1, mask=False, bias=False, scale=0.0)
    feeds["offset"][:, 0] = 1.0  # tap (0, 0), y
    t = {k: torch.from_numpy(v) for k, v in feeds.items()}
    weight = np.zeros((6, 4, 3, 3), np.float32)
    weight[:, :, 0, 0] = 1.0
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(weight, "W"))
    reference = torchvision_ops.deform_conv2d(t["X"], t["offset"], torch.from_numpy(weight), padding=1).numpy()
    shifted = np.pad(feeds["X"], ((0, 0), (0, 0), (1, 1), (1, 1)))[:, :, 1:8, :9].sum(1, keepdims=True)
    np.testing.assert_allclose(reference, np.broadcast_to(shifted, reference.shape), atol=1e-5)
    _check("offset layout", model, feeds, reference)


def test_dynamic_input_shape_is_a_usage_error() -> None:
    model, _, _ = _case(1, 1, 1, 1, 1, mask=False, bias=False, scale=1.0)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    with pytest.raises(UsageError, match="dcn"):
        rewrite_deform_conv(model)


@pytest.mark.slow
def test_exported_edgecnn_dcn_layer(tmp_path: Path) -> None:
    from edgecnn.ops import DeformConv2d
    from edgecnn.pipeline.onnx_export import export_onnx

    torch.manual_seed(0)
    module = DeformConv2d(8, 8, 3, padding=1, modulated=True)
    with torch.no_grad():
        module.offset_conv.weight.normal_(0.0, 0.5)
    path = tmp_path / "dcn.onnx"
    export_onnx(module.eval(), (1, 8, 11, 13), path)
    model = onnx.load(str(path))
    deform = [n for n in model.graph.node if n.op_type == "DeformConv"]
    assert len(deform) == 1
    rewritten, sampling = rewrite_deform_conv(model)
    assert not [n for n in rewritten.graph.node if n.op_type == "DeformConv"]
    assert list(sampling) == [deform[0].name or "DeformConv_0"]
    x = np.random.default_rng(0).standard_normal((1, 8, 11, 13)).astype(np.float32)
    before = _session(model).run(None, {model.graph.input[0].name: x})[0]
    after = _session(rewritten).run(None, {model.graph.input[0].name: x})[0]
    with torch.no_grad():
        reference = module(torch.from_numpy(x)).numpy()
    scale = max(1.0, float(np.abs(before).max()))
    error = float(np.abs(after - before).max()) / scale
    WORST["exported DCN layer"] = error
    assert np.abs(before - reference).max() / scale <= TOLERANCE
    assert error <= TOLERANCE


def teardown_module() -> None:
    for group, error in sorted(WORST.items()):
        print(f"\n[deform_gather] worst error {group}: {error:.2e}")
