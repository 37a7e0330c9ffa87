"""Bad input on every command: one ``edgecnn: error:`` line, exit 1, no traceback, nothing written.

Each case of ``CASES`` is the command line a new user might type, the files it needs (made by a setup
function in the test's directory) and the words the error line must hold.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.conftest import (
    assert_clean_failure,
    files_under,
    png,
    png_header_only,
    run_edgecnn,
    run_export,
    tiny_onnx,
)

TINY = ["--format", "onnx", "--calib-size", "8", "--holdout", "4"]  # with mobilenet_v1 at α 0.25, 32 px
MV1 = ["mobilenet_v1", "--width", "0.25", "--resolution", "32", *TINY]
SWEEP_SPEC = (
    "models: [{name: mobilenet_v1, width: 0.25, resolution: 32}]\nprofiles: [x86-avx2]\nexport: {formats: onnx}\n"
)


@dataclass(frozen=True)
class Case:
    """A command line, the files it needs and the words its one error line must hold."""

    args: tuple[str, ...]
    message: str
    setup: Callable[[Path], object] | None = None
    env: tuple[tuple[str, str], ...] = ()


def _write(name: str, data: bytes | str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    return make


def _npz(name: str, **arrays: np.ndarray) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        np.savez(folder / name, **arrays)

    return make


def _mkdir(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).mkdir(parents=True)


def _recipe(**changes: object) -> Callable[[Path], None]:
    """A copy of the default recipe with ``changes``, as recipe.yaml."""

    def make(folder: Path) -> None:
        import yaml

        from edgecnn.config.recipes import recipes_dir

        data = yaml.safe_load((recipes_dir() / "default.yaml").read_text(encoding="utf-8"))
        (folder / "recipe.yaml").write_text(yaml.safe_dump({**data, **changes}), encoding="utf-8")

    return make


def _results(rows: object) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        payload = {"schema": "edgecnn-bench-results/1", "results": rows}
        (folder / "results.json").write_text(json.dumps(payload), encoding="utf-8")

    return make


def _probe(**changes: object) -> list[dict[str, object]]:
    row = {"name": "conv", "dtype": "fp32", "ops": [["conv", "fp32", 1e6, 1e5, 1e4, 16, 9]], "p50_ms": 1.0}
    return [{**row, **changes}]


def _profile_with(overhead: str) -> Callable[[Path], None]:
    """x86-avx2's profile as inf.yaml, its fp32 overhead set to ``overhead``."""

    def make(folder: Path) -> None:
        import re

        from edgecnn.config.profiles import profiles_dir

        text = (profiles_dir() / "x86-avx2.yaml").read_text(encoding="utf-8").replace("name: x86-avx2", "name: inf")
        text = re.sub(r"(fp32:\n(?:.*\n)*?\s+overhead_us:) [^\n]+", rf"\1 {overhead}", text, count=1)
        (folder / "inf.yaml").write_text(text, encoding="utf-8")

    return make


def _profile_budget(budget: str) -> Callable[[Path], None]:
    """x86-avx2's profile as big.yaml, its latency budget ``budget``."""

    def make(folder: Path) -> None:
        from edgecnn.config.profiles import profiles_dir

        text = (profiles_dir() / "x86-avx2.yaml").read_text(encoding="utf-8").replace("name: x86-avx2", "name: big")
        text = text.replace("latency_budget_ms: 20", f"latency_budget_ms: {budget}")
        (folder / "big.yaml").write_text(text, encoding="utf-8")

    return make


def _fifo(name: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)

    return make


def _scalar_output_onnx(path: Path) -> None:
    """x (1×3×8×8) → ReduceMean over every axis → y, whose declared type has no shape (so only a run finds it)."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("ReduceMean", ["x"], ["y"], keepdims=0)
    graph = helper.make_graph(
        [node],
        "scalar",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _labelled_data(folder: Path) -> None:
    """ref.onnx of 10 classes and data whose labels go up to 12."""
    tiny_onnx(folder / "ref.onnx", classes=10)
    images = np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32)
    np.savez(folder / "data.npz", images=images, labels=np.array([0, 1, 12, 3]))


def _odd_input_onnx(kind: str) -> Callable[[Path], None]:
    """m.onnx with two float inputs (``two``) or one int64 input (``int64``), and data for it."""

    def make(folder: Path) -> None:
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        value = helper.make_tensor_value_info
        weight = numpy_helper.from_array(np.ones((10, 192), np.float32), "w")
        if kind == "two":
            nodes = [helper.make_node("Add", ["a", "b"], ["s"])]
            inputs = [value("a", TensorProto.FLOAT, [1, 3, 8, 8]), value("b", TensorProto.FLOAT, [1, 3, 8, 8])]
        else:
            nodes = [helper.make_node("Cast", ["a"], ["s"], to=TensorProto.FLOAT)]
            inputs = [value("a", TensorProto.INT64, [1, 3, 8, 8])]
        nodes += [helper.make_node("Flatten", ["s"], ["f"]), helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)]
        graph = helper.make_graph(nodes, kind, inputs, [value("y", TensorProto.FLOAT, [1, 10])], [weight])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(folder / "m.onnx"))
        np.savez(folder / "data.npz", images=np.zeros((4, 3, 8, 8), np.float32))

    return make


LONG = "x" * 230  # under NAME_MAX (255), over what leaves room for the partial written beside it


def _odd_graph(kind: str) -> Callable[[Path], None]:
    """m.onnx that ONNX Runtime loads but edgecnn cannot check: a zero-size input dim (``zero``), no outputs
    (``none``), an ArgMax's int64 output (``argmax``), a Conv whose dilation no input fits (``dilation``), one
    output listed twice (``twice``), its input as an output too (``through``)."""

    def make(folder: Path) -> None:
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        value = helper.make_tensor_value_info
        shape = [1, 3, 0, 8] if kind == "zero" else [1, 3, 8, 8]
        inits = [numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")]
        nodes = [
            helper.make_node("Conv", ["x", "w"], ["y"], dilations=[2**20, 2**20] if kind == "dilation" else [1, 1])
        ]
        out = [value("y", TensorProto.FLOAT, ["n", "c", "h", "w"])]
        if kind == "twice":
            out = out * 2
        if kind == "through":
            out.append(value("x", TensorProto.FLOAT, shape))
        if kind == "argmax":
            nodes.append(helper.make_node("ArgMax", ["y"], ["z"], axis=1))
            out = [value("z", TensorProto.INT64, ["n", "h", "w"])]
        graph = helper.make_graph(
            nodes, kind, [value("x", TensorProto.FLOAT, shape)], [] if kind == "none" else out, inits
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(folder / "m.onnx"))
        np.savez(folder / "data.npz", images=np.zeros((4, 3, 8, 8), np.float32), labels=np.zeros(4, np.int64))

    return make


def _broken_weights(kind: str) -> Callable[[Path], None]:
    """w.pt for MV1: a NaN in the first conv (``nan``) or every float tensor cast to int8 (``int8``)."""

    def make(folder: Path) -> None:
        import torch

        from edgecnn.models.registry import create_model

        state = create_model("mobilenet_v1", width=0.25, resolution=32).state_dict()
        if kind == "nan":
            state["features.0.0.weight"][0] = float("nan")
        else:
            state = {k: v.to(torch.int8) if v.is_floating_point() else v for k, v in state.items()}
        torch.save(state, folder / "w.pt")

    return make


def _results_with(**fields: object) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        payload = {"schema": "edgecnn-bench-results/1", "results": _probe(), **fields}
        (folder / "results.json").write_text(json.dumps(payload), encoding="utf-8")

    return make


def _relu_onnx(shape: list) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        import onnx
        from onnx import TensorProto, helper

        value = helper.make_tensor_value_info
        graph = helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "relu",
            [value("x", TensorProto.FLOAT, shape)],
            [value("y", TensorProto.FLOAT, shape)],
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(folder / "m.onnx"))

    return make


def _quantized_onnx(folder: Path) -> None:
    """m.onnx: a QDQ graph, as an int8 export writes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    value = helper.make_tensor_value_info
    scale, zero = numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.uint8(128), "z")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [value("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [value("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        [scale, zero],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(folder / "m.onnx"))


def _fp32_int8_pair(folder: Path) -> None:
    """f.onnx (a tiny classifier), q.onnx (its QDQ int8 twin), d.npz (data for both) and bad.npz (other shapes)."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    tiny_onnx(folder / "f.onnx")
    data = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    np.savez(folder / "d.npz", images=data, labels=np.zeros(8, np.int64))
    np.savez(folder / "bad.npz", images=np.zeros((8, 3, 16, 16), np.float32))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.samples = iter({"input": sample[None]} for sample in data)

        def get_next(self) -> dict | None:
            return next(self.samples, None)

    quantize_static(str(folder / "f.onnx"), str(folder / "q.onnx"), Reader())


def _no_opset_onnx(folder: Path) -> None:
    _relu_onnx([1, 3, 8, 8])(folder)
    import onnx

    model = onnx.load(str(folder / "m.onnx"))
    del model.opset_import[:]
    onnx.save(model, str(folder / "m.onnx"))


def _opset_99(folder: Path) -> None:
    """m.onnx stamped with ai.onnx opset 99, which no ONNX Runtime release supports."""
    import onnx

    model = onnx.load(str(tiny_onnx(folder / "m.onnx")))
    model.opset_import[0].version = 99
    onnx.save(model, str(folder / "m.onnx"))


def _tiny(name: str) -> Callable[[Path], Path]:
    return lambda folder: tiny_onnx(folder / name)


def _tiny_and_data(folder: Path) -> None:
    """m.onnx (a 10-class classifier) and d.npz: images, no ground truth."""
    tiny_onnx(folder / "m.onnx")
    np.savez(folder / "d.npz", images=np.random.default_rng(0).random((8, 3, 8, 8), dtype=np.float32))


def _tiny_labelled(samples: int, key: str = "labels") -> Callable[[Path], None]:
    """m.onnx (a 10-class classifier) and d.npz: ``samples`` images with a class label each, under ``key``."""

    def make(folder: Path) -> None:
        tiny_onnx(folder / "m.onnx")
        rng = np.random.default_rng(0)
        images = rng.random((samples, 3, 8, 8), dtype=np.float32)
        np.savez(folder / "d.npz", images=images, **{key: rng.integers(0, 10, samples)})

    return make


_tiny_and_labels = _tiny_labelled(16)
_misspelt_labels = _tiny_labelled(8, "label")  # a key edgecnn does not read


def _segmenter(folder: Path) -> None:
    """s.onnx (a 1×1 Conv: 4 class scores per pixel, N×4×8×8) and d.npz: 8 images."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 1, 1)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["seg"])],
        "seg",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("seg", TensorProto.FLOAT, [1, 4, 8, 8])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(folder / "s.onnx"))
    np.savez(folder / "d.npz", images=np.random.default_rng(0).random((8, 3, 8, 8), dtype=np.float32))


def _two_models(folder: Path) -> None:
    tiny_onnx(folder / "ref.onnx", classes=10)
    tiny_onnx(folder / "target.onnx", classes=5)
    np.savez(folder / "data.npz", images=np.zeros((4, 3, 8, 8), np.float32))


def _unknown_op(folder: Path) -> None:
    """An ONNX file that parses but that the ONNX checker rejects (an operator no opset has)."""
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["input"], ["logits"])],
        "bad",
        [value("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [value("logits", TensorProto.FLOAT, [1, 10])],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(folder / "m.onnx"))


def _pickled_object(folder: Path) -> None:
    import argparse

    import torch

    torch.save({"args": argparse.Namespace(lr=0.1)}, folder / "obj.pt")  # a training script's checkpoint


def _user_module(source: str) -> Callable[[Path], Path]:
    return _write("mine.py", source)


def _empty_graph(folder: Path) -> None:
    """m.onnx: a valid model whose graph has no input, node or output."""
    import onnx
    from onnx import helper

    graph = helper.make_graph([], "empty", [], [])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "m.onnx")


def _checkpoint(folder: Path) -> None:
    """w.pt: what torch.save writes (a state dict)."""
    import torch

    torch.save({"w": torch.zeros(2)}, folder / "w.pt")


def _net(forward: str) -> Callable[[Path], Path]:
    """mine.py: a Conv2d(3, 4, 3) whose forward returns ``forward`` (of ``y = self.conv(x)``)."""
    return _write(
        "mine.py",
        "import torch\n\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        f"        self.conv = torch.nn.Conv2d(3, 4, 3)\n\n    def forward(self, x):\n        y = self.conv(x)\n"
        f"        return {forward}\n",
    )


def _graph_of(kind: str) -> Callable[[Path], None]:
    """m.onnx and data.npz for it: an output that is a scalar (``scalar``) or NaN for every input (``nan``)."""

    def make(folder: Path) -> None:
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        value = helper.make_tensor_value_info
        if kind == "scalar":
            nodes, shape, inits = [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)], [], []
        else:  # sqrt(-1 - |x|)
            nodes = [
                helper.make_node("Abs", ["x"], ["a"]),
                helper.make_node("Sub", ["m", "a"], ["b"]),
                helper.make_node("Sqrt", ["b"], ["y"]),
            ]
            shape, inits = [1, 3, 8, 8], [numpy_helper.from_array(np.float32(-1), "m")]
        graph = helper.make_graph(
            nodes, kind, [value("x", TensorProto.FLOAT, [1, 3, 8, 8])], [value("y", TensorProto.FLOAT, shape)], inits
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(folder / "m.onnx"))
        np.savez(folder / "data.npz", images=np.zeros((4, 3, 8, 8), np.float32))

    return make


def _beside_manifest(model: object) -> Callable[[Path], None]:
    """m.onnx with data.npz and a manifest.json beside it that lists m.onnx, its ``model`` entry ``model``."""

    def make(folder: Path) -> None:
        tiny_onnx(folder / "m.onnx")
        np.savez(folder / "data.npz", images=np.zeros((4, 3, 8, 8), np.float32))
        manifest = {"artifacts": {"int8_onnx": {"path": "m.onnx"}}, "model": model}
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    return make


def _head(shape: list[int], sigmoid: bool = False) -> Callable[[Path], None]:
    """m.onnx, a Conv(3→4, 3×3) of 1×3×8×8 [then a Sigmoid] reshaped to ``shape`` (a detection head, maps, a 1-D
    output), and data.npz of 4 random images."""

    def make(folder: Path) -> None:
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        rng = np.random.default_rng(0)
        inits = [
            numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(np.array(shape, np.int64), "shape"),
        ]
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])]
        if sigmoid:
            nodes.append(helper.make_node("Sigmoid", ["c"], ["s"]))
        nodes.append(helper.make_node("Reshape", [nodes[-1].output[0], "shape"], ["y"]))
        value = helper.make_tensor_value_info
        graph = helper.make_graph(
            nodes, "head", [value("x", TensorProto.FLOAT, [1, 3, 8, 8])], [value("y", TensorProto.FLOAT, shape)], inits
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(folder / "m.onnx"))
        np.savez(folder / "data.npz", images=rng.random((4, 3, 8, 8), dtype=np.float32))

    return make


def _suffixless(folder: Path) -> None:
    """m.onnx, the same model as m.txt, and data.npz."""
    tiny_onnx(folder / "m.onnx")
    (folder / "m.txt").write_bytes((folder / "m.onnx").read_bytes())
    np.savez(folder / "data.npz", images=np.zeros((4, 3, 8, 8), np.float32))


def _link(name: str, target: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)

    return make


HUGE_NUMBER = "1" * 5000  # more digits than Python converts to an int

NOT_UTF8 = b"family: \xff\xfe\n"


def _labels_input(folder: Path) -> None:
    """m.onnx whose second input is named ``labels`` (a key of ground truth in an .npz), and data.npz that gives
    it under that key."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    value = helper.make_tensor_value_info
    nodes = [
        helper.make_node("Add", ["image", "labels"], ["s"]),
        helper.make_node("Flatten", ["s"], ["f"]),
        helper.make_node("Gemm", ["f", "w"], ["y"], transB=1),
    ]
    inputs = [value(name, TensorProto.FLOAT, [1, 3, 8, 8]) for name in ("image", "labels")]
    weight = numpy_helper.from_array(np.ones((10, 192), np.float32), "w")
    graph = helper.make_graph(nodes, "labels", inputs, [value("y", TensorProto.FLOAT, [1, 10])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(folder / "m.onnx"))
    images = np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32)
    np.savez(folder / "data.npz", image=images, labels=images)


def _outputs_named(names: tuple[str, ...]) -> Callable[[Path], None]:
    """m_NAMES.onnx: a Relu of its 1×3×8×8 input under each output name of ``names``; and data.npz."""

    def make(folder: Path) -> None:
        import onnx
        from onnx import TensorProto, helper

        value = helper.make_tensor_value_info
        nodes = [helper.make_node("Relu", ["in"], [name]) for name in names]
        outputs = [value(name, TensorProto.FLOAT, [1, 3, 8, 8]) for name in names]
        graph = helper.make_graph(nodes, "relu", [value("in", TensorProto.FLOAT, [1, 3, 8, 8])], outputs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
        onnx.save(model, str(folder / f"m_{''.join(names)}.onnx"))
        np.savez(folder / "data.npz", images=np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32))

    return make


CASES: dict[str, Case] = {
    # --- export: names and options
    "unknown model": Case(("export", "mobilenet_v5"), "unknown model 'mobilenet_v5'; did you mean 'mobilenet_v2'"),
    "unknown profile": Case(("export", "mobilenet", "--profile", "raspberrypi3"), "unknown profile 'raspberrypi3'"),
    "unknown recipe": Case(("export", "mobilenet", "--recipe", "mobilenett"), "did you mean 'mobilenet'"),
    "unknown format": Case(("export", "mobilenet", "--format", "onnx,ortt"), "did you mean 'ort'"),
    "unknown method": Case(("export", "mobilenet", "--method", "entropi"), "did you mean 'entropy'"),
    "absurd phi": Case(("export", "efficientnet", "--phi", "99"), "phi must be a number from 0 to 8"),
    "absurd width": Case(("export", "mobilenet", "--width", "100"), "width must be a positive number ≤ 4"),
    "absurd resolution": Case(
        ("predict", "mobilenet_v1", "--resolution", "100000", "--profile", "x86-avx2"),
        "resolution must be a size in pixels from 8 to 8192",
    ),
    "absurd depth": Case(
        ("export", "efficientnet", "--phi", "1", "--depth", "50"), "depth must be a positive number ≤ 8"
    ),
    "absurd growth rate": Case(
        ("export", "densenet121", "--growth-rate", "4096"), "growth_rate must be a whole number from 1 to 256"
    ),
    "tflite option without tflite": Case(
        ("export", "mobilenet", "--format", "onnx,ort", "--nchw-io"), "--nchw-io applies to --format tflite"
    ),
    "tflite-io without tflite": Case(
        ("export", "mobilenet", "--format", "onnx", "--tflite-io", "float"), "--tflite-io"
    ),
    "option the model lacks": Case(("export", "resnet18", "--phi", "1"), "has no option phi"),
    "opset too old": Case(("export", "resnet18", "--opset", "11"), "--opset must be between 19 and 21"),
    "negative holdout": Case(("export", "resnet18", "--holdout", "-1"), "--holdout must be ≥ 0"),
    "calib size zero": Case(("export", "resnet18", "--calib-size", "0"), "--calib-size must be ≥ 1"),
    "agreement over one": Case(("export", "resnet18", "--min-agreement", "1.5"), "must be between 0 and 1"),
    "NaN max drop": Case(("export", "resnet18", "--max-drop", "nan"), "--max-drop must be ≥ 0 points"),
    "width not a number": Case(("export", "mobilenet", "--width", "wide"), "'wide' is not a valid float"),
    "stages not integers": Case(("export", "resnet50_dcnv2", "--stages", "a,b"), "expected a comma list of integers"),
    "missing MODEL": Case(("export",), "Missing argument 'MODEL'"),
    "unknown export option": Case(("export", "mobilenet", "--colour"), "No such option"),
    # --- export: input shape
    "input shape not integers": Case(("export", "resnet18", "--input-shape", "1,3,a,b"), "N,C,H,W integers"),
    "input shape of three": Case(("export", "resnet18", "--input-shape", "3,224,224"), "four positive integers"),
    "input shape absurd": Case(
        ("export", "tests.fixtures.tinynet:build_net", "--input-shape", "1,3,100000,100000"), "H and W ≤ 8192"
    ),
    "input shape beyond memory": Case(
        ("export", "tests.fixtures.tinynet:build_net", "--input-shape", "256,64,8192,8192"), "GiB available"
    ),
    # --- export: recipes and profiles as files
    "recipe opset 13": Case(
        ("export", *MV1, "--recipe", "recipe.yaml"), "opset: must be between 19 and 21", _recipe(opset=13)
    ),
    "recipe not UTF-8": Case(("export", "mobilenet", "--recipe", "r.yaml"), "is not UTF-8", _write("r.yaml", NOT_UTF8)),
    "recipe not YAML": Case(
        ("export", "mobilenet", "--recipe", "r.yaml"), "is not valid YAML", _write("r.yaml", "a: [")
    ),
    "profile is a directory": Case(("export", "mobilenet", "--profile", "p.yaml"), "is a directory", _mkdir("p.yaml")),
    "profile not UTF-8": Case(
        ("export", "mobilenet", "--profile", "p.yaml"), "is not UTF-8", _write("p.yaml", NOT_UTF8)
    ),
    # --- export: MODEL sources
    "unknown torchvision model": Case(("export", "torchvision:resnet5"), "did you mean 'resnet50'"),
    "import path without module": Case(("export", "no_such_pkg.mod:build"), "cannot import 'no_such_pkg.mod'"),
    "import path of a builtin": Case(("export", "os:system"), "not a factory of a torch.nn.Module"),
    "import path of a non-module class": Case(("export", "collections:OrderedDict"), "not a torch.nn.Module"),
    "import path missing attribute": Case(("export", "tests.fixtures.tinynet:nothing"), "has no attribute 'nothing'"),
    "factory returns no module": Case(
        ("export", "mine:build"), "returned int, not a torch.nn.Module", _user_module("def build():\n    return 3\n")
    ),
    "factory rejects num-classes": Case(
        ("export", "mine:build", "--num-classes", "3"),
        "takes no argument num_classes",
        _user_module("def build():\n    pass\n"),
    ),
    "factory needs arguments": Case(("export", "shutil:rmtree"), "needs argument(s) path"),
    "ONNX MODEL not ONNX": Case(("export", "model.onnx"), "is not an ONNX model", _write("model.onnx", b"\x00garbage")),
    "ONNX MODEL the checker rejects": Case(
        ("export", "m.onnx", *TINY), "m.onnx is not a valid ONNX model", _unknown_op
    ),
    "ONNX MODEL is a directory": Case(("export", "model.onnx"), "is a directory", _mkdir("model.onnx")),
    "ONNX MODEL missing": Case(("export", "model.onnx"), "does not exist"),
    "ONNX MODEL with weights": Case(
        ("export", "m.onnx", "--weights", "w.pt"), "do not apply", lambda folder: tiny_onnx(folder / "m.onnx")
    ),
    "ONNX MODEL other input shape": Case(
        ("export", "m.onnx", "--input-shape", "1,3,16,16"), "whose input is 1,3,8,8", lambda f: tiny_onnx(f / "m.onnx")
    ),
    "ONNX MODEL without its external data": Case(
        ("export", "x/m.onnx", *TINY),
        "keep its external data files beside it",
        lambda f: (
            tiny_onnx(f / "m.onnx", external=True),
            (f / "x").mkdir(),
            (f / "x/m.onnx").write_bytes((f / "m.onnx").read_bytes()),
        ),
    ),
    # --- export: weights
    "weights missing": Case(("export", "resnet18", "--weights", "nope.pt"), "weights file nope.pt does not exist"),
    "weights is a directory": Case(("export", "resnet18", "--weights", "w.pt"), "is a directory", _mkdir("w.pt")),
    "weights corrupt": Case(
        ("export", "resnet18", "--weights", "bad.pt"), "cannot be loaded", _write("bad.pt", "not a checkpoint")
    ),
    "weights with Python objects": Case(
        ("export", "resnet18", "--weights", "obj.pt"), "weights_only=False runs arbitrary code", _pickled_object
    ),
    # --- export: calibration data
    "calib missing": Case(("export", "resnet18", "--calib", "nowhere/"), "does not exist"),
    "calib empty folder": Case(("export", "resnet18", "--calib", "empty"), "has no images", _mkdir("empty")),
    "calib folder of text": Case(
        ("export", "resnet18", "--calib", "docs"), "1 other files", _write("docs/readme.txt", "hi")
    ),
    "calib wrong suffix": Case(
        ("export", "resnet18", "--calib", "c.txt"), "must be an image folder", _write("c.txt", "1")
    ),
    "calib unreadable image": Case(
        ("export", *MV1, "--calib", "imgs"),
        "is not a readable image",
        lambda f: (png(f / "imgs/a.png"), (f / "imgs/b.jpg").write_bytes(b"not a jpeg")),
    ),
    "calib decompression bomb": Case(
        ("export", *MV1, "--calib", "imgs"),
        "decompression bomb",
        lambda f: png_header_only(f / "imgs/a.png", 20000, 20000),
    ),
    "calib grey for RGB model": Case(
        ("export", *MV1, "--calib", "grey"),
        "is grey (PIL mode L) but the model takes 3",
        lambda f: png(f / "grey/a.png", "L"),
    ),
    "npz wrong shape": Case(
        ("export", *MV1, "--calib", "c.npz"),
        "must be N×3×32×32",
        _npz("c.npz", images=np.zeros((4, 3, 16, 16), np.float32)),
    ),
    "npz float64": Case(
        ("export", *MV1, "--calib", "c.npz"), "got float64", _npz("c.npz", images=np.zeros((4, 3, 32, 32)))
    ),
    "npz uint8 channels": Case(
        ("export", *MV1, "--calib", "c.npz"), "C=3", _npz("c.npz", images=np.zeros((4, 32, 32, 1), np.uint8))
    ),
    "npz without images": Case(
        ("export", *MV1, "--calib", "c.npz"),
        "has no 'images'",
        _npz("c.npz", pixels=np.zeros((2, 3, 32, 32), np.float32)),
    ),
    "npz with NaN": Case(
        ("export", *MV1, "--calib", "c.npz"), "NaN", _npz("c.npz", images=np.full((4, 3, 32, 32), np.nan, np.float32))
    ),
    "npz corrupt": Case(
        ("export", *MV1, "--calib", "c.npz"), "calibration file c.npz is not valid", _write("c.npz", b"PK\x03\x04junk")
    ),
    "npy of objects": Case(
        ("export", *MV1, "--calib", "c.npy"),
        "calibration file c.npy is not valid",
        lambda f: np.save(f / "c.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True),
    ),
    # --- drift
    "drift garbage ONNX": Case(
        ("drift", "g.onnx", "g.onnx", "--data", "d.npz"), "cannot load g.onnx", _write("g.onnx", b"garbage")
    ),
    "drift without data": Case(("drift", "a.onnx", "b.onnx"), "Missing option '--data'"),
    "drift missing target": Case(
        ("drift", "ref.onnx", "nope.onnx", "--data", "d.npz"), "artifact nope.onnx does not exist", _two_models
    ),
    "drift target is a directory": Case(
        ("drift", "ref.onnx", "t.onnx", "--data", "d.npz"), "is a directory", _mkdir("t.onnx")
    ),
    "drift different classes": Case(
        ("drift", "ref.onnx", "target.onnx", "--data", "data.npz"), "gives 10 outputs per image, TARGET", _two_models
    ),
    "drift synthetic data": Case(
        ("drift", "ref.onnx", "target.onnx", "--data", "synthetic"), "must be real data", _two_models
    ),
    "drift limit zero": Case(
        ("drift", "ref.onnx", "ref.onnx", "--data", "data.npz", "--limit", "0"), "--limit must be ≥ 1", _two_models
    ),
    "drift agreement over one": Case(
        ("drift", "a.onnx", "b.onnx", "--data", "d", "--min-agreement", "2"), "between 0 and 1"
    ),
    "drift NaN drop": Case(
        ("drift", "a.onnx", "b.onnx", "--data", "d", "--max-accuracy-drop", "nan"), "must be ≥ 0 points"
    ),
    # --- bench
    "bench garbage ONNX": Case(("bench", "g.onnx"), "cannot load g.onnx", _write("g.onnx", b"garbage")),
    "bench nothing": Case(("bench",), "no artifact to benchmark"),
    "bench missing artifact": Case(("bench", "nope.onnx"), "artifact nope.onnx does not exist"),
    "bench directory artifact": Case(("bench", "m.onnx"), "is a directory", _mkdir("m.onnx")),
    "bench suite without profile": Case(("bench", "--suite", "probes"), "needs --profile P and --out"),
    "bench zero rounds": Case(("bench", "m.onnx", "--rounds", "0"), "--rounds must be between 1", _tiny("m.onnx")),
    "bench zero threads": Case(
        ("bench", "m.onnx", "--threads", "0"), "--threads must be between 1 and 256", lambda f: tiny_onnx(f / "m.onnx")
    ),
    "bench bad port": Case(
        ("bench", "m.onnx", "--host", "pi@x", "--port", "70000"),
        "--port must be 1..65535",
        lambda f: tiny_onnx(f / "m.onnx"),
    ),
    "bench missing identity": Case(
        ("bench", "m.onnx", "--host", "pi@x", "--identity", "id"),
        "identity file id does not exist",
        lambda f: tiny_onnx(f / "m.onnx"),
    ),
    # --- plan
    "plan unknown family": Case(("plan", "mobilenett", "--profile", "x86-avx2"), "did you mean 'mobilenet'"),
    "plan unknown profile": Case(("plan", "mobilenet", "--profile", "rpi4"), "unknown profile 'rpi4'"),
    "plan zero budget": Case(
        ("plan", "mobilenet", "-p", "x86-avx2", "--budget-ms", "0"), "--budget-ms must be a positive"
    ),
    "plan NaN budget": Case(
        ("plan", "mobilenet", "-p", "x86-avx2", "--budget-ms", "nan"), "--budget-ms must be a positive"
    ),
    "plan negative memory": Case(
        ("plan", "mobilenet", "-p", "x86-avx2", "--memory-mb", "-5"), "--memory-mb must be a positive"
    ),
    "plan full headroom": Case(
        ("plan", "mobilenet", "-p", "x86-avx2", "--headroom", "1"), "--headroom must be in [0, 1)"
    ),
    # --- predict
    "predict missing file": Case(("predict", "m.onnx", "-p", "x86-avx2"), "does not exist"),
    "predict directory": Case(("predict", "m.onnx", "-p", "x86-avx2"), "is a directory", _mkdir("m.onnx")),
    "predict garbage ONNX": Case(("predict", "g.onnx", "-p", "x86-avx2"), "cannot read g.onnx", _write("g.onnx", b"x")),
    "predict unknown model": Case(("predict", "resnet19", "-p", "x86-avx2"), "did you mean"),
    "predict unknown dtype": Case(("predict", "resnet18", "-p", "x86-avx2", "--dtype", "int4"), "'int4' is not one of"),
    # --- calibrate-profile
    "results missing": Case(
        ("calibrate-profile", "r.json", "--base", "x86-avx2", "--out", "o.yaml"), "results file r.json does not exist"
    ),
    "results not UTF-8": Case(
        ("calibrate-profile", "r.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "is not UTF-8",
        _write("r.json", b"\xff\xfe{}"),
    ),
    "results not JSON": Case(
        ("calibrate-profile", "r.json", "--base", "x86-avx2", "--out", "o.yaml"), "is not JSON", _write("r.json", "{")
    ),
    "results other schema": Case(
        ("calibrate-profile", "r.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "not an edgecnn RESULTS.json",
        _write("r.json", "{}"),
    ),
    "results rows not mappings": Case(
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "results[0]: expected a mapping",
        _results([1, 2]),
    ),
    "results NaN latency": Case(
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "p50_ms must be a positive number, got nan",
        _results(_probe(p50_ms=float("nan"))),
    ),
    "results text latency": Case(
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "p50_ms must be a positive",
        _results(_probe(p50_ms="fast")),
    ),
    "results NaN op cost": Case(
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "ops are malformed",
        _results(_probe(ops=[["conv", "fp32", float("nan"), 1e5, 1e4, 16, 9]])),
    ),
    "calibrate unknown base": Case(
        ("calibrate-profile", "results.json", "--base", "x86-avx3", "--out", "o.yaml"),
        "did you mean 'x86-avx2'",
        _results(_probe()),
    ),
    # --- profiles, models, the group
    "profiles not UTF-8": Case(
        ("profiles",), "is not UTF-8", _write("profiles/bad.yaml", NOT_UTF8), (("EDGECNN_DEVICE_PROFILES", "profiles"),)
    ),
    "profiles bad option": Case(("profiles", "--yaml"), "No such option '--yaml'"),
    "profile with an infinite figure": Case(
        ("predict", "mobilenet_v1", "-p", "inf.yaml"), "latency.fp32.overhead_us: must be finite", _profile_with(".inf")
    ),
    "profile nested too deeply": Case(
        ("predict", "mobilenet_v1", "-p", "deep.yaml"),
        "is nested too deeply",
        _write("deep.yaml", "name: deep\nx: " + "[" * 5000 + "]" * 5000 + "\n"),
    ),
    "bench NaN budget": Case(("bench", "m.onnx", "--budget-s", "nan"), "--budget-s must be > 0", _tiny("m.onnx")),
    "models unknown pattern": Case(("models", "resnt"), "did you mean 'resnet'"),
    "models bad option": Case(("models", "--bogus"), "No such option"),
    # --- found by the second hostile pass
    "calib is a FIFO": Case(("export", *MV1, "--calib", "c.npz"), "is not a regular file", _fifo("c.npz")),
    "profiles folder missing": Case(
        ("profiles",), "EDGECNN_DEVICE_PROFILES=nope is not a directory", env=(("EDGECNN_DEVICE_PROFILES", "nope"),)
    ),
    "profiles folder of FIFOs": Case(
        ("export", *MV1, "--profile", "p"),
        "there are no profiles to choose from",
        _fifo("profiles/p.yaml"),
        env=(("EDGECNN_DEVICE_PROFILES", "profiles"),),
    ),
    "drift labels beyond the classes": Case(
        ("drift", "ref.onnx", "ref.onnx", "--data", "data.npz"), "the model has 10 classes", _labelled_data
    ),
    "drift two-input ONNX without data per input": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz"), "has no array for input(s) a, b", _odd_input_onnx("two")
    ),
    "drift int64-input ONNX": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz"), "is tensor(int64)", _odd_input_onnx("int64")
    ),
    "export int64-input ONNX": Case(
        ("export", "m.onnx", *TINY), "its input 'a' is int64, not float32", _odd_input_onnx("int64")
    ),
    "export OUT name too long": Case(("export", *MV1, "--out", LONG), "230 bytes long"),
    "export OUT folder name too long": Case(
        ("export", *MV1, "--out", f"{LONG * 2}/out"), "longer than the file system"
    ),
    "plan chart name too long": Case(
        ("plan", "mobilenet", "--profile", "raspberrypi4", "--budget-ms", "50", "--chart", f"{LONG}.png"), "bytes long"
    ),
    "calib name too long for the system": Case(("export", *MV1, "--calib", f"{LONG * 2}.npz"), "does not exist"),
    "recipe with a key twice": Case(
        ("export", *MV1, "--recipe", "r.yaml"), "key 'mean' appears twice", _write("r.yaml", "mean: [0]\nmean: [1]\n")
    ),
    "input shape with underscores": Case(("export", "resnet18", "--input-shape", "1_0,3,8,8"), "N,C,H,W integers"),
    "input shape in full-width digits": Case(("export", "resnet18", "--input-shape", "１,3,8,8"), "N,C,H,W integers"),
    "calib grey image with alpha": Case(
        ("export", *MV1, "--calib", "grey"), "is grey (PIL mode LA)", lambda f: png(f / "grey/a.png", "LA")
    ),
    "results of no fitted dtype": Case(
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "results have dtype int4",
        _results(_probe(dtype="int4")),
    ),
    "results latency that underflows": Case(
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "not a plausible latency",
        _results(_probe(p50_ms=1e-300)),
    ),
    # --- found by the third hostile pass
    "traced model returns indices": Case(
        ("export", "mine:Net", "--input-shape", "1,3,8,8", *TINY),
        "is int64, not float32",
        _write(
            "mine.py",
            "import torch\n\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.conv = torch.nn.Conv2d(3, 4, 3)\n\n    def forward(self, x):\n"
            "        return self.conv(x).argmax(1)\n",
        ),
    ),
    "negative seed": Case(("export", *MV1, "--seed", "-1"), "Invalid value for '--seed'"),
    "bench absurd threads": Case(
        ("bench", "m.onnx", "--threads", "100000000"), "--threads must be between 1 and 256", _tiny("m.onnx")
    ),
    "ONNX with a zero-size dim": Case(("export", "m.onnx", *TINY), "has a dimension of 0", _odd_graph("zero")),
    "ONNX without outputs": Case(("export", "m.onnx", *TINY), "it has no outputs", _odd_graph("none")),
    "ONNX that outputs indices": Case(("export", "m.onnx", *TINY), "'z' is int64, not float32", _odd_graph("argmax")),
    "drift on indices": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz"), "output 'z' is tensor(int64)", _odd_graph("argmax")
    ),
    "ONNX that cannot run": Case(
        ("export", "m.onnx", *TINY), "ONNX Runtime cannot run it on its input shape", _odd_graph("dilation")
    ),
    "weights with a NaN": Case(
        ("export", *MV1, "--weights", "w.pt"), "has NaN or infinite values", _broken_weights("nan")
    ),
    "weights cast to int8": Case(("export", *MV1, "--weights", "w.pt"), "holds int8 tensors", _broken_weights("int8")),
    "results threads in words": Case(
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "threads: expected a whole number from 1 to 256, got 'many'",
        _results_with(threads="many"),
    ),
    "results device a string": Case(
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "device: expected a mapping, got str",
        _results_with(device="pi"),
    ),
    "results rounds in words": Case(
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "rounds: expected a whole number ≥ 1, got 'abc'",
        _results(_probe(rounds="abc")),
    ),
    "bench free input dims": Case(
        ("bench", "m.onnx", "--runs", "2"), "has free dimensions (axis 2, axis 3)", _relu_onnx(["n", 3, "h", "w"])
    ),
    "bench input beyond memory": Case(
        ("bench", "m.onnx", "--runs", "2"), "needs 112 GiB", _relu_onnx([1, 3, 100000, 100000])
    ),
    "ONNX quantized already": Case(("export", "m.onnx", *TINY), "it is quantized already", _quantized_onnx),
    "calibrated profile not YAML": Case(
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "cal.txt"),
        "must end in .yaml",
        _results(_probe()),
    ),
    "calibration values overflow": Case(
        ("export", *MV1, "--calib", "c.npz"),
        "reach 1e+38, beyond any image's values",
        _npz("c.npz", images=np.full((12, 3, 32, 32), 1e38, np.float32)),
    ),
    "inspect ONNX without an opset": Case(("inspect", "m.onnx"), "it imports no opset", _no_opset_onnx),
    "profile number YAML reads as text": Case(
        ("predict", "resnet18", "--profile", "inf.yaml"), "YAML reads 1e2 as text: write 1.0e+02", _profile_with("1e2")
    ),
    "predict ONNX with a zero-size dim": Case(
        ("predict", "m.onnx", "-p", "x86-avx2"), "has a dimension of 0", _odd_graph("zero")
    ),
    "predict ONNX without outputs": Case(("predict", "m.onnx", "-p", "x86-avx2"), "has no outputs", _odd_graph("none")),
    "predict ONNX that cannot run": Case(
        ("predict", "m.onnx", "-p", "x86-avx2"), "check the model in ONNX Runtime", _odd_graph("dilation")
    ),
    "ONNX output listed twice": Case(
        ("export", "m.onnx", *TINY), "its outputs name y more than once: give each", _odd_graph("twice")
    ),
    # --- found by the fourth hostile pass
    "drift of a file without a known suffix": Case(
        ("drift", "m.onnx", "m.txt", "--data", "data.npz"), "unknown artifact format '.txt'", _suffixless
    ),
    "bench NaN connect timeout": Case(
        ("bench", "m.onnx", "--host", "pi@x", "--connect-timeout", "nan"),
        "--connect-timeout must be a number of seconds > 0",
        _tiny("m.onnx"),
    ),
    "bench infinite timeout": Case(
        ("bench", "m.onnx", "--timeout", "inf"), "--timeout must be a number of seconds > 0", _tiny("m.onnx")
    ),
    "host with a newline": Case(("bench", "m.onnx", "--host", "pi@x\nrm"), "not 'pi@x\\nrm'", _tiny("m.onnx")),
    "traced model returns a scalar": Case(
        ("export", "mine:Net", "--input-shape", "1,3,8,8", *TINY), "its output 'logits' is a scalar", _net("y.sum()")
    ),
    "drift on a scalar output": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz"), "output 'y' is a scalar", _graph_of("scalar")
    ),
    "ONNX that outputs NaN": Case(
        ("export", "m.onnx", *TINY), "the reference model's output 'y' is NaN or infinite", _graph_of("nan")
    ),
    "traced model returns NaN": Case(
        ("export", "mine:Net", "--input-shape", "1,3,8,8", *TINY),
        "parity ORT fp32 vs PyTorch: the reference model's output 'logits' is NaN",
        _net("y * float('nan')"),
    ),
    "drift REF that outputs NaN": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz"), "fix that model", _graph_of("nan")
    ),
    "manifest beside TARGET with std 0": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz"),
        "std: every value must be finite and > 0; fix or remove this manifest",
        _beside_manifest({"input_shape": [1, 3, 8, 8], "mean": [0, 0, 0], "std": [0, 0, 0]}),
    ),
    "manifest beside TARGET without a model": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz"),
        "model: expected a mapping, got NoneType; fix or remove",
        _beside_manifest(None),
    ),
    "manifest beside TARGET with too few means": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz"),
        "model.mean: has 2 values for 3 input channels",
        _beside_manifest({"input_shape": [1, 3, 8, 8], "mean": [0, 0], "std": [1, 1]}),
    ),
    "results with a huge number": Case(
        ("calibrate-profile", "r.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "holds a number too long to read",
        _write("r.json", '{"schema": "edgecnn-bench-results/1", "results": [' + HUGE_NUMBER + "]}"),
    ),
    "profile with a huge number": Case(
        ("predict", "mobilenet_v1", "-p", "p.yaml"),
        "holds a number too long to read",
        _write("p.yaml", f"name: p\nlatency: {HUGE_NUMBER}\n"),
    ),
    "plan chart named .svg": Case(
        ("plan", "mobilenet", "-p", "x86-avx2", "--chart", "c.svg"), "must end in .png, as edgecnn writes a PNG"
    ),
    "drift repaired model named .tflite": Case(
        ("drift", "a.onnx", "b.onnx", "--data", "d", "--fix", "--out", "fixed.tflite"), "name it fixed.onnx"
    ),
    "drift repaired .tflite named .onnx": Case(
        ("drift", "a.onnx", "b.tflite", "--data", "d", "--fix", "--out", "fixed.onnx"), "name it fixed.tflite"
    ),
    "profile a symbolic link loop": Case(
        ("predict", "mobilenet_v1", "-p", "p.yaml"), "is a broken symbolic link", _link("p.yaml", "p.yaml")
    ),
    "calibration folder of broken links": Case(
        ("export", *MV1, "--calib", "imgs"), "has no images; put images", _link("imgs/a.png", "missing.png")
    ),
    "bench an empty --input": Case(
        ("bench", "m.onnx", "--input", "in.npy", "--runs", "2"),
        "cannot read input in.npy: No data left in file; give an array saved with numpy.save",
        lambda f: (tiny_onnx(f / "m.onnx"), (f / "in.npy").write_bytes(b"")),
    ),
    "drift --fix with a missing --calib": Case(
        ("drift", "a.onnx", "b.onnx", "--data", "d", "--fix", "--calib", "nope.npz"),
        "calibration source nope.npz does not exist",  # before any work: the per-layer chart is not written
    ),
    "drift --fix with a --calib of other shapes": Case(
        ("drift", "f.onnx", "q.onnx", "--data", "d.npz", "--fix", "--calib", "bad.npz"),
        # read before the per-layer chart: no q.drift_layers.png
        "float32 images must be N×3×8×8 (normalised), got shape (8, 3, 16, 16)",
        _fp32_int8_pair,
    ),
    "predict a .tflite": Case(("predict", "m.tflite", "-p", "x86-avx2"), "predict costs ONNX graphs: give the .onnx"),
    "absurd num-classes": Case(
        ("export", "torchvision:resnet18", "--num-classes", "100000000000"), "not in the range 1<=x<=100000"
    ),
    "bench --python a directory": Case(
        ("bench", "m.onnx", "--python", ".", "--runs", "2"), "cannot run '.': permission denied", _tiny("m.onnx")
    ),
    "bench --python no Python": Case(
        ("bench", "m.onnx", "--python", "true", "--runs", "2"), "'true' gave no harness result", _tiny("m.onnx")
    ),
    "weights that are an ONNX file": Case(
        ("export", "resnet18", "--weights", "m.onnx"),
        "m.onnx cannot be loaded: it is not a PyTorch checkpoint",
        _tiny("m.onnx"),
    ),
    "weights empty": Case(("export", "resnet18", "--weights", "w.pt"), "not a PyTorch checkpoint", _write("w.pt", b"")),
    "bench --out a FIFO with --force": Case(  # as /dev/null: replaced by a plain file before this row
        ("bench", "m.onnx", "--runs", "2", "--out", "o.json", "--force"),
        "is a device, FIFO or socket, which edgecnn would replace",
        lambda f: (tiny_onnx(f / "m.onnx"), os.mkfifo(f / "o.json")),
    ),
    "MODEL of no module": Case(("export", ":build"), "names no module: write package.module:factory"),
    "MODEL a relative import": Case(("export", ".mine:build"), "names no module"),
    "unknown command": Case(("modls",), "Did you mean 'models'"),
    # --- found by the fifth hostile pass
    "detection of a 1-D output": Case(  # no batch axis: said before any task reads it (pass 6)
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz", "--task", "detection"),
        "output 'y' has 256 row(s) for a batch of 1 images: the model ignores the batch dimension N",
        _head([256]),
    ),
    "task of a superscript index": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz", "--task", "²=raw"),
        "--task names output '²', but the outputs are y (or 0…0)",
        _head([1, 256]),
    ),
    "one output given two tasks": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz", "--task", "y=raw,0=embedding"),
        "--task gives output 'y' two tasks (raw and embedding",
        _head([1, 256]),
    ),
    "task of commas only": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz", "--task", ","), "--task ',' names no task", _head([1, 256])
    ),
    "detection head of negative widths": Case(  # not even the model against itself matched: exit 3
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz", "--task", "detection"),
        "have a negative width or height, so its head is not yolo's centre-x, y, width, height layout",
        _head([1, 8, 32]),
    ),
    "detection score threshold over every score": Case(  # no detections passed as F1 1.0
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz", "--task", "detection", "--score-threshold", "2"),
        "--score-threshold 2.0 keeps none of the reference's detections",
        _head([1, 8, 32], sigmoid=True),
    ),
    "mask threshold outside the maps": Case(  # empty masks passed as mIoU 1.0
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz", "--task", "segmentation", "--mask-threshold", "1e300"),
        "puts every pixel of the reference's maps outside the mask",
        _head([1, 1, 16, 16]),
    ),
    "classification of maps": Case(  # was top-1 over every pixel of every class
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz", "--task", "classification"),
        "classification reads N×K logits of K ≥ 2 classes, not 4×4×8×8",
        _head([1, 4, 8, 8]),
    ),
    "predict free input dims": Case(  # was 0.00 ms
        ("predict", "m.onnx", "-p", "x86-avx2"),
        "input 'x' has free dimensions (n, h, w)",
        _relu_onnx(["n", 3, "h", "w"]),
    ),
    "predict an input without a shape": Case(
        ("predict", "m.onnx", "-p", "x86-avx2"), "input 'x' has no shape", _relu_onnx(None)
    ),
    "ONNX that outputs its input": Case(  # was exit 2, 'Graph is not a DAG'
        ("export", "m.onnx", *TINY), "its output(s) x are its input(s) passed through", _odd_graph("through")
    ),
    "one input shape for a two-input forward": Case(  # was the forward's TypeError, blamed on the user's code
        ("export", "tests.fixtures.multihead:build_two_inputs", "--input-shape", "1,3,8,8", *TINY),
        "takes 2 inputs (image, depth): give --input-shape NAME=N,C,H,W once per input",
    ),
    "inspect one input shape for a two-input forward": Case(
        ("inspect", "tests.fixtures.multihead:build_two_inputs", "--input-shape", "image=1,3,8,8"),
        "takes 2 inputs (image, depth)",
    ),
    "input shape of no name": Case(
        ("export", "m.onnx", *TINY, "--input-shape", "=1,3,8,8", "--input-shape", "b=1,3,8,8"),
        "--input-shape '=1,3,8,8' names no input",
        _odd_input_onnx("two"),
    ),
    # --- found by the sixth hostile pass
    "async factory": Case(  # was 'returned coroutine' and two RuntimeWarnings
        ("export", "mine:build", "--input-shape", "1,3,8,8", *TINY),
        "MODEL 'mine:build' is an async function",
        _user_module("import torch\n\nasync def build():\n    return torch.nn.Conv2d(3, 4, 3)\n"),
    ),
    "model that ignores the batch": Case(  # was exit 2, a failed parity check
        ("export", "mine:Net", "--input-shape", "1,3,8,8", *TINY),
        "has 1 row(s) for a batch of 6 images: the model ignores the batch dimension N",
        _net("y[:1].flatten(1)"),
    ),
    "export ONNX input without a shape": Case(  # was 'has shape [], not N,C,H,W'
        ("export", "m.onnx", *TINY), "m.onnx has no shape (the file gives none", _relu_onnx(None)
    ),
    "drift ONNX input without a shape": Case(  # was 'has input shape []'
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz"),
        "input 'x' has no shape (or is a scalar)",
        lambda f: (_relu_onnx(None)(f), np.savez(f / "data.npz", images=np.zeros((4, 3, 8, 8), np.float32))),
    ),
    "drift --input-shape of two files": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--input-shape", "1,3,8,8"),
        "--input-shape applies to a PyTorch REF or TARGET",
        _tiny("m.onnx"),
    ),
    "drift --weights for a file REF": Case(  # was ignored: exit 0 with a --weights that does not exist
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--weights", "w.pt"),
        "m.onnx is a model file: --weights, --num-classes and --in-chans apply to a PyTorch REF",
        _tiny("m.onnx"),
    ),
    "input named labels under the key of ground truth": Case(  # was 'labels apply to single-input classifiers'
        ("drift", "m.onnx", "m.onnx", "--data", "data.npz"),
        "'labels' is the key of ground truth; save the array of the model's input 'labels' as 'input:labels'",
        _labels_input,
    ),
    "outputs that share only some names": Case(  # was paired by position: y against x, z against y
        ("drift", "m_xy.onnx", "m_yz.onnx", "--data", "data.npz"),
        "share only some names (y): edgecnn pairs outputs by name, or by position when no name is shared",
        lambda f: (_outputs_named(("x", "y"))(f), _outputs_named(("y", "z"))(f)),
    ),
    "task of no output without int8": Case(  # was ignored with --no-quantize, found at the drift stage otherwise
        ("export", "m.onnx", "--format", "onnx", "--no-quantize", "--task", "boxes=detection"),
        "--task applies to the int8 artifacts, but --no-quantize leaves them out: drop --no-quantize, or drop --task",
        _tiny("m.onnx"),
    ),
    "task of no output": Case(
        ("export", "m.onnx", *TINY, "--task", "boxes=detection"),
        "--task names output 'boxes', but the outputs are logits",
        _tiny("m.onnx"),
    ),
    "drift --calib without --fix": Case(  # was ignored, as --out was
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--calib", "c.npz", "--out", "r.onnx"),
        "--calib, --out apply to the repair, but the repair runs only with --fix: add --fix, or drop them",
        _tiny("m.onnx"),
    ),
    "plan budget beyond any device": Case(  # was exit 0, matplotlib's overflow warnings and a chart of nothing
        ("plan", "mobilenet", "-p", "x86-avx2", "--budget-ms", "1e300"), "--budget-ms must be at most 3.6e+06"
    ),
    "plan chart named only .png": Case(  # was "must end in .png …: name it .png.png"
        ("plan", "mobilenet", "-p", "x86-avx2", "--chart", ".png"), "output .png is only a suffix: give it a name"
    ),
    "results of no rows": Case(  # was "its 0 results have dtype none"
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "RESULTS.json holds no results: run `edgecnn bench --suite probes",
        _results([]),
    ),
    "results a FIFO": Case(  # was a read that waited for ever
        ("calibrate-profile", "r.json", "--base", "x86-avx2", "--out", "o.yaml"),
        "results file r.json is not a regular file",
        _fifo("r.json"),
    ),
    "input shape against the resolution": Case(  # was exported at 16×16, its manifest saying resolution 32
        ("export", *MV1, "--input-shape", "1,3,16,16"),
        "--input-shape 1,3,16,16 is 16×16, but --resolution makes MODEL 'mobilenet_v1' 32×32",
    ),
    "input shape against in-chans": Case(  # --in-chans 1 was dropped for the shape's C=3
        ("export", "tests.fixtures.tinynet:build_net", "--in-chans", "1", "--input-shape", "1,3,8,8", *TINY),
        "--input-shape 1,3,8,8 has C=3, but --in-chans is 1",
    ),
    "recipe of 0-255 mean and std": Case(  # was exit 0: every image normalised to one flat value
        ("export", *MV1, "--recipe", "recipe.yaml"),
        "mean: values are of pixels scaled to [0, 1], so from 0 to 1, got 123.675 (for 0–255 values, divide by 255)",
        _recipe(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    ),
    "recipe of a std near 0": Case(  # was exit 2, the model blamed for the infinite images the std made
        ("export", *MV1, "--recipe", "recipe.yaml"), "std: values are of pixels", _recipe(std=[1e-300, 1, 1])
    ),
    "int8 option without int8": Case(  # was ignored: an fp32 export, exit 0
        ("export", "mobilenet_v1", "--width", "0.25", "--format", "onnx", "--no-quantize", "--method", "entropy"),
        "--method applies to the int8 artifacts, but --no-quantize leaves them out",
    ),
    "profile budget beyond any device": Case(  # was exit 0 with matplotlib's overflow warnings, as --budget-ms
        ("plan", "mobilenet", "-p", "big.yaml"),
        "latency_budget_ms: must be at most 3.6e+06 ms, got 1e+300",
        _profile_budget("1.0e+300"),
    ),
    "bench SSH option without a host": Case(  # was ignored: timed here
        ("bench", "m.onnx", "--runs", "2", "--port", "2222"),
        "--port applies to a device over SSH, but the run is here: add --host USER@HOST, or drop --port",
        _tiny("m.onnx"),
    ),
    "bench --profile without --suite": Case(
        ("bench", "m.onnx", "--runs", "2", "--profile", "x86-avx2"),
        "--profile applies to --suite probes",
        _tiny("m.onnx"),
    ),
    "drift --chart with --no-layers": Case(  # was exit 0 and no chart
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--no-layers", "--chart", "c.png"),
        "--chart applies to the per-layer figures, but --no-layers leaves them out: drop --no-layers, or drop --chart",
        _tiny("m.onnx"),
    ),
    # every option the run's path does not use is an error (edgecnn/applies.py), the typed default values too
    "export segmentation option for a classifier": Case(  # real data: a pass mark needs a judged check first
        (
            "export",
            "m.onnx",
            "--calib",
            "d.npz",
            "--format",
            "onnx",
            "--calib-size",
            "4",
            "--holdout",
            "2",
            "--min-miou",
            "0.5",
        ),
        "--min-miou applies to a segmentation output, but the outputs are judged as classification (logits): give "
        "--task OUTPUT=segmentation if one is, or drop --min-miou",
        _tiny_and_data,
    ),
    "export pass mark of a check not judged": Case(  # was a warning 'thresholds not applied' and exit 0
        ("export", "m.onnx", *TINY, "--min-miou", "0.5"),
        "--min-miou applies to a judged drift check, but the drift check is not judged (calibration data is "
        "synthetic): give real --calib data",
        _tiny("m.onnx"),
    ),
    "export decoder for a classifier": Case(  # --decoder's default could not be told from a typed one
        ("export", "m.onnx", *TINY, "--decoder", "yolo"),
        "--decoder applies to a detection output, but the outputs are judged as classification (logits)",
        _tiny("m.onnx"),
    ),
    "export max drop without ground truth": Case(
        ("export", "m.onnx", *TINY, "--max-drop", "2"),
        "--max-drop applies to data with ground truth, but the calibration data has none",
        _tiny("m.onnx"),
    ),
    "export dynamic batch of an ONNX model": Case(
        ("export", "m.onnx", *TINY, "--dynamic-batch"),
        "--dynamic-batch applies to a traced model, but an ONNX MODEL keeps its own input shape",
        _tiny("m.onnx"),
    ),
    "export deform lowering of a model without one": Case(
        ("export", "m.onnx", *TINY, "--deform", "gather"),
        "--deform applies to a model with deformable convolutions, but this model has no DeformConv: drop --deform",
        _tiny("m.onnx"),
    ),
    "drift detection option for a classifier": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--min-f1", "0.5", "--nms-iou", "0.45"),
        "--min-f1, --nms-iou apply to a detection output, but the outputs are judged as classification (logits)",
        _tiny_and_data,
    ),
    "drift max drop without ground truth": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--max-drop", "2"),
        "--max-drop applies to data with ground truth, but --data has none",
        _tiny_and_data,
    ),
    "drift fix of an fp32 target": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--fix"),
        "--fix applies to an int8 TARGET, but TARGET is not int8",
        _tiny_and_data,
    ),
    "drift force of default names": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--force"),
        "--force applies to a named output, but the default names beside TARGET are always replaced",
        _tiny_and_data,
    ),
    "bench connect timeout without a host": Case(  # a typed default value is given too
        ("bench", "m.onnx", "--runs", "2", "--connect-timeout", "10"),
        "--connect-timeout applies to a device over SSH",
        _tiny("m.onnx"),
    ),
    "bench no-xnnpack without a tflite": Case(
        ("bench", "m.onnx", "--runs", "2", "--no-xnnpack"),
        "--no-xnnpack applies to a .tflite, but no ARTIFACT is one",
        _tiny("m.onnx"),
    ),
    "bench force without out": Case(
        ("bench", "m.onnx", "--runs", "2", "--force"), "--force applies to --out", _tiny("m.onnx")
    ),
    "bench input with the suite": Case(
        ("bench", "--suite", "probes", "--profile", "x86-avx2", "--out", "r.json", "--input", "x.npy"),
        "--input applies to ARTIFACTs, but --suite builds its own models",
    ),
    "plan force without chart": Case(("plan", "mobilenet", "-p", "x86-avx2", "--force"), "--force applies to --chart"),
    # pass 7: options the rule still let through, each was exit 0 with the option unused
    "export max drop for an embedding": Case(  # labels are read only by a lone classification output
        ("export", "m.onnx", *TINY, "--calib", "d.npz", "--task", "logits=embedding", "--max-drop", "2"),
        "--max-drop against per-sample labels applies to a model whose only output is a classification, but the "
        "outputs are judged as embedding (logits): give --task OUTPUT=classification if one is, or drop --max-drop",
        _tiny_and_labels,
    ),
    "drift max drop for a raw output": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--task", "raw", "--max-drop", "2"),
        "--max-drop against per-sample labels applies to a model whose only output is a classification",
        _tiny_and_labels,
    ),
    "drift chart of an fp32 target": Case(  # no per-layer figures, so no chart
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--chart", "c.png"),
        "--chart applies to an int8 TARGET, but TARGET is not int8",
        _tiny_and_data,
    ),
    "drift no-layers of an fp32 target": Case(
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--no-layers"),
        "--no-layers applies to an int8 TARGET, but TARGET is not int8",
        _tiny_and_data,
    ),
    "drift --layers on an fp32 target": Case(  # --layers typed: the default, but given, and it does nothing here
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--layers"),
        "--layers applies to an int8 TARGET, but TARGET is not int8",
        _tiny_and_data,
    ),
    "drift --profile on an fp32 target": Case(  # it picks int8 kernels and a repair's float ops: none here
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz", "--profile", "raspberrypi4"),
        "--profile applies to an int8 TARGET, but TARGET is not int8",
        _tiny_and_data,
    ),
    "export calib-size beyond the data": Case(  # was silently 12 samples
        ("export", "m.onnx", "--format", "onnx", "--calib", "d.npz", "--calib-size", "100", "--holdout", "4"),
        "--calib-size 100 asks for more samples than the calibration data has: 16 in all, 4 of them held out: "
        "give --calib-size ≤ 12",
        _tiny_and_labels,
    ),
    "export holdout beyond the data": Case(  # was silently 4 held out
        ("export", "m.onnx", "--format", "onnx", "--calib", "d.npz", "--holdout", "15"),
        "--holdout 15 asks for more samples than the calibration data can spare: it has 16, and 12 are kept to "
        "calibrate: give --holdout ≤ 4",
        _tiny_and_labels,
    ),
    "factory ignores num-classes": Case(  # was a 4-class model from --num-classes 7
        ("export", "mine:build", "--num-classes", "7", "--input-shape", "1,3,8,8", *TINY),
        "--num-classes 7 was passed to MODEL mine:build, but its classification output gives other class counts "
        "('logits' 4): the factory ignores num_classes",
        _write(
            "mine.py",
            "import torch\n\ndef build(**kwargs):\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), "
            "torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())\n",
        ),
    ),
    "plan budget nothing fits": Case(  # was the fastest candidate's prediction, no fix
        ("plan", "mobilenet", "-p", "raspberrypi4", "--budget-ms", "0.001"),
        "is predicted at 1.4 ms (1 MB): give --budget-ms 1.52 or more",
    ),
    "bench results of another suffix": Case(  # was a JSON file named res.txt
        ("bench", "m.onnx", "--out", "res.txt"), "output res.txt must end in .json", _tiny_and_data
    ),
    "plan chart of an empty name": Case(  # was "output . must end in .png"
        ("plan", "mobilenet", "-p", "x86-avx2", "--chart", ""), "output '.' names no file: give a file name"
    ),
    "export allow-drift with nothing held out": Case(  # the check is not judged: no verdict to allow
        ("export", "m.onnx", "--format", "onnx", "--calib", "d.npz", "--holdout", "0", "--allow-drift"),
        "--allow-drift applies to a judged drift check, but the drift check is not judged (no held-out samples)",
        _tiny_and_labels,
    ),
    "export fix of a random model": Case(
        ("export", *MV1, "--fix"),
        "--fix/--no-fix applies to a judged drift check, but the drift check is not judged (calibration data is "
        "synthetic; the model has random weights)",
    ),
    "export fix typed with no-quantize": Case(  # --fix is the API's default: the CLI dropped it as not given
        ("export", "m.onnx", "--format", "onnx", "--no-quantize", "--fix"),
        "--fix/--no-fix applies to the int8 artifacts, but --no-quantize leaves them out",
        _tiny("m.onnx"),
    ),
    "export dynamic batch to tflite": Case(  # was exit 4 after the trace, the ONNX written
        ("export", "mobilenet_v1", "--width", "0.25", "--no-quantize", "--format", "onnx,tflite", "--dynamic-batch"),
        "--dynamic-batch cannot go with --format tflite: the TFLite lowering needs a static batch",
    ),
    "bench budget for ever": Case(  # was timed until --timeout killed the run, 10 minutes later
        ("bench", "m.onnx", "--budget-s", "inf"), "--budget-s must be a number of seconds > 0 and ≤", _tiny("m.onnx")
    ),
    "export task of an empty name": Case(  # was taken as no --task: every output's task inferred
        ("export", "m.onnx", *TINY, "--task", " "), "--task ' ' names no task: give one", _tiny("m.onnx")
    ),
    "drift fix with synthetic calib": Case(  # named --data, which was real
        ("drift", "f.onnx", "q.onnx", "--data", "d.npz", "--fix", "--calib", "synthetic", "--out", "x.onnx"),
        "--calib must be real data, not 'synthetic'",
        _fp32_int8_pair,
    ),
    "calibrate-profile with a probe twice": Case(  # a copy counted as a third network: a fit was written
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", "p.yaml"),
        "results[1]: probe conv (fp32) is there twice: give each probe once",
        _results(_probe() * 3),
    ),
    "drift mask threshold of class scores": Case(  # K class scores are read by arg-max: the threshold was unused
        ("drift", "s.onnx", "s.onnx", "--data", "d.npz", "--mask-threshold", "0.3"),
        "--mask-threshold applies to N×1×H×W segmentation maps, but the segmentation outputs are class scores",
        _segmenter,
    ),
    "calibrate-profile out of a suffix only": Case(  # said: name it .yaml.yaml
        ("calibrate-profile", "results.json", "--base", "x86-avx2", "--out", ".yaml"),
        "--out .yaml is only a suffix: give the profile a name, e.g. my-device.yaml",
        _results(_probe()),
    ),
    "drift data with a misspelt labels key": Case(  # 'label' was skipped: exit 0, no accuracy, nothing said
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz"),
        "d.npz holds 'label', which edgecnn does not read: save the ground truth as 'labels'",
        _misspelt_labels,
    ),
    # pass 6's leftovers
    "bench artifact of an empty name": Case(("bench", ""), "the artifact is an empty name: give a file"),
    "bench rounds for ever": Case(
        ("bench", "m.onnx", "--rounds", "100000000"), "--rounds must be between 1 and 1,000", _tiny("m.onnx")
    ),
    "bench runs for ever": Case(
        ("bench", "m.onnx", "--runs", "10000000000"), "--runs must be between 1 and", _tiny("m.onnx")
    ),
    "bench input of NaN": Case(
        ("bench", "m.onnx", "--runs", "2", "--input", "x.npy"),
        "the file holds NaN or infinite values",
        lambda f: (tiny_onnx(f / "m.onnx"), np.save(f / "x.npy", np.full((1, 3, 8, 8), np.nan, np.float32))),
    ),
    "bench input of int64 for a float input": Case(
        ("bench", "m.onnx", "--runs", "2", "--input", "x.npy"),
        "input 'input' is float32; the file holds int64: save it as float32",
        lambda f: (tiny_onnx(f / "m.onnx"), np.save(f / "x.npy", np.ones((1, 3, 8, 8), np.int64))),
    ),
    "predict of a torchvision model": Case(
        ("predict", "torchvision:resnet18", "-p", "x86-avx2"),
        "predict takes a zoo name or an .onnx file, not torchvision:resnet18: export it first",
    ),
    "drift data of an empty name": Case(  # was the current directory, read as an image folder
        ("drift", "m.onnx", "m.onnx", "--data", ""), "--data must be real data, not ''", _tiny("m.onnx")
    ),
    # pass 8
    "drift data of 0×0 uint8 images": Case(  # was exit 70, a ZeroDivisionError in the resize
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz"),
        "uint8 images must be at least 1×1 pixels, got shape (4, 0, 0, 3)",
        lambda f: (tiny_onnx(f / "m.onnx"), np.savez(f / "d.npz", images=np.zeros((4, 0, 0, 3), np.uint8))),
    ),
    "drift labels of uint64 beyond int64": Case(  # were wrapped: "labels go from -9223372036854775803"
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz"),
        "labels go up to 9223372036854775813, beyond any class",
        lambda f: (
            tiny_onnx(f / "m.onnx"),
            np.savez(
                f / "d.npz",
                images=np.zeros((4, 3, 8, 8), np.float32),
                labels=np.full(4, 2**63 + 5, np.uint64),
            ),
        ),
    ),
    "export labels beyond the classes among the calibration samples": Case(  # were checked on the held-out
        # samples only, after quantizing: none held out (or a seed that held the bad ones in) was exit 0
        ("export", "ref.onnx", "--calib", "data.npz", "--holdout", "0"),
        "labels go from 0 to 12 but the model has 10 classes (0…9): 1 samples are out of range",
        _labelled_data,
    ),
    "sweep cell of an unknown calibration method": Case(  # was exit 0: the other cells ran, this one failed
        ("sweep", "s.yaml", "--out", "out"),
        "unknown calibration method 'bogus'",
        _write("s.yaml", SWEEP_SPEC.replace("{formats: onnx}", "{formats: onnx, method: [minmax, bogus]}")),
    ),
    "sweep cell of an ONNX MODEL with dynamic_batch": Case(  # was exit 0 and a failed cell, after Ray started
        ("sweep", "s.yaml", "--out", "out"),
        "--dynamic-batch applies to a traced model, but an ONNX MODEL keeps its own input shape",
        lambda f: (
            tiny_onnx(f / "m.onnx"),
            (f / "s.yaml").write_text(
                "models: [{name: m.onnx}]\nprofiles: [x86-avx2]\nexport: {formats: onnx, dynamic_batch: true}\n"
            ),
        ),
    ),
    "export of an ONNX MODEL whose output is a scalar at run time": Case(  # named the working copy in the partial
        ("export", "m.onnx", "--format", "onnx"),  # OUT ('.out.1234-….partial/exported.onnx'), not the user's file
        "m.onnx's output 'y' is a scalar",
        lambda f: _scalar_output_onnx(f / "m.onnx"),
    ),
    "sweep pass mark for a cell not judged": Case(  # a zoo model without weights, no calib: was a failed cell
        ("sweep", "s.yaml", "--out", "out"),
        "--min-cosine applies to a judged drift check, but the drift check is not judged (calibration data is "
        "synthetic; the model has random weights)",
        _write("s.yaml", SWEEP_SPEC.replace("{formats: onnx}", "{formats: onnx, min_cosine: 0.9}")),
    ),
    "sweep exclude rule that matches no cell": Case(  # a misspelt value: exit 0, the cell swept all the same
        ("sweep", "s.yaml", "--out", "out"),
        "s.yaml: exclude[0] matches no cell of the grid, so it leaves nothing out",
        _write("s.yaml", SWEEP_SPEC + "exclude: [{model: mobilenet_v2}]\n"),
    ),
    "sweep bench of an artifact the cells do not make": Case(  # was exit 0: nothing timed, nothing said
        ("sweep", "s.yaml", "--out", "out"),
        "bench: artifacts: int8_tflite applies to --format tflite, but this export does not make it",
        _write("s.yaml", SWEEP_SPEC + "bench: {artifacts: [int8_tflite]}\n"),
    ),
    "sweep bench of int8 artifacts of fp32 cells": Case(
        ("sweep", "s.yaml", "--out", "out"),
        "bench: artifacts: int8_onnx applies to the int8 artifacts",
        _write("s.yaml", SWEEP_SPEC.replace("{formats: onnx}", "{formats: onnx, quantize: false}") + "bench: {}\n"),
    ),
    "recipe keeping a misspelt op type in float": Case(  # was exit 0: nothing kept in float, nothing said
        ("export", *MV1, "--recipe", "recipe.yaml"),
        "keep_float.op_types: 'Convv' is no ONNX op type",
        _recipe(keep_float={"op_types": ["Convv"], "nodes": []}),
    ),
    "ONNX of an opset newer than ONNX Runtime's": Case(  # named the working copy in the partial OUT, not m.onnx
        ("export", "m.onnx", *TINY), "m.onnx is not a valid ONNX model: ONNX Runtime cannot load m.onnx:", _opset_99
    ),
    "sweep bench of a negative warm-up": Case(  # was each cell's bench error, after its export
        ("sweep", "s.yaml", "--out", "out"),
        "s.yaml: bench: --warmup must be between 0 and 1,000,000, not -1",
        _write("s.yaml", SWEEP_SPEC + "bench: {warmup: -1}\n"),
    ),
    "sweep knob of a .onnx model": Case(  # was each cell's error, after Ray started it
        ("sweep", "s.yaml", "--out", "out"),
        "s.yaml: models[0]: an ONNX MODEL is exported already: scaling, num_classes, in_chans and weights do not",
        lambda f: (
            tiny_onnx(f / "m.onnx"),
            _write("s.yaml", "models: [{name: m.onnx, width: 0.5}]\nprofiles: [x86-avx2]\n")(f),
        ),
    ),
    "sweep knob the zoo model lacks": Case(
        ("sweep", "s.yaml", "--out", "out"),
        "s.yaml: models[0]: model 'resnet18' has no option phi; it takes: width, resolution",
        _write(
            "s.yaml",
            SWEEP_SPEC.replace("{name: mobilenet_v1, width: 0.25, resolution: 32}", "{name: resnet18, phi: 1}"),
        ),
    ),
    "sweep plan python without a host": Case(  # was dropped: the local bench runs in the Ray worker's Python
        ("sweep", "plan", "mobilenet", "-p", "x86-avx2", "--measure", "--python", "python3", "--out", "out"),
        "--python applies to a device over SSH, but the run is here: add --host USER@HOST, or drop --python",
    ),
    # --- found by the seventh hostile pass (stop 48)
    "input shape naming no forward argument": Case(  # was ignored: exit 0
        ("export", "mine:Net", "--input-shape", "nonsense=1,3,8,8", *TINY),
        "--input-shape names nonsense, but the forward of MODEL 'mine:Net' takes (x)",
        _net("y.mean((2, 3))"),
    ),
    "zoo input shape naming no forward argument": Case(
        ("export", *MV1, "--input-shape", "image=1,3,32,32"), "--input-shape names image, but the forward of MODEL"
    ),
    "resolution multiplier below the least size": Case(  # was exported at 8 px, said nowhere
        ("export", "mobilenet_v1", "--resolution", "0.0001", *TINY),
        "resolution 0.0001 of the default 224 px is 0 px, below the least 8 px: give a multiplier ≥ 0.0357",
    ),
    "out an existing file": Case(  # it said to pass --force, which then refused: a file is not replaced
        ("export", *MV1, "--out", "o.npz"), "output path o.npz exists and is not a directory", _write("o.npz", b"x")
    ),
    "MODEL a PyTorch checkpoint": Case(  # was 'not an ONNX model: … cut short or of another format'
        ("export", "w.pt", *TINY),
        "w.pt is a PyTorch checkpoint, not a model: MODEL names the architecture (a zoo name, torchvision:NAME",
        _checkpoint,
    ),
    "one input's shape given twice": Case(  # was 'with several inputs name each as in forward'
        ("export", *MV1, "--input-shape", "1,3,32,32", "--input-shape", "1,3,32,32"),
        "--input-shape is given 2 times without input names: give it once for a model with one input",
    ),
    "ONNX of no inputs": Case(  # said no fix
        ("export", "m.onnx", *TINY),
        "m.onnx is not an ONNX model with inputs (its graph takes none): give the .onnx the exporter wrote",
        _empty_graph,
    ),
    "fewer labels than images": Case(  # was 'labels must be N integers …, got int64 with shape (50,)'
        ("drift", "m.onnx", "m.onnx", "--data", "d.npz"),
        "d.npz: 5 labels for 8 images: give one label (or mask) per image, in the images' order",
        lambda f: (
            _tiny("m.onnx")(f),
            np.savez(f / "d.npz", images=np.zeros((8, 3, 8, 8), np.float32), labels=np.zeros(5, np.int64)),
        ),
    ),
    "MODEL an .npz of data": Case(  # was called a PyTorch checkpoint (a zip archive, as torch.save writes)
        ("export", "d.npz", *TINY),
        "d.npz is a NumPy .npz of arrays, not a model: give it as --calib",
        lambda f: np.savez(f / "d.npz", images=np.zeros((2, 3, 8, 8), np.float32)),
    ),
    "MODEL a .tflite": Case(
        ("export", "m.tflite", *TINY),
        "m.tflite is a .tflite: edgecnn exports from PyTorch or ONNX",
        _write("m.tflite", b"\x1c\x00\x00\x00TFL3" + bytes(64)),
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_one_line(tmp_path, case):
    spec = CASES[case]
    if spec.setup is not None:
        spec.setup(tmp_path)
    before = files_under(tmp_path)
    args = (
        [*spec.args, "--out", str(tmp_path / "out")]
        if spec.args[:1] == ("export",) and "--out" not in spec.args
        else list(spec.args)
    )
    result = run_edgecnn(tmp_path, *args, env=dict(spec.env))
    assert_clean_failure(result, tmp_path, spec.message, before=before)


def _zoo_weights_and_data(folder: Path) -> None:
    """w.pt (MobileNetV1 α 0.25, 10 classes: weights make the drift check judged) and d.npz (images at 32²)."""
    import torch

    from edgecnn.models import create_model

    torch.save(create_model("mobilenet_v1", width=0.25, resolution=32, num_classes=10).state_dict(), folder / "w.pt")
    np.savez(folder / "d.npz", images=np.random.default_rng(0).random((8, 3, 32, 32), dtype=np.float32))


@pytest.mark.parametrize(
    ("args", "setup"),
    [
        (
            ["mobilenet_v1", "--width", "0.25", "--resolution", "32", "--num-classes", "10", "--weights", "w.pt"],
            _zoo_weights_and_data,
        ),
        (["m.onnx"], _tiny_and_data),
    ],
    ids=["zoo", "onnx"],
)
def test_a_task_option_the_outputs_cannot_take_fails_before_any_stage(tmp_path, args, setup):
    """Where the outputs are known without tracing (a zoo classifier's logits; an ONNX file's static outputs),
    ``--min-miou`` on a classifier is refused before the first stage runs, and the folders made for a new
    ``--out`` are gone with it."""
    setup(tmp_path)
    before = files_under(tmp_path)
    data = ["--calib", "d.npz", "--format", "onnx", "--calib-size", "4", "--holdout", "2", "--min-miou", "0.5"]
    result = run_edgecnn(tmp_path, "export", *args, *data, "--out", "new/deeper/out")
    assert_clean_failure(result, tmp_path, "--min-miou applies to a segmentation output, but the outputs are judged "
                         "as classification (logits)", before=before)  # fmt: skip
    assert not [line for line in result.stderr.splitlines() if line[:1] in "✓✗"], result.stderr  # no stage line


@pytest.mark.parametrize(
    ("source", "message", "last"),
    [
        (
            "def build():\n    raise ValueError('my bug')\n",
            "ValueError while building MODEL 'mine:build'",
            "ValueError",
        ),
        ("1 / 0\n", "ZeroDivisionError while importing 'mine'", "ZeroDivisionError: division by zero"),
    ],
    ids=["factory", "import"],
)
def test_user_code_that_raises_shows_its_own_traceback(tmp_path, source, message, last):
    (tmp_path / "mine.py").write_text(source)
    result = run_export(tmp_path, "mine:build")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("edgecnn: error:")]
    assert len(errors) == 1 and f"your code raised {message}" in lines[errors[0]]
    traceback = "\n".join(lines[errors[0] + 1 :])
    assert "Traceback of your code" in traceback and "mine.py" in traceback and last in traceback
    assert "edgecnn/pipeline" not in traceback  # only the user's frames
    assert not (tmp_path / "out").exists()


def test_a_library_in_the_current_directory_is_not_imported(tmp_path):
    marker = tmp_path / "MARKER"
    for name in ("onnxsim", "numpy", "onnx"):
        (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name} ran\\n')\n")
    (tmp_path / "mine.py").write_text("import torch\n\ndef build():\n    return torch.nn.Conv2d(1, 2, 3)\n")
    result = run_export(tmp_path, "mine:build", "--input-shape", "1,1,16,16", *TINY)
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), marker.read_text()


def test_onnx_with_external_data_exports_and_says_nothing_was_held_out(tmp_path):
    tiny_onnx(tmp_path / "m.onnx", external=True)
    result = run_export(tmp_path, "m.onnx", "--format", "onnx", "--calib-size", "4", "--holdout", "0")
    assert result.returncode == 0, result.stderr
    assert "calibration samples (none held out)" in " ".join(result.stdout.split())
    assert "held-out samples" not in result.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["calibration"]["held_out"] == 0


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    from edgecnn.config.recipes import load_recipe
    from edgecnn.data.calibration import load_calibration

    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    (tmp_path / "imgs").mkdir()
    Image.fromarray(ramp).save(tmp_path / "imgs" / "a.png")
    recipe = load_recipe("default")
    calib, _ = load_calibration(tmp_path / "imgs", (1, 32, 32), recipe, 1, 0)
    mean, std = recipe.channel_stats(1)
    pixels = calib.images[0, 0] * std[0] + mean[0]  # back to [0, 1]
    assert calib.bit_depths == (16,)
    assert np.mean(pixels > 0.99) < 0.05 and abs(float(pixels.mean()) - 0.5) < 0.05


def test_weights_message_keeps_the_reason_to_load_safely(tmp_path):
    _pickled_object(tmp_path)
    result = run_export(tmp_path, "resnet18", "--weights", "obj.pt")
    assert_clean_failure(result, tmp_path, "argparse.Namespace")
    assert "if you trust its source" in result.stderr


def test_internal_error_is_one_line_and_exit_70(monkeypatch, capsys):
    from edgecnn import cli

    def broken(*args, **kwargs):
        raise RuntimeError("an edgecnn bug")

    monkeypatch.delenv("EDGECNN_DEBUG", raising=False)
    monkeypatch.setattr(cli.cli, "main", broken)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["models"])
    assert exit_info.value.code == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "edgecnn: error: internal error: RuntimeError: an edgecnn bug — this is a bug in edgecnn, please report it; "
        "run with --debug or EDGECNN_DEBUG=1 for the traceback"
    ]
    monkeypatch.setenv("EDGECNN_DEBUG", "1")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["models"])
    assert exit_info.value.code == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: an edgecnn bug" in err


def test_debug_flag_is_global(tmp_path):
    result = run_edgecnn(tmp_path, "--debug", "models", "resnt")
    assert_clean_failure(result, tmp_path, "did you mean 'resnet'")


def test_a_harness_bug_is_reported_as_edgecnn_bug():
    """What the harness does not foresee is a bug (exit 70), not a bad input of the user's (exit 1)."""
    from edgecnn.bench.api import HarnessBug, interpret
    from edgecnn.errors import BenchError

    stdout = json.dumps({"error": "KeyError: 'shape'", "bug": True})
    with pytest.raises(HarnessBug, match=re.escape("the harness failed on m.onnx: KeyError: 'shape'")):
        interpret(70, stdout, "", "m.onnx", "", "python3", {})
    with pytest.raises(BenchError, match="no such file"):
        interpret(1, json.dumps({"error": "no such file"}), "", "m.onnx", "", "python3", {})


def test_a_model_without_parameters_is_inspected(tmp_path):
    (tmp_path / "mine.py").write_text("import torch\n\ndef build():\n    return torch.nn.ReLU()\n")
    result = run_edgecnn(tmp_path, "inspect", "mine:build", "--input-shape", "1,3,8,8")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_user_code_that_exits_is_an_error_of_its_own(tmp_path):
    (tmp_path / "mine.py").write_text("import sys\n\ndef build():\n    sys.exit(0)\n")
    result = run_export(tmp_path, "mine:build", "--input-shape", "1,3,8,8", *TINY)
    assert result.returncode == 1, result.stderr
    assert "edgecnn: error: your code called sys.exit(0) while building MODEL 'mine:build'" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["dilation", "twice"])
def test_inspect_says_export_would_refuse_a_graph_ort_cannot_run(tmp_path, kind):
    """A graph ONNX Runtime loads but cannot run, or whose outputs repeat a name, is not "onnx: ok" in inspect."""
    _odd_graph(kind)(tmp_path)
    result = run_edgecnn(tmp_path, "inspect", "m.onnx", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)["export"]
    assert plan["expected_exit_code"] == 1
    assert ("Invalid input shape" if kind == "dilation" else "more than once") in plan["refused"]


def test_edgecnn_alone_prints_its_help(tmp_path):
    """No command is no mistake: the help, readable, rather than an error line holding the whole of it."""
    result = run_edgecnn(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: edgecnn") and "edgecnn models" in result.stdout
    assert result.stderr == ""


def test_a_full_disk_is_one_line_not_a_bug(tmp_path):
    """A file-size limit (as a full disk or a quota) met while writing an output: exit 1, nothing left."""
    import resource
    import subprocess
    import sys

    from tests.reliability.conftest import REPO

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "edgecnn", "plan", "mobilenet", "-p", "x86-avx2", "--chart", "c.png"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, preexec_fn=limit, timeout=300)
    assert_clean_failure(result, tmp_path, "file too large; free some space", before=set())


def test_an_unjudged_export_records_raw_figures_when_the_task_cannot_read_the_outputs(tmp_path):
    """Synthetic calibration: drift is not judged, so a detector that finds nothing (random weights) must not fail
    the export; it warns and records each output's raw figures."""
    _head([1, 8, 32])(tmp_path)
    result = run_edgecnn(tmp_path, "export", "m.onnx", "--format", "onnx", "--task", "detection", "--out", "out")
    assert result.returncode == 0, result.stderr
    assert "task figures not recorded" in result.stderr and "Traceback" not in result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["agreement"]["host_kernels"]["outputs"]["y"]["task"] == "raw"


def test_drift_takes_input_shapes_for_a_two_input_model(tmp_path):
    """drift names --input-shape for a model of several inputs, as export does: it must have it."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", image=rng.random((4, 3, 8, 8), np.float32), depth=rng.random((4, 1, 8, 8), np.float32))
    model = "tests.fixtures.multihead:build_two_inputs"
    shapes = ["--input-shape", "image=1,3,8,8", "--input-shape", "depth=1,1,8,8"]
    result = run_edgecnn(tmp_path, "drift", model, model, "--data", "d.npz", *shapes, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passed"] is True


def test_an_input_named_labels_is_fed_from_its_input_key(tmp_path):
    _labels_input(tmp_path)
    images = np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "data.npz", image=images, **{"input:labels": images})
    result = run_edgecnn(tmp_path, "drift", "m.onnx", "m.onnx", "--data", "data.npz", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["samples"] == 4


def test_an_onnx_input_without_a_shape_takes_the_given_one(tmp_path):
    """Was exit 70 (zip() of a shapeless input's no dims against the given four)."""
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [value("x", TensorProto.FLOAT, None)],
        [value("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(tmp_path / "m.onnx"))
    result = run_export(tmp_path, "m.onnx", "--input-shape", "1,3,8,8", "--format", "onnx", "--no-quantize")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_a_full_disk_under_a_temporary_file_is_one_line_not_a_bug(tmp_path):
    """drift's per-layer graphs go to the run's temporary directory: a file-size limit met there was exit 70."""
    import resource
    import subprocess
    import sys

    from tests.reliability.conftest import REPO

    _fp32_int8_pair(tmp_path)
    before = files_under(tmp_path)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "edgecnn", "drift", "f.onnx", "q.onnx", "--data", "d.npz", "--chart", "c.png"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, preexec_fn=limit, timeout=300)
    assert_clean_failure(result, tmp_path, "file too large; free some space", before=before)


def _strict_json(text: str) -> object:
    """``text`` parsed as standard JSON: Python's bare NaN and Infinity are refused, as jq and JavaScript do."""

    def refuse(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_of_identical_outputs_is_standard_json(tmp_path):
    """A model against itself has an SQNR of +inf dB: it was written as Infinity, which no strict parser reads."""
    tiny_onnx(tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", images=np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32))
    result = run_edgecnn(tmp_path, "drift", "m.onnx", "m.onnx", "--data", "d.npz", "--json")
    assert result.returncode == 0, result.stderr
    report = _strict_json(result.stdout)
    assert report["computations"]["as_is"]["sqnr_db"] is None
