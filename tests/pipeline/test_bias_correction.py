"""Empirical bias correction: the int8 model's outputs lose the mean shift quantization gave them."""

from __future__ import annotations

import numpy as np

from edgecnn.pipeline.bias_correction import layer_shifts, quantized_layers
from edgecnn.pipeline.quantize import Quantizer
from edgecnn.runtime.loader import load
from tests.pipeline.test_equalize import _sqnr_db, _uneven_net


def test_bias_correction_centres_the_int8_outputs(tmp_path):
    import onnx

    source = _uneven_net(tmp_path / "net.onnx")
    rng = np.random.default_rng(1)
    calib, unseen = (rng.uniform(0, 1, size=(n, 1, 8, 8)).astype(np.float32) for n in (64, 64))
    reference = next(iter(load(source).run_all(unseen).values()))
    shift, sqnr = {}, {}
    for correct in (False, True):
        with Quantizer(source, calib, per_channel=False, bias_correct=correct) as quantizer:
            info = quantizer.quantize(tmp_path / f"q{correct}.onnx", "minmax")
            int8 = tmp_path / f"q{correct}.onnx"
            if correct:
                assert info["bias_correction"]["layers"] == 3, info["bias_correction"]
                layers = quantized_layers(onnx.load(str(int8)))
                assert [layer.op_type for layer in layers] == ["Conv"] * 3
            else:
                assert info["bias_correction"] is None
                before = layer_shifts(quantizer.preprocessed, int8, calib)
                assert len(before) == 3 and max(float(np.abs(s).max()) for s in before.values()) > 0
        out = next(iter(load(int8, optimization="disable").run_all(unseen).values()))
        shift[correct] = float(np.abs((out - reference).mean(axis=(0, 2, 3))).mean())
        sqnr[correct] = _sqnr_db(reference, out)
    assert shift[True] < shift[False] / 2, shift  # on samples it did not measure
    assert sqnr[True] > sqnr[False], sqnr
