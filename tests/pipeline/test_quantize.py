"""Calibration methods really differ: entropy is a histogram method, not MinMax in disguise."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgecnn.pipeline.onnx_export import export_onnx
from edgecnn.pipeline.quantize import quantize


def activation_scales(path) -> dict[str, float]:
    """Scale of every per-tensor QuantizeLinear (activations), by the tensor it quantizes."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {
        n.input[0]: float(inits[n.input[1]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and inits[n.input[1]].size == 1
    }


@pytest.fixture(scope="module")
def trained_fp32(tmp_path_factory, tinynet_checkpoint, digits_npz):
    import torch

    from tests.fixtures.tinynet import build_net

    model = build_net()
    model.load_state_dict(torch.load(tinynet_checkpoint["path"], weights_only=True)["state_dict"])
    path = tmp_path_factory.mktemp("q") / "tiny.onnx"
    export_onnx(model, (1, 1, 32, 32), path)
    images = np.load(digits_npz["path"])["images"][:64]
    return path, images


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_methods_differ_from_minmax(tmp_path, trained_fp32, method):
    path, images = trained_fp32
    quantize(path, tmp_path / "minmax.onnx", images, "minmax")
    quantize(path, tmp_path / f"{method}.onnx", images, method)
    minmax, other = activation_scales(tmp_path / "minmax.onnx"), activation_scales(tmp_path / f"{method}.onnx")
    assert minmax.keys() == other.keys() and len(minmax) >= 4
    differing = [k for k in minmax if not np.isclose(minmax[k], other[k], rtol=1e-3)]
    # Entropy moves most ranges; the 99.999th percentile only trims the rare outliers some tensors have.
    assert len(differing) >= (len(minmax) // 2 if method == "entropy" else 1), (minmax, other)
    # Histogram methods clip outliers: their ranges are never wider than the observed min/max.
    assert all(other[k] <= minmax[k] * 1.001 for k in minmax)


def test_ort_quantize_static_entropy_defaults_equal_minmax(tmp_path, trained_fp32):
    """The trap this module avoids: quantize_static's entropy with its defaults gives the MinMax scales."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    path, images = trained_fp32

    class Reader:
        def __init__(self):
            self.items = iter(images[i : i + 1] for i in range(len(images)))

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {"input": item}

    scales = {}
    for name, method in (("minmax", CalibrationMethod.MinMax), ("entropy", CalibrationMethod.Entropy)):
        quantize_static(
            str(path),
            str(tmp_path / f"{name}.onnx"),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
        )
        scales[name] = activation_scales(tmp_path / f"{name}.onnx")
    ours = tmp_path / "ours.onnx"
    quantize(path, ours, images, "entropy")
    same = [k for k in scales["minmax"] if np.isclose(scales["minmax"][k], scales["entropy"][k], rtol=1e-3)]
    assert len(same) == len(scales["minmax"])
    assert activation_scales(ours) != scales["minmax"]


def test_keep_float_op_types_and_nodes(tmp_path, trained_fp32):
    path, images = trained_fp32
    quantize(path, tmp_path / "q.onnx", images[:8], "minmax", keep_float_op_types=("Gemm",))
    model = onnx.load(str(tmp_path / "q.onnx"))
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producers.get(gemm.input[1]) != "DequantizeLinear"  # its weight stays float
