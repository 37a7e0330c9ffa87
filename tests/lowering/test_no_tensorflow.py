"""The TFLite backend needs no TensorFlow: nothing of it is installed with the project."""

from importlib.metadata import distributions

FORBIDDEN = {"tensorflow", "tensorflow-cpu", "tf-keras", "tf_keras", "keras", "onnx2tf", "tensorflow-intel"}


def test_no_tensorflow_in_the_environment():
    installed = {(d.metadata["Name"] or "").lower() for d in distributions()}
    assert not installed & FORBIDDEN, sorted(installed & FORBIDDEN)
    assert {"ai-edge-litert", "ai-edge-quantizer"} <= installed
