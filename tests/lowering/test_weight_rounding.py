"""Error-compensating weight rounding: the patches are the convolution's, and the rounding lowers the output error
the nearest rounding makes, on the same grid."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.lowering.weight_rounding import grid_scales, input_moments, keep_grid_ends, patches, round_rows


@pytest.mark.parametrize(
    ("groups", "pads", "strides", "dilations"),
    [(1, (1, 1, 1, 1), (1, 1), (1, 1)), (4, (0, 2, 1, 0), (2, 1), (1, 2)), (8, (1, 1, 1, 1), (2, 2), (1, 1))],
)
def test_patches_times_the_weights_is_onnx_runtime_s_convolution(tmp_path, groups, pads, strides, dilations):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgecnn.runtime.loader import load

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 9, 10)).astype(np.float32)
    w = rng.normal(size=(8, 8 // groups, 3, 3)).astype(np.float32)
    node = helper.make_node(
        "Conv", ["x", "w"], ["y"], group=groups, pads=list(pads), strides=list(strides), dilations=list(dilations)
    )
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    path = tmp_path / "conv.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    expected = load(path, optimization="disable").run_all(x)["y"]
    columns = patches(x, (3, 3), groups, pads, strides, dilations)  # groups × positions × D
    rows = w.reshape(groups, 8 // groups, -1)
    got = np.matmul(columns, rows.transpose(0, 2, 1))  # groups × positions × rows
    n, _, oh, ow = expected.shape
    got = got.reshape(groups, n, oh, ow, -1).transpose(1, 0, 4, 2, 3).reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("per_channel", [True, False])
def test_the_rounding_lowers_the_output_error_on_the_nearest_grid(per_channel):
    """On correlated inputs it must do better than the nearest rounding, with integers of the same grid: in
    range, each row's (per tensor: the tensor's) largest weight at the grid's end."""
    rng = np.random.default_rng(0)
    width, rows, positions = 72, 16, 4000
    mixing = rng.normal(size=(width, width)) / np.sqrt(width)
    x = (rng.normal(size=(positions, width)) @ mixing + 0.5).astype(np.float32)
    w = rng.normal(size=(rows, width)) * np.linspace(0.01, 0.2, rows)[:, None]
    scales = grid_scales(w, 127, per_channel)
    nearest = np.clip(np.rint(w / scales[:, None]), -127, 127)
    q = keep_grid_ends(round_rows(w[None], input_moments(x[None]), scales[None], 127)[0], w, 127, per_channel)

    def error(integers: np.ndarray) -> float:
        return float(np.mean(((integers * scales[:, None] - w) @ x.T) ** 2))

    assert error(q) < 0.7 * error(nearest), (error(q), error(nearest))
    assert np.abs(q).max() == 127 and np.array_equal(q, np.rint(q))
    assert np.all(np.abs(q - w / scales[:, None]) < 127)  # on the grid, not a copy of the weights
    if per_channel:
        assert np.all(np.abs(q).max(axis=1) == 127)
    assert (q != nearest).any()


def test_an_input_that_never_varies_leaves_its_weights_to_the_nearest_rounding():
    """A dead input (its moments all zero) carries no information: the weights it meets round to nearest and
    nothing is divided by zero."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    x[:, 2] = 0.0
    w = rng.normal(size=(4, 6))
    scales = grid_scales(w, 127, True)
    q = round_rows(w[None], input_moments(x[None]), scales[None], 127)[0]
    assert np.isfinite(q).all() and np.abs(q).max() <= 127
    np.testing.assert_array_equal(q[:, 2], np.rint(w[:, 2] / scales))
    zero_row = round_rows(np.zeros((1, 1, 6)), input_moments(x[None]), np.zeros((1, 1)), 127)
    assert not zero_row.any()


def test_chunked_passes_over_batches_with_no_layer_inputs():
    """A model with no Conv or Gemm to round measures nothing: its batches are empty (that was max() of an empty
    sequence, which the .tflite rounding recorded as 'weight rounding failed')."""
    from edgecnn.lowering.weight_rounding import chunked

    assert list(chunked([{}, {}])) == []
    value = np.ones((2, 3), np.float32)
    chunks = list(chunked([{}, {"x": value}, {}]))
    assert len(chunks) == 1 and np.array_equal(chunks[0]["x"], value)
