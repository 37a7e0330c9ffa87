"""Print the worst TFLite-vs-ONNX-Runtime error of each test group at the end of a (single-process) run."""

import sys


def pytest_terminal_summary(terminalreporter) -> None:
    # Looked up, not imported: a missing ai-edge-litert fails these tests' collection, not the whole session.
    check = sys.modules.get("tests.lowering.tflite_check")
    if check is not None and check.MAX_ERRORS:
        terminalreporter.section("TFLite lowering: worst relative error per group")
        for group, error in sorted(check.MAX_ERRORS.items()):
            terminalreporter.write_line(f"{group:28s} {error:.2e}")
