"""Simplify an ONNX graph with onnxsim, or onnxslim when onnxsim fails or is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecnn.errors import CheckFailedError


def _onnxsim(model: Any) -> Any:
    import onnxsim

    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise ValueError("onnxsim could not validate the simplified model")
    return simplified


def _onnxslim(model: Any) -> Any:
    import onnxslim

    return onnxslim.slim(model)


SIMPLIFIERS = (("onnxsim", _onnxsim), ("onnxslim", _onnxslim))


def simplify(src: Path, dst: Path) -> dict[str, Any]:
    """Write the simplified graph of ``src`` to ``dst``; returns the tool used and node counts."""
    import onnx

    from edgecnn.pipeline.onnx_export import check_onnx

    model = onnx.load(str(src))
    before = len(model.graph.node)
    failures = []
    for name, run in SIMPLIFIERS:
        try:
            simplified = run(onnx.load(str(src)))
            onnx.save_model(simplified, str(dst), save_as_external_data=False)
            check_onnx(dst)
        except Exception as error:  # a simplifier failing is expected on odd graphs: try the next
            failures.append(f"{name}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else error!r}")
            continue
        return {"tool": name, "nodes_before": before, "nodes_after": len(simplified.graph.node), "fallbacks": failures}
    raise CheckFailedError("simplification failed: " + " | ".join(failures))
