"""The planner: the best expected accuracy within the budget, honest errors, the CLI and the export hook."""

from __future__ import annotations

import json
import statistics

import pytest

from edgecnn.analysis.planner import family_of, plan
from edgecnn.errors import UnknownNameError, UsageError
from tests.test_cli import run

PROFILE = "x86-avx2"


@pytest.fixture(scope="module")
def mobilenet_plan():
    """A plan with a budget in the middle of the candidates' predictions."""
    everything = plan("mobilenet", PROFILE, budget_ms=1e6)
    budget = statistics.median(c.predicted_ms for c in everything.candidates)
    return plan("mobilenet", PROFILE, budget_ms=budget)


def test_chooses_the_best_expected_accuracy_within_the_budget(mobilenet_plan):
    result = mobilenet_plan
    assert len(result.candidates) == 7 * 5  # α × ρ
    chosen = result.chosen
    assert chosen.fits and chosen.predicted_ms <= result.limit_ms == pytest.approx(result.budget_ms * 0.95)
    fitting = [c for c in result.candidates if c.fits]
    assert 0 < len(fitting) < len(result.candidates)
    trusted = [c for c in fitting if c.accuracy != "extrapolated"]
    assert chosen.accuracy != "extrapolated"
    assert chosen.expected_top1 == max(c.expected_top1 for c in trusted)
    assert result.runner_up is not None and result.runner_up.expected_top1 <= chosen.expected_top1
    # predictions grow with width and resolution
    by_config = {(c.config["width"], c.config["resolution"]): c.predicted_ms for c in result.candidates}
    assert by_config[(1.0, 224)] > by_config[(0.5, 224)] > by_config[(0.25, 224)]
    assert by_config[(1.0, 224)] > by_config[(1.0, 160)] > by_config[(1.0, 96)]


def test_json_shape(mobilenet_plan):
    report = mobilenet_plan.to_dict()
    assert {"width", "resolution", "predicted_ms", "expected_top1"} <= set(report["chosen"])
    assert report["budget_ms"] == mobilenet_plan.budget_ms and len(report["candidates"]) == 35
    assert all(s.startswith(("TF-slim", "http")) or "http" in s for s in report["accuracy_sources"])


def test_headroom_keeps_a_margin_for_prediction_error(mobilenet_plan):
    """A candidate predicted exactly at the budget fits with no headroom and not with the default 5%."""
    edge = max((c for c in mobilenet_plan.candidates if c.accuracy != "extrapolated"), key=lambda c: c.expected_top1)
    exact = plan("mobilenet", PROFILE, budget_ms=edge.predicted_ms, headroom=0.0)
    assert exact.chosen.label == edge.label and exact.limit_ms == edge.predicted_ms
    margin = plan("mobilenet", PROFILE, budget_ms=edge.predicted_ms)
    assert margin.headroom == 0.05 and margin.chosen.label != edge.label
    assert margin.chosen.predicted_ms <= edge.predicted_ms * 0.95
    assert margin.to_dict()["limit_ms"] == pytest.approx(edge.predicted_ms * 0.95, abs=1e-3)
    with pytest.raises(UsageError, match=r"--headroom must be in \[0, 1\), not 1.5"):
        plan("mobilenet", PROFILE, headroom=1.5)
    with pytest.raises(UsageError, match="with 5% headroom"):
        plan("mobilenet", PROFILE, budget_ms=1e-4)


def test_impossible_budget_names_the_fastest_candidate():
    with pytest.raises(UsageError, match=r"fastest, mobilenet_v1 width=0.25 resolution=96, is predicted at [\d.]+ ms"):
        plan("mobilenet", PROFILE, budget_ms=1e-4)


def test_memory_budget_excludes_the_big_ones(mobilenet_plan):
    small = plan("mobilenet", PROFILE, budget_ms=1e6, memory_budget_mb=3.0)
    assert small.chosen.memory_mb <= 3.0
    assert any(not c.fits for c in small.candidates)


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("mobilenet", "mobilenet"),
        ("mobilenet_v1", "mobilenet"),  # the model the family name stands for
        ("mobilenet_v2", "mobilenet_v2"),
        ("efficientnet", "efficientnet"),
        ("resnet", "resnet"),
        ("resnet18", None),
        ("efficientnet_b0", None),
        ("densenet", None),
        ("vgg", None),
    ],
)
def test_family_of(name, family):
    assert family_of(name) == family


def test_unknown_family_and_dtype():
    with pytest.raises(UnknownNameError, match="did you mean 'mobilenet_v2'"):
        plan("mobilenet_v3x", PROFILE)
    with pytest.raises(UsageError, match="--dtype"):
        plan("mobilenet", PROFILE, dtype="int4")


def test_cli_json_and_chart(tmp_path, mobilenet_plan):
    chart = tmp_path / "plan.png"
    done = run(
        "plan",
        "mobilenet",
        "--profile",
        PROFILE,
        "--budget-ms",
        str(mobilenet_plan.budget_ms),
        "--json",
        "--chart",
        str(chart),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["chosen"]["label"] == mobilenet_plan.chosen.label
    assert report["chart"] == str(chart) and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    args = ("--chart", str(chart), "--force")  # the chart exists now: replacing it needs --force
    impossible = run("plan", "mobilenet", "--profile", PROFILE, "--budget-ms", "0.0001", *args)
    assert impossible.returncode == 1 and "fastest" in impossible.stderr and "Traceback" not in impossible.stderr
    bad = run("plan", "mobilenet", "--profile", PROFILE, "--headroom", "-0.1", *args)
    assert bad.returncode == 1 and "--headroom must be in [0, 1)" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_export_of_a_family_runs_the_planner_and_records_it(tmp_path, mobilenet_plan):
    from edgecnn.pipeline.export import export

    result = export("mobilenet", profile=PROFILE, out=tmp_path / "planned", formats="onnx", quantize=False)
    decision = result.manifest["plan"]
    profile_budget = decision["budget_ms"]
    assert decision["dtype"] == "fp32" and decision["candidates"] == 35
    chosen = decision["chosen"]
    assert decision["headroom"] == 0.05 and chosen["predicted_ms"] <= profile_budget * 0.95
    assert result.manifest["model"]["scaling"]["width"] == chosen["config"]["width"]
    assert result.manifest["model"]["scaling"]["resolution"] == chosen["config"]["resolution"]
    assert result.manifest["model"]["scaling_origin"].startswith("planner")
    assert "## Plan" in (result.out / "report.md").read_text()
    explicit = export(
        "mobilenet",
        profile=PROFILE,
        out=tmp_path / "explicit",
        formats="onnx",
        quantize=False,
        width=0.25,
        resolution=96,
    )
    assert explicit.manifest["plan"] is None  # explicit scaling: no planning


@pytest.mark.parametrize(
    ("family", "profile", "budget", "headroom"),
    [("mobilenet_v2", "jetson-nano", 1.0, 0.05), ("mobilenet", "jetson-nano", 0.5, 0.05),
     ("mobilenet_v2", "raspberrypi4", 1.0, 0.05), ("mobilenet", "raspberrypi4", 1.0, 0.99)],
)  # fmt: skip
def test_the_budget_nothing_fits_advises_then_fits(family, profile, budget, headroom):
    """The advice was rounded to 3 digits, down as often as up: 'give --budget-ms 2.29 or more', and 2.29 failed
    with the same advice."""
    import re

    with pytest.raises(UsageError) as refused:
        plan(family, profile, budget_ms=budget, headroom=headroom)
    advised = float(re.search(r"give --budget-ms ([0-9.]+) or more", str(refused.value)).group(1))
    assert plan(family, profile, budget_ms=advised, headroom=headroom).chosen is not None
