"""Bad inputs that need a real checkpoint or a real export (the quick ones are in tests/reliability)."""

from pathlib import Path

import pytest

from tests.reliability.conftest import assert_clean_failure, run_export


@pytest.fixture
def mismatched_weights(tmp_path) -> Path:
    import torch

    from edgecnn.models import create_model

    path = tmp_path / "r18_1000.pt"
    torch.save(create_model("resnet18", num_classes=1000).state_dict(), path)
    return path


def test_mismatched_weights_list_the_keys(tmp_path, mismatched_weights):
    result = run_export(tmp_path, "resnet18", "--num-classes", "10", "--weights", str(mismatched_weights))
    assert_clean_failure(result, tmp_path, "wrong shapes: head.3.bias, head.3.weight")
    assert "--num-classes" in result.stderr


def test_weights_for_another_architecture(tmp_path, mismatched_weights):
    result = run_export(tmp_path, "mobilenet_v1", "--weights", str(mismatched_weights))
    assert_clean_failure(result, tmp_path, "missing keys: ")


def test_existing_output_directory_needs_force(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = run_export(tmp_path, "resnet18")
    assert result.returncode == 1 and "exists; pass --force" in result.stderr
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_parity_failure_reports_both_numbers(tmp_path):
    result = run_export(tmp_path, "tests.fixtures.tinynet:NoisyNet", "--input-shape", "1,1,16,16", "--calib-size", "4")
    assert_clean_failure(result, tmp_path, "parity ORT fp32 vs PyTorch: max abs error", code=2)
    assert "of the output range, over the 0.0001 threshold" in result.stderr
