"""OUT appears whole or not at all."""

import pytest

from edgecnn.files import atomic_output_dir


def test_success_renames_into_place(tmp_path):
    out = tmp_path / "out"
    with atomic_output_dir(out, force=False) as tmp:
        (tmp / "a.txt").write_text("x")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "x"
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("error", [RuntimeError("stage failed"), KeyboardInterrupt()])
def test_failure_or_interrupt_leaves_nothing(tmp_path, error):
    out = tmp_path / "out"
    with pytest.raises(type(error)), atomic_output_dir(out, force=False) as tmp:
        (tmp / "half.onnx").write_bytes(b"12")
        raise error
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_only_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")  # an earlier export: --force may replace it
    with pytest.raises(RuntimeError), atomic_output_dir(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError
    assert (out / "manifest.json").exists()
    with atomic_output_dir(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert list(tmp_path.iterdir()) == [out]
