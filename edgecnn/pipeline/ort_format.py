"""Convert ONNX models to ONNX Runtime's mobile `.ort` format, with the reduced-operator config."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgecnn.errors import CheckFailedError


def convert_to_ort(onnx_path: Path, out_dir: Path, arm: bool) -> dict[str, Any]:
    """Write ``<stem>.ort`` and ``<stem>.required_operators.config`` into ``out_dir``.

    Uses ONNX Runtime's own converter in 'Fixed' optimization style, with
    ``target_platform='arm'`` for ARM devices so x86-only fusions (NCHWc
    layouts, for example) are not baked in.
    """
    import onnxruntime as ort
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    platform = "arm" if arm else "amd64"
    with tempfile.TemporaryDirectory(prefix="edgecnn-ort-") as tmp:
        work = Path(tmp)
        staged = work / "in" / onnx_path.name
        staged.parent.mkdir()
        shutil.copy2(onnx_path, staged)
        log = io.StringIO()
        converter_log = logging.getLogger("ort_format_model.utils")
        level = converter_log.level
        converter_log.setLevel(logging.WARNING)
        # The converter's own sessions warn that x86 fusions are hardware specific: that is the point of
        # --target_platform, which the manifest records.
        ort.set_default_logger_severity(3)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                convert_onnx_models_to_ort(
                    staged,
                    output_dir=work / "out",
                    optimization_styles=[OptimizationStyle.Fixed],
                    target_platform=platform,
                )
        except Exception as error:  # the converter raises RuntimeError and others from ORT
            raise CheckFailedError(
                f".ort conversion of {onnx_path.name} failed: {str(error).strip().splitlines()[0][:300]}"
            ) from None
        finally:
            converter_log.setLevel(level)
            ort.set_default_logger_severity(2)
        produced = list((work / "out").rglob("*.ort"))
        if len(produced) != 1:
            tail = log.getvalue().strip().splitlines()[-1:] or ["no output"]
            raise CheckFailedError(f".ort conversion of {onnx_path.name} produced no model: {tail[0][:300]}")
        ort_path = out_dir / f"{onnx_path.stem}.ort"
        shutil.move(str(produced[0]), ort_path)
        configs = list((work / "out").rglob("*.config"))
        config_path = out_dir / f"{onnx_path.stem}.required_operators.config"
        if configs:
            shutil.move(str(configs[0]), config_path)
    return {
        "ort": ort_path,
        "config": config_path if config_path.exists() else None,
        "target_platform": platform,
        "optimization_style": "Fixed",
    }
