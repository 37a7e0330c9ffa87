"""Full-integer int8 .tflite from the lowered fp32 one (ai-edge-quantizer): real digits, int8 vs fp32 agreement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_quantizer", reason="int8 .tflite needs ai-edge-quantizer (the 'tflite' extra)")

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from edgecnn.errors import CheckFailedError, UnknownNameError, UsageError
from edgecnn.lowering.tflite.builder import OPERATOR_NAMES
from edgecnn.lowering.tflite.quantize import QuantizedTflite, quantize_tflite
from tests.fixtures.digits import MEAN, STD, digits, normalise

CALIBRATION_SAMPLES = 128
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# name -> (factory arguments, epochs, lr, batch); both train in about 10 s on the 1,437 training digits.
NETS = {
    "tinynet": (None, 8, 0.2, 64),
    # lr 0.2 sat on the edge of divergence: 0.84 fp32 accuracy on an AVX2 host, 0.60 on an AVX-512 one (another
    # float summation order); 4 epochs at 0.1 reach 0.92 on the AVX-512 host.
    "mobilenet_v2": ({"width": 0.35}, 4, 0.1, 32),
}
FIGURES: dict[str, dict[str, float]] = {}  # printed with -s / -rP


def _build(name: str):
    import torch

    from edgecnn.models import create_model
    from tests.fixtures.tinynet import build_net

    torch.manual_seed(0)
    scaling = NETS[name][0]
    return build_net() if scaling is None else create_model(name, num_classes=10, in_chans=1, resolution=32, **scaling)


def _make_fp32_tflite(name: str, path: Path) -> None:
    """Train ``name`` on digits, export, simplify and lower it to an fp32 .tflite at ``path``."""
    from edgecnn.lowering.tflite import convert
    from edgecnn.pipeline.onnx_export import export_onnx
    from edgecnn.pipeline.simplify import simplify
    from tests.fixtures.digits import train

    train_x, train_y, _, _ = digits()
    _, epochs, lr, batch = NETS[name]
    model = train(_build(name), normalise(train_x, MEAN, STD), train_y, epochs=epochs, lr=lr, batch=batch)
    raw, onnx_path = path.with_suffix(".raw.onnx"), path.with_suffix(".onnx")
    export_onnx(model.eval(), (1, 1, 32, 32), raw)
    simplify(raw, onnx_path)
    lowered = convert(onnx_path)
    assert lowered.input_layout == "NHWC" and lowered.inputs == {"input": (1, 32, 32, 1)}
    path.with_suffix(".partial").write_bytes(lowered.data)
    path.with_suffix(".partial").replace(path)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """Normalised digits: the calibration samples (from the training split) and the held-out split."""
    train_x, _, test_x, test_y = digits()
    return {
        "calibration": normalise(train_x[:CALIBRATION_SAMPLES], MEAN, STD),
        "test_x": normalise(test_x, MEAN, STD),
        "test_y": test_y,
    }


@pytest.fixture(scope="module")
def fp32_tflite(shared_dir):
    """name -> (fp32 .tflite bytes, its logits on the held-out digits): trained once per run, across workers."""
    from filelock import FileLock

    folder = shared_dir / "lowering_int8"
    folder.mkdir(parents=True, exist_ok=True)
    cache: dict[str, bytes] = {}

    def get(name: str) -> bytes:
        if name not in cache:
            path = folder / f"{name}.fp32.tflite"
            with FileLock(str(path) + ".lock"):
                if not path.exists():
                    _make_fp32_tflite(name, path)
            cache[name] = path.read_bytes()
        return cache[name]

    return get


def run(data: bytes, x: np.ndarray, quantized: QuantizedTflite | None = None) -> np.ndarray:
    """Float logits of a .tflite on NCHW float ``x``, one sample at a time (int8 I/O: quantize in, dequantize out)."""
    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    detail_in, detail_out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    if quantized is not None and quantized.input_dtype == "int8":
        assert detail_in["dtype"] == np.int8 and detail_out["dtype"] == np.int8
        assert detail_in["quantization"] == pytest.approx((quantized.input_scale, quantized.input_zero_point))
        assert detail_out["quantization"] == pytest.approx((quantized.output_scale, quantized.output_zero_point))
    logits = []
    for sample in x.transpose(0, 2, 3, 1):
        feed = sample[None]
        if quantized is not None and quantized.input_dtype == "int8":
            q = np.round(feed / quantized.input_scale) + quantized.input_zero_point
            feed = np.clip(q, -128, 127).astype(np.int8)
        interpreter.set_tensor(detail_in["index"], feed)
        interpreter.invoke()
        out = interpreter.get_tensor(detail_out["index"])
        if quantized is not None and quantized.output_dtype == "int8":
            out = quantized.output_scale * (out.astype(np.float32) - quantized.output_zero_point)
        logits.append(out[0])
    return np.stack(logits)


def compare(name: str, fp32: bytes, quantized: QuantizedTflite, data: dict[str, np.ndarray]) -> dict[str, float]:
    """Top-1 agreement of int8 with fp32 and both accuracies on the held-out digits; recorded in FIGURES."""
    reference = run(fp32, data["test_x"]).argmax(1)
    predicted = run(quantized.data, data["test_x"], quantized).argmax(1)
    figures = {
        "agreement": float((predicted == reference).mean()),
        "fp32_accuracy": float((reference == data["test_y"]).mean()),
        "int8_accuracy": float((predicted == data["test_y"]).mean()),
        "quantize_seconds": quantized.seconds,
    }
    FIGURES[name] = figures
    print(f"\n{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in figures.items()))
    return figures


def operators(data: bytes) -> list[tuple[str, list, list]]:
    """(op name, input tensors, output tensors) of each operator, through the schema's object API."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    codes = [code.builtinCode for code in model.operatorCodes]
    tensors = model.subgraphs[0].tensors
    return [
        (
            OPERATOR_NAMES[codes[op.opcodeIndex]],
            [tensors[i] for i in op.inputs if i >= 0],
            [tensors[i] for i in op.outputs],
        )
        for op in model.subgraphs[0].operators
    ]


def assert_int8_weights(data: bytes, per_channel: bool = True) -> None:
    """Every conv / fully connected op: int8 per-channel (or per-tensor) weights, int32 bias, int8 activations in
    and out."""
    weighted = [(name, ins, outs) for name, ins, outs in operators(data) if name in WEIGHTED_OPS]
    assert weighted
    for name, ins, outs in weighted:
        weights = ins[1]
        assert weights.type == schema.TensorType.INT8, (name, weights.name)
        channels = weights.shape[3] if name == "DEPTHWISE_CONV_2D" else weights.shape[0]
        assert len(weights.quantization.scale) == (channels if per_channel else 1), (name, weights.name)
        assert len(ins) < 3 or ins[2].type == schema.TensorType.INT32, (name, ins[2].name)
        assert ins[0].type == outs[0].type == schema.TensorType.INT8, (name, ins[0].name)


@pytest.mark.slow
def test_tinynet_int8_io_agrees_with_fp32(fp32_tflite, data):
    fp32 = fp32_tflite("tinynet")
    quantized = quantize_tflite(fp32, data["calibration"], "NHWC")
    assert (quantized.input_dtype, quantized.output_dtype) == ("int8", "int8")
    assert -128 <= quantized.input_zero_point <= 127 and quantized.input_scale > 0
    # Full integer: int8 from the input tensor to the logits, no QUANTIZE/DEQUANTIZE anywhere.
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(quantized.op_counts)
    assert all(t.type != schema.TensorType.FLOAT32 for _, ins, outs in operators(quantized.data) for t in ins + outs)
    assert_int8_weights(quantized.data)
    figures = compare("tinynet int8 io", fp32, quantized, data)
    assert figures["fp32_accuracy"] > 0.8, figures  # a real model, not a degenerate one
    assert figures["agreement"] >= 0.98, figures
    assert figures["fp32_accuracy"] - figures["int8_accuracy"] <= 0.01, figures


@pytest.mark.slow
def test_tinynet_float_io_keeps_float32_at_the_boundary(fp32_tflite, data):
    fp32 = fp32_tflite("tinynet")
    quantized = quantize_tflite(fp32, data["calibration"], "NHWC", io="float")
    assert (quantized.input_dtype, quantized.output_dtype) == ("float32", "float32")
    assert quantized.input_scale is None and quantized.output_zero_point is None
    ops = operators(quantized.data)
    assert quantized.op_counts["QUANTIZE"] == quantized.op_counts["DEQUANTIZE"] == 1
    assert ops[0][0] == "QUANTIZE" and ops[-1][0] == "DEQUANTIZE"
    assert_int8_weights(quantized.data)
    figures = compare("tinynet float io", fp32, quantized, data)
    assert figures["agreement"] >= 0.98, figures
    assert figures["fp32_accuracy"] - figures["int8_accuracy"] <= 0.01, figures


@pytest.mark.slow
def test_keep_float_ops_leaves_mean_in_float(fp32_tflite, data):
    fp32 = fp32_tflite("tinynet")
    quantized = quantize_tflite(fp32, data["calibration"], "NHWC", keep_float_ops=("MEAN",))
    (mean,) = [(ins, outs) for name, ins, outs in operators(quantized.data) if name == "MEAN"]
    assert mean[0][0].type == mean[1][0].type == schema.TensorType.FLOAT32
    assert quantized.op_counts["DEQUANTIZE"] == quantized.op_counts["QUANTIZE"] == 1  # around the MEAN only
    assert (quantized.input_dtype, quantized.output_dtype) == ("int8", "int8")
    assert_int8_weights(quantized.data)
    assert compare("tinynet MEAN in float", fp32, quantized, data)["agreement"] >= 0.98


def test_op_types_kept_float_after_calibration_stay_float_until_reset(fp32_tflite, data):
    """The export's timed choice of ops slower in int8: set once calibrated, the ops of a type are float in every
    later model (as with ``keep_float_ops``), and setting none gives back the all-int8 model."""
    from edgecnn.lowering.tflite.quantize import TfliteQuantizer

    fp32 = fp32_tflite("tinynet")
    quantizer = TfliteQuantizer(fp32, data["calibration"], "NHWC")
    plain = quantizer.quantize_bytes().data
    quantizer.float_op_types = ("MEAN",)
    kept = quantizer.quantize_bytes()
    assert quantizer.float_op_types == ("MEAN",)
    (mean,) = [(ins, outs) for name, ins, outs in operators(kept.data) if name == "MEAN"]
    assert mean[0][0].type == mean[1][0].type == schema.TensorType.FLOAT32
    assert kept.data == quantize_tflite(fp32, data["calibration"], "NHWC", keep_float_ops=("MEAN",)).data
    with pytest.raises(UnknownNameError, match="MEANN"):
        quantizer.float_op_types = ("MEANN",)
    quantizer.float_op_types = ()
    assert quantizer.quantize_bytes().data == plain


@pytest.mark.slow
def test_mobilenet_v2_int8_agreement(fp32_tflite, data):
    fp32 = fp32_tflite("mobilenet_v2")
    quantized = quantize_tflite(fp32, data["calibration"], "NHWC")
    assert (quantized.input_dtype, quantized.output_dtype) == ("int8", "int8")
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(quantized.op_counts)
    assert_int8_weights(quantized.data)
    figures = compare("mobilenet_v2 int8 io", fp32, quantized, data)
    assert figures["agreement"] >= 0.95, figures


def test_per_tensor_weights_for_per_tensor_targets(fp32_tflite, data):
    """NNAPI before API level 29 takes one scale per weight tensor: every conv and FC gets exactly one."""
    fp32 = fp32_tflite("tinynet")
    quantized = quantize_tflite(fp32, data["calibration"], "NHWC", per_channel=False)
    assert_int8_weights(quantized.data, per_channel=False)
    assert compare("tinynet per-tensor", fp32, quantized, data)["agreement"] >= 0.95


@pytest.mark.slow
def test_bad_arguments_are_usage_errors(fp32_tflite, data):
    fp32 = fp32_tflite("tinynet")
    with pytest.raises(UnknownNameError, match="did you mean"):
        quantize_tflite(fp32, data["calibration"], keep_float_ops=("MEANN",))
    with pytest.raises(UsageError, match="io must be"):
        quantize_tflite(fp32, data["calibration"], io="uint8")
    with pytest.raises(UsageError, match="the model's input is"):
        quantize_tflite(fp32, data["calibration"][:, :, :16], "NHWC")
    with pytest.raises(UsageError, match="input_layout"):
        quantize_tflite(fp32, data["calibration"], "NCWH")
    with pytest.raises(UsageError, match=r"not a \.tflite"):
        quantize_tflite(b"\0" * 64, data["calibration"])


def test_quantizer_failure_is_a_one_line_check_failure(monkeypatch):
    from ai_edge_quantizer import calibrator

    from edgecnn.lowering.tflite import GraphBuilder

    def broken(self, *args, **kwargs):
        raise ValueError("Missing QSVs (min/max) for tensor x\nsecond line")

    monkeypatch.setattr(calibrator.Calibrator, "calibrate", broken)
    builder = GraphBuilder()
    x = builder.add_tensor("input", (1, 1, 1, 4), np.float32)
    y = builder.add_tensor("logits", (1, 1, 1, 4), np.float32)
    builder.add_operator(schema.BuiltinOperator.RELU, [x], [y])
    builder.set_io([x], [y])
    builder.set_signature({"input": x}, {"logits": y})
    with pytest.raises(
        CheckFailedError, match=r"^int8 quantization with ai-edge-quantizer failed: Missing QSVs[^\n]*$"
    ):
        quantize_tflite(builder.to_bytes(), np.zeros((2, 1, 1, 4), np.float32), "NCHW")


def test_a_division_by_a_computed_value_stays_float():
    """An int8 DIV whose divisor rounds to its zero point is refused by LiteRT at run time: such Divs stay float;
    a Div by a constant (GELU's √2) is quantized."""
    import re

    from onnx import TensorProto, helper, numpy_helper

    from edgecnn.lowering.tflite.quantize import variable_division_scope

    value = helper.make_tensor_value_info
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=1),
        helper.make_node("Div", ["x", "total"], ["share"]),
        helper.make_node("Div", ["share", "two"], ["half"]),
    ]
    graph = helper.make_graph(
        nodes,
        "div",
        [value("x", TensorProto.FLOAT, [1, 4])],
        [value("half", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.float32(2.0), "two")],
    )
    scope = variable_division_scope(helper.make_model(graph))
    assert scope is not None
    assert re.match(scope, "share") and re.match(scope, "share;x") and not re.match(scope, "half")
    assert not re.match(scope, "total") and not re.match(scope, "shares")


def _int8_run(model, calibration: np.ndarray) -> tuple[QuantizedTflite, np.ndarray, np.ndarray]:
    """``model`` (one 4-D input ``x``, output ``y``) lowered and quantized on ``calibration``; the int8 and the
    ONNX Runtime fp32 outputs on the calibration samples."""
    from edgecnn.lowering.tflite import convert
    from tests.lowering.tflite_check import run_ort

    lowered = convert(model)
    quantized = quantize_tflite(lowered.data, calibration, lowered.input_layout)
    actual = run(quantized.data, calibration, quantized)
    expected = np.concatenate([run_ort(model, {"x": sample[None]})["y"] for sample in calibration])
    return quantized, actual.reshape(len(calibration), -1), expected.reshape(len(calibration), -1)


def test_an_op_whose_int32_bias_would_overflow_stays_float():
    """Activations of ~1e-12 (random weights deep in GoogLeNet) make a FULLY_CONNECTED's bias scale (input scale ×
    weight scale) ~1e-16: its int32 bias overflows (clipped, it gave ~0 instead of the bias). That op stays float,
    named with its reason; the output stays int8 and agrees with fp32."""
    from onnx import helper

    from tests.lowering.tflite_check import make_model

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Mul", ["x", "tiny"], ["small"]),
        helper.make_node("Flatten", ["small"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["y"], transB=1),
    ]
    inits = {
        "tiny": np.float32(1e-12),
        "w": rng.standard_normal((3, 16)).astype(np.float32),
        "b": np.array([0.5, -1.0, 2.0], np.float32),
    }
    model = make_model(nodes, {"x": [1, 4, 2, 2]}, ["y"], inits)
    calibration = rng.standard_normal((16, 4, 2, 2)).astype(np.float32)
    quantized, actual, expected = _int8_run(model, calibration)
    assert list(quantized.kept_float) == ["y"]
    assert quantized.kept_float["y"].startswith("FULLY_CONNECTED: int32 bias overflows")
    assert quantized.input_dtype == quantized.output_dtype == "int8"
    np.testing.assert_allclose(actual, expected, atol=4 * quantized.output_scale)


def test_bias_problem_names_overflow_and_underflow():
    from edgecnn.lowering.tflite.quantize import bias_problem

    assert bias_problem(np.array([1.0, -2.0]), np.array([1e-3, 1e-3])) is None
    assert "overflows" in bias_problem(np.array([1.0]), np.array([1e-12]))
    assert "underflows" in bias_problem(np.zeros(1), np.array([1e-40]))


def test_a_clip_to_a_lower_bound_quantizes_on_a_4d_tensor():
    """Clip(min) → MAXIMUM with a constant bound: ai-edge-quantizer gives the bound the output's quantization,
    whose scale has the output's rank, and refused a rank-1 bound on a 4-D tensor (EdgeNeXt's F.normalize)."""
    from onnx import helper

    from tests.lowering.tflite_check import make_model

    nodes = [helper.make_node("Clip", ["x", "low"], ["y"])]
    model = make_model(nodes, {"x": [1, 4, 3, 3]}, ["y"], {"low": np.float32(0.25)})
    calibration = np.random.default_rng(0).standard_normal((16, 4, 3, 3)).astype(np.float32)
    quantized, actual, expected = _int8_run(model, calibration)
    assert quantized.op_counts["MAXIMUM"] == 1 and not quantized.kept_float
    expected = expected.reshape(16, 4, 3, 3).transpose(0, 2, 3, 1).reshape(16, -1)  # the .tflite is NHWC
    assert float(np.sum(actual * expected) / np.linalg.norm(actual) / np.linalg.norm(expected)) > 0.999


def test_calibration_takes_the_extremes_of_every_sample():
    """Ranges are each tensor's min and max over all the calibration samples, in any order: a first sample eight
    times larger than the other 63 is not clipped (ai-edge-quantizer's own moving average of per-sample extremes
    forgets it: ×0.95 a sample), and the samples reversed give the same bytes."""
    from onnx import helper

    from edgecnn.lowering.tflite import convert
    from tests.lowering.tflite_check import make_model

    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": [1, 4, 3, 3]}, ["y"], {})
    calibration = np.random.default_rng(0).standard_normal((64, 4, 3, 3)).astype(np.float32)
    calibration[0] *= 8
    quantized, actual, expected = _int8_run(model, calibration)
    expected = expected.reshape(64, 4, 3, 3).transpose(0, 2, 3, 1).reshape(64, -1)  # the .tflite is NHWC
    rounding = (quantized.input_scale + quantized.output_scale) / 2  # the input's and the output's, no clipping
    assert np.abs(actual - expected).max() <= rounding + 1e-6, (np.abs(actual - expected).max(), rounding)
    assert expected.max() <= quantized.output_scale * (127 - quantized.output_zero_point) + 1e-6
    lowered = convert(model)
    reversed_bytes = quantize_tflite(lowered.data, calibration[::-1].copy(), lowered.input_layout).data
    assert reversed_bytes == quantized.data


@pytest.mark.slow
def test_quantizer_requantizes_with_ops_kept_float_and_their_outputs_float(fp32_tflite, data):
    """The repair's interface: calibrated once, quantized again with chosen ops float; a graph output whose producer
    is kept float is float32 too when ``float_outputs`` allows it (int8 I/O not pinned), int8 otherwise."""
    from edgecnn.lowering.tflite.quantize import TfliteQuantizer

    fp32 = fp32_tflite("tinynet")
    quantizer = TfliteQuantizer(fp32, data["calibration"], "NHWC", float_outputs=True)
    plain = quantizer.quantize_bytes()
    assert plain.data == quantizer.quantize_bytes().data  # the same statistics, the same model
    conv = next(op for op, kind in quantizer.ops.items() if kind == "CONV_2D")
    kept = quantizer.quantize_bytes([conv])
    floats = [outs[0] for name, ins, outs in operators(kept.data) if name == "CONV_2D"]
    assert schema.TensorType.FLOAT32 in {t.type for t in floats} and kept.output_dtype == "int8"
    assert kept.op_counts["DEQUANTIZE"] >= 1 and kept.op_counts["QUANTIZE"] >= 1
    last = next(op for op in reversed(list(quantizer.ops)) if quantizer.floated_outputs([op]))
    assert quantizer.quantize_bytes([last]).output_dtype == "float32"
    pinned = TfliteQuantizer(fp32, data["calibration"], "NHWC")
    assert pinned.quantize_bytes([last]).output_dtype == "int8" and not pinned.floated_outputs([last])
    with pytest.raises(UsageError, match=r"not in the \.tflite"):
        quantizer.quantize_bytes(["no-such-op"])
    with pytest.raises(UsageError, match="calibrates by minmax, not 'entropy'"):  # no calibrator: min-max only
        quantizer.quantize(Path("unused.tflite"), "entropy")


def test_an_output_kept_float_makes_every_graph_output_float():
    """ai-edge-quantizer quantizes all graph outputs in one virtual OUTPUT op: when the repair keeps one output's
    producer float (int8 I/O not pinned), every output is float32 — and the check reads them by their float
    names (a dequantized output is a new tensor). A class + box head crashed its `.tflite` repair on this."""
    from onnx import helper

    from edgecnn.lowering.tflite import convert
    from edgecnn.lowering.tflite.quantize import TfliteQuantizer
    from tests.lowering.tflite_check import make_model

    nodes = [helper.make_node("Relu", ["x"], ["first"]), helper.make_node("Sigmoid", ["x"], ["second"])]
    lowered = convert(make_model(nodes, {"x": [1, 4, 3, 3]}, ["first", "second"]))
    calibration = np.random.default_rng(0).standard_normal((16, 4, 3, 3)).astype(np.float32)
    quantizer = TfliteQuantizer(lowered.data, calibration, lowered.input_layout, float_outputs=True)
    ops = {op_type: op for op, op_type in quantizer.ops.items()}
    assert quantizer.floated_outputs((ops["RELU"],)) == ["first", "second"]
    quantized = quantizer.quantize_bytes((ops["RELU"],))
    assert {name: o["dtype"] for name, o in quantized.outputs.items()} == {"first": "float32", "second": "float32"}
    pinned = TfliteQuantizer(lowered.data, calibration, lowered.input_layout).quantize_bytes((ops["RELU"],))
    assert {o["dtype"] for o in pinned.outputs.values()} == {"int8"}


def test_an_output_made_by_an_op_type_kept_float_is_float_too():
    """An op kept float by its type — the export's timed choice (``float_op_types``) or the recipe's
    ``keep_float_ops`` — that makes a graph output floats the outputs as an op kept float by name does; pinned int8
    I/O stays int8."""
    from onnx import helper

    from edgecnn.lowering.tflite import convert
    from edgecnn.lowering.tflite.quantize import TfliteQuantizer
    from tests.lowering.tflite_check import make_model

    nodes = [helper.make_node("Relu", ["x"], ["first"]), helper.make_node("Sigmoid", ["x"], ["second"])]
    lowered = convert(make_model(nodes, {"x": [1, 4, 3, 3]}, ["first", "second"]))
    calibration = np.random.default_rng(0).standard_normal((16, 4, 3, 3)).astype(np.float32)
    chosen = TfliteQuantizer(lowered.data, calibration, lowered.input_layout, float_outputs=True)
    assert chosen.floated_outputs(()) == []
    chosen.float_op_types = ("LOGISTIC",)
    assert chosen.floated_outputs(()) == ["first", "second"]
    assert {o["dtype"] for o in chosen.quantize_bytes().outputs.values()} == {"float32"}
    chosen.float_op_types = ()
    assert {o["dtype"] for o in chosen.quantize_bytes().outputs.values()} == {"int8"}
    by_recipe = TfliteQuantizer(lowered.data, calibration, lowered.input_layout, ("LOGISTIC",), float_outputs=True)
    assert {o["dtype"] for o in by_recipe.quantize_bytes().outputs.values()} == {"float32"}
    pinned = TfliteQuantizer(lowered.data, calibration, lowered.input_layout, ("LOGISTIC",))
    assert {o["dtype"] for o in pinned.quantize_bytes().outputs.values()} == {"int8"}


def test_densenets_batch_norm_and_transition_pool_are_int8_ops_xnnpack_takes(tmp_path):
    """DenseNet's pattern — a concatenation, then BatchNorm → ReLU → 1×1 conv, then a 2×2 average pool — quantized
    to int8: the BatchNorm was MUL + ADD by per-tensor int8 constants (XNNPACK refused the ADD of a shift far
    smaller than its output: 62 partitions of DenseNet-121's 66), the pool an AVERAGE_POOL_2D (no int8 kernel in
    XNNPACK). As depthwise convolutions the whole graph is one partition, and it agrees with fp32."""
    from onnx import helper

    from edgecnn.runtime.xnnpack import delegation
    from tests.lowering.tflite_check import make_model

    rng = np.random.default_rng(0)
    c = 8
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["x", "a"], ["cat"], axis=1),
        helper.make_node("BatchNormalization", ["cat", "s", "b", "m", "v"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("Conv", ["r", "wb"], ["t"]),
        helper.make_node("AveragePool", ["t"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    inits = {
        "wa": rng.standard_normal((c // 2, c // 2, 3, 3)).astype(np.float32) * 0.3,
        "s": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "b": np.zeros(c, np.float32),  # a fresh network's shift: the ADD XNNPACK refused
        "m": rng.standard_normal(c).astype(np.float32) * 0.1,
        "v": rng.uniform(0.5, 2, c).astype(np.float32),
        "wb": rng.standard_normal((c, c, 1, 1)).astype(np.float32) * 0.3,
    }
    model = make_model(nodes, {"x": [1, c // 2, 8, 8]}, ["y"], inits)
    calibration = rng.standard_normal((32, c // 2, 8, 8)).astype(np.float32)
    quantized, actual, expected = _int8_run(model, calibration)
    assert set(quantized.op_counts) >= {"DEPTHWISE_CONV_2D"} and not {"ADD", "MUL", "AVERAGE_POOL_2D"} & set(
        quantized.op_counts
    ), quantized.op_counts
    path = tmp_path / "block.int8.tflite"
    path.write_bytes(quantized.data)
    split = delegation(path)
    assert split.partitions == 1 and split.undelegated == {}, split
    nchw = actual.reshape(len(calibration), 4, 4, c).transpose(0, 3, 1, 2).reshape(len(calibration), -1)  # NHWC out
    np.testing.assert_allclose(nchw, expected, atol=3 * quantized.output_scale)


@pytest.mark.parametrize("per_channel", [True, False])
def test_a_weight_split_in_slices_gets_the_integers_of_one_piece(per_channel):
    """ai-edge-quantizer's own path for tensors above 32 MiB failed on rank-4 scales (per channel, or one per
    tensor); the split takes slices through its function for small tensors: the same integers."""
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer.algorithms.uniform_quantize.uniform_quantize_tensor import uniform_quantize

    from edgecnn.lowering.tflite.large_weights import split_quantize

    weights = np.random.default_rng(0).standard_normal((10, 6, 3, 3)).astype(np.float32)
    axes = (1, 2, 3) if per_channel else (0, 1, 2, 3)
    scale = (np.abs(weights).max(axis=axes, keepdims=True) / 127).astype(np.float32)
    zero = np.zeros(scale.shape, np.int64)
    params = qtyping.UniformQuantParams(8, 0 if per_channel else None, scale, zero, symmetric=True)
    whole = uniform_quantize(weights, params)
    split = split_quantize(uniform_quantize, above=weights.nbytes // 3)(weights, params)
    assert split.dtype == whole.dtype and np.array_equal(split, whole)
    assert len(np.unique(split)) > 100  # real integers, not a constant


@pytest.mark.slow
def test_a_convolution_of_more_than_32_mib_of_weights_is_quantized(tmp_path):
    """A 3×3 convolution of 2048 → 512 channels (37.7 MB of weights, FCN-ResNet50's head) failed: 'input operand
    has more dimensions than allowed by the axis remapping'."""
    from onnx import TensorProto, helper, numpy_helper

    from edgecnn.lowering.tflite import convert
    from edgecnn.runtime import load

    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((512, 2048, 3, 3)) * 0.01).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2048, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 512, 4, 4])],
        [numpy_helper.from_array(weights, "w")],
    )
    lowered = convert(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    images = rng.standard_normal((4, 2048, 4, 4)).astype(np.float32)
    (tmp_path / "fp32.tflite").write_bytes(lowered.data)
    (tmp_path / "int8.tflite").write_bytes(quantize_tflite(lowered.data, images, lowered.input_layout).data)
    want = load(tmp_path / "fp32.tflite", layout=lowered.input_layout).run_all(images[:2])["y"]
    got = load(tmp_path / "int8.tflite", layout=lowered.input_layout).run_all(images[:2])["y"]
    cosine = float(np.dot(want.ravel(), got.ravel()) / np.linalg.norm(want) / np.linalg.norm(got))
    assert cosine > 0.99
