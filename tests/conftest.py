"""Shared fixtures. Heavy ones (trained models) are made once per test run and shared by the xdist workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# One thread per worker: `make test` runs two pytest workers on a 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.fixtures.digits import MEAN, STD, TRAINED_FAMILIES  # noqa: F401  (re-exported for the tests)


@pytest.fixture(scope="session", autouse=True)
def op_cost_cache(tmp_path_factory) -> Path:
    """The tests' own op-cost cache (``EDGECNN_CACHE_DIR``, inherited by the CLI runs), never the user's."""
    path = tmp_path_factory.mktemp("edgecnn-cache")
    os.environ["EDGECNN_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory, worker_id) -> Path:
    """A directory shared by all xdist workers of this run (the base temp dir's parent under xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if worker_id != "master" else base


def _once(path: Path, make) -> dict:
    """Run ``make(path.parent)`` once across workers, guarded by a file lock; returns the JSON it wrote."""
    from filelock import FileLock

    with FileLock(str(path) + ".lock"):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            result = make(path.parent)
            path.write_text(json.dumps(result))
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def digits_npz(shared_dir) -> dict:
    """Held-out digits as an .npz (normalised float32 N×1×32×32 with labels), for --calib."""
    import numpy as np

    from tests.fixtures.digits import digits, normalise

    def make(folder: Path) -> dict:
        _, _, test_x, test_y = digits()
        path = folder / "digits_test.npz"
        np.savez(path, images=normalise(test_x, MEAN, STD), labels=test_y)
        return {"path": str(path), "count": len(test_x)}

    return _once(shared_dir / "digits" / "digits_npz.json", make)


@pytest.fixture(scope="session")
def tinynet_checkpoint(shared_dir) -> dict:
    """TinyNet trained on digits for a few seconds: its checkpoint and its test accuracy."""
    import torch

    from tests.fixtures.digits import accuracy, digits, normalise, train
    from tests.fixtures.tinynet import build_net

    def make(folder: Path) -> dict:
        train_x, train_y, test_x, test_y = digits()
        torch.manual_seed(0)  # the initial weights too, or the trained net (and its int8 agreement) varies per run
        model = train(build_net(), normalise(train_x, MEAN, STD), train_y, epochs=12, lr=0.1)
        path = folder / "tinynet.pt"
        torch.save({"state_dict": model.state_dict(), "epoch": 12}, path)
        return {"path": str(path), "accuracy": accuracy(model, normalise(test_x, MEAN, STD), test_y)}

    return _once(shared_dir / "tinynet" / "tinynet.json", make)


@pytest.fixture(scope="session")
def trained_zoo(shared_dir):
    """A function family → {name, scaling, path, accuracy}: trains that family's network once per test run."""
    from tests.fixtures.digits import train_family

    def get(family: str) -> dict:
        return _once(shared_dir / "zoo" / f"{family}.json", lambda folder: train_family(family, folder))

    return get


@pytest.fixture
def export_trained(trained_zoo, digits_npz):
    """A function (family, out, **options) → ExportResult: that family's digits-trained network exported with its
    weights at 32×32×1, 10 classes, calibrated on the held-out digits (128 calibration, 232 held out unless
    ``options`` say otherwise)."""

    def run(family: str, out: Path, **options):
        return _export_trained(trained_zoo(family), digits_npz, out, **options)

    return run


def _export_trained(model: dict, digits: dict, out: Path, **options):
    """The trained zoo ``model`` exported at 32×32×1, 10 classes, calibrated on the ``digits`` .npz (128 calibration,
    232 held out unless ``options`` say otherwise)."""
    from edgecnn.pipeline.export import export

    settings = {"calib_size": 128, "holdout": 232, **model["scaling"], **options}
    return export(
        model["name"], out=out, weights=model["path"], num_classes=10, in_chans=1, resolution=32,
        calib=digits["path"], **settings,
    )  # fmt: skip


@pytest.fixture(scope="session")
def shared_export(shared_dir, trained_zoo, digits_npz):
    """A function family → ExportResult: that family's digits-trained network exported once per test run for
    x86-avx2 (this host's profile: every timed choice runs) with the export's defaults but the formats (ONNX, .ort
    and .tflite), as ``export_trained`` does. Shared by the tests that only read it: none may change its files."""
    from edgecnn.pipeline.export import ExportResult

    def make(family: str, folder: Path) -> dict:
        out = folder / family
        _export_trained(trained_zoo(family), digits_npz, out, profile="x86-avx2", formats="onnx,ort,tflite")
        return {"out": str(out)}

    def get(family: str) -> ExportResult:
        out = Path(_once(shared_dir / "exports" / f"{family}.json", lambda folder: make(family, folder))["out"])
        return ExportResult(out, json.loads((out / "manifest.json").read_text()))

    return get


@pytest.fixture(scope="session")
def task_models(shared_dir):
    """A function task → {path, npz, … its figures against ground truth}: trains that task's network of
    tests/fixtures/tasks.py (segmentation, detection, embedding, class_box) once per test run."""
    from tests.fixtures import tasks

    def get(name: str) -> dict:
        return _once(shared_dir / "tasks" / f"{name}.json", getattr(tasks, f"train_{name}"))

    return get
