"""Run ONNX models with ONNX Runtime's int8 kernels and save their outputs: ``python _x86_kernels_run.py INPUTS.npy
MODEL.onnx ...`` writes ``MODEL.onnx.out.npy`` beside each model (first output, graph optimizations on, 1 thread,
batches of 100); ``--probe`` instead prints what a u8s8 1×1 convolution that saturates 16-bit pair sums gives.

x86_saturation.py runs this under an x86 emulator whose CPU has AVX2 and no VNNI, the x86-avx2 target's kernels,
and natively. Only numpy and onnxruntime: nothing of edgecnn is imported under emulation.
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort

PROBE_CHANNELS = 64  # 64 × (255 × 127) pair sums: every vpmaddubsw pair saturates at 32767


def session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def probe() -> float:
    """The output of a QDQ 1×1 conv, all-ones input at scale 1/255 (uint8 255) and all-127 weights at scale 1/127:
    exactly ``PROBE_CHANNELS`` where int8 kernels do not saturate, about half of it where u8s8 pair sums do."""
    from onnx import TensorProto, helper, numpy_helper

    c = PROBE_CHANNELS
    constants = {
        "xs": np.array(1 / 255, np.float32), "xz": np.array(0, np.uint8),
        "w": np.full((8, c, 1, 1), 127, np.int8), "ws": np.array(1 / 127, np.float32), "wz": np.array(0, np.int8),
        "ys": np.array(c * 1.2 / 255, np.float32), "yz": np.array(0, np.uint8),
    }  # fmt: skip
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["y"]),
        helper.make_node("QuantizeLinear", ["y", "ys", "yz"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, 4, 4])],
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    probe_session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return float(probe_session.run(None, {"x": np.ones((1, c, 4, 4), np.float32)})[0].ravel()[0])


def main(argv: list[str]) -> int:
    if argv[:1] == ["--probe"]:
        print(probe())
        return 0
    inputs = np.load(argv[0])
    for path in argv[1:]:
        run = session(path)
        name = run.get_inputs()[0].name
        outputs = [run.run(None, {name: inputs[i : i + 100]})[0] for i in range(0, len(inputs), 100)]
        np.save(path + ".out.npy", np.concatenate(outputs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
