"""benchmarks/common.py and the zoo_eager benchmark: correctness only, never timing values."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
common = importlib.import_module("common")


@pytest.fixture
def results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary RESULTS_DIR, so no test writes into benchmarks/results."""
    path = tmp_path / "results"
    monkeypatch.setattr(common, "RESULTS_DIR", path)
    return path


def test_machine_info_describes_the_machine_and_skips_missing_packages(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(common.PACKAGES, "no_such_module_xyz", "no-such-dist-xyz")
    info = common.machine_info()
    assert {"cpu", "logical_cores", "isa_flags", "machine", "os", "python", "versions", "date_utc"} <= set(info)
    assert info["logical_cores"] >= 1
    assert isinstance(info["isa_flags"], list)
    assert "numpy" in info["versions"] and "no_such_module_xyz" not in info["versions"]
    assert info["date_utc"].endswith("+00:00")


def test_time_callable_returns_ordered_figures():
    calls = []
    stats = common.time_callable(lambda: calls.append(1), warmup=2, runs=7, min_seconds=0.0)
    assert set(stats) == {"runs", "min_ms", "p50_ms", "p90_ms", "mean_ms", "std_ms"}
    assert stats["runs"] == 7 and len(calls) == 9
    assert 0 <= stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"]
    assert stats["min_ms"] <= stats["mean_ms"] and stats["std_ms"] >= 0


def test_time_callable_keeps_going_until_min_seconds():
    stats = common.time_callable(lambda: sum(range(100)), warmup=0, runs=3, min_seconds=0.02)
    assert stats["runs"] >= 3


def test_time_callable_rejects_zero_runs():
    with pytest.raises(ValueError):
        common.time_callable(lambda: None, runs=0)


def test_write_result_writes_valid_json_atomically(results_dir: Path):
    rows = [{"model": "a", "latency_ms": 1.5}]
    path = common.write_result("demo", rows, {"description": "d"})
    assert path == results_dir / "demo.json"
    data = json.loads(path.read_text())
    assert data["benchmark"] == "demo" and data["rows"] == rows and data["meta"] == {"description": "d"}
    assert data["machine"]["cpu"] and data["machine"]["logical_cores"] >= 1
    assert [p.name for p in results_dir.iterdir()] == ["demo.json"]


def test_write_result_failure_keeps_the_old_file_and_no_temp_file(results_dir: Path):
    path = common.write_result("demo", [{"x": 1}])
    before = path.read_text()
    with pytest.raises(TypeError):
        common.write_result("demo", [{"x": object()}])
    assert path.read_text() == before
    assert [p.name for p in results_dir.iterdir()] == ["demo.json"]


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden"])
def test_write_result_rejects_bad_names(results_dir: Path, name: str):
    with pytest.raises(ValueError):
        common.write_result(name, [])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (277.6, "278"),
        (4215.2, "4215"),
        (45.23, "45.2"),
        (4.2319, "4.23"),
        (0.012345, "0.0123"),
        (0.0, "0"),
        (None, "—"),
        (7, "7"),
        ([3, 224, 224], "3×224×224"),
        ("a|b", "a\\|b"),
    ],
)
def test_format_value(value, text):
    assert common.format_value(value) == text


def test_render_markdown_renders_each_result_as_a_table(results_dir: Path):
    common.write_result(
        "demo", [{"model": "net_a", "ms": 12.345}, {"model": "net_b", "extra": 3}], {"description": "A demo."}
    )
    common.write_result("other", [{"k": "v"}])
    text = common.render_markdown()
    assert text.startswith("# Benchmarks")
    assert "make bench" in text and "never assert" in text
    assert common.machine_line(common.machine_info()).split(" · ")[0] in text
    assert text.index("## demo") < text.index("A demo.") < text.index("| model | ms | extra |") < text.index("## other")
    assert "| net_a | 12.3 | — |" in text and "| net_b | — | 3 |" in text and "| v |" in text
    assert text.count("Measured 20") == 2


def test_render_markdown_shows_the_metas_figures(results_dir: Path):
    meta = {"description": "d", "mape_pct": 4.4, "spread": {"median": 1.06, "max": 1.7}, "ok": True}
    common.write_result("demo", [{"x": 1}], {**meta, "per_model": {str(i): i for i in range(9)}, "name": "n"})
    text = common.render_markdown()
    assert "Meta: `mape_pct` 4.4 · `spread` median 1.06, max 1.7." in text
    assert "per_model" not in text and "`ok`" not in text  # long mappings, flags and text stay in the JSON


def test_render_markdown_without_results(results_dir: Path):
    assert "No results yet" in common.render_markdown()


def test_run_discovers_the_benchmarks_and_rejects_unknown_names():
    run = importlib.import_module("run")
    names = run.benchmark_paths()
    assert "zoo_eager" in names and "common" not in names and "run" not in names
    assert run.main(["no_such_benchmark"]) == 2


def test_zoo_eager_quick_writes_rows_with_the_expected_keys(results_dir: Path):
    committed = sorted(p.name for p in (BENCH_DIR / "results").glob("*"))
    zoo_eager = importlib.import_module("zoo_eager")
    assert zoo_eager.main(["--quick"]) == 0
    data = json.loads((results_dir / "zoo_eager.json").read_text())
    assert data["benchmark"] == "zoo_eager" and data["meta"]["description"]
    assert len(data["rows"]) == 2
    expected = {"model", "input", "params_M", "MACs_M", "eager_fp32_1t_p50_ms", "eager_fp32_2t_p50_ms"}
    for row in data["rows"]:
        assert expected <= set(row)
        assert row["params_M"] > 0 and row["MACs_M"] > 0 and row["eager_fp32_1t_p50_ms"] > 0
    assert data["rows"][1]["input"] == "3×160×160" and "width=0.5" in data["rows"][1]["model"]
    assert sorted(p.name for p in (BENCH_DIR / "results").glob("*")) == committed


def test_zoo_eager_parses_model_specs():
    zoo_eager = importlib.import_module("zoo_eager")
    assert zoo_eager.parse_spec("mobilenet_v1:width=0.5:resolution=160") == (
        "mobilenet_v1",
        {"width": 0.5, "resolution": 160},
    )
    assert zoo_eager.parse_spec("resnet18") == ("resnet18", {})
    with pytest.raises(ValueError):
        zoo_eager.parse_spec("resnet18:width")
