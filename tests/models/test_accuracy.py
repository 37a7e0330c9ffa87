"""Published accuracy tables and the planner's top-1 expectations."""

import subprocess
import sys
from itertools import pairwise

import numpy as np
import pytest

from edgecnn.models.accuracy import EXTRAPOLATION_MARGIN, Expectation, expected_top1, published_points
from edgecnn.models.efficientnet import EFFICIENTNET, EFFICIENTNET_LITE, EFFICIENTNET_MACS, phi_equivalent
from edgecnn.models.mobilenet import MOBILENET_V1, MOBILENET_V2
from edgecnn.models.registry import accuracy_tables

TABLES = {name: table.data for name, table in accuracy_tables().items()}
GRIDS = {"mobilenet_v1": MOBILENET_V1, "mobilenet_v2": MOBILENET_V2}


def _best(family: str) -> float:
    return max(p["top1"] for p in published_points(family))


@pytest.mark.parametrize("family", sorted(TABLES))
def test_every_published_point_comes_back_exactly(family):
    points = published_points(family)
    assert points and TABLES[family]["url"].startswith("https://")
    for p in points:
        if "variant" in p:
            kwargs = {"variant": p["variant"], **({"width": p["width"]} if family == "mobilenet_v3" else {})}
        else:
            kwargs = {"width": p["width"], "resolution": p["resolution"]}
        e = expected_top1(family, **kwargs)
        assert (e.top1, e.method) == (p["top1"], "published"), (family, p)
        assert TABLES[family]["url"] in e.source


def test_field_note_values():
    assert MOBILENET_V1["top1"][1.0] == {224: 70.9, 192: 70.0, 160: 68.0, 128: 65.2}
    assert MOBILENET_V1["top1"][0.25][128] == 41.5
    assert [v["top1"] for v in EFFICIENTNET["variants"].values()] == [77.1, 79.1, 80.1, 81.6, 82.9, 83.6, 84.0, 84.3]
    assert list(EFFICIENTNET_MACS.values()) == [0.39e9, 0.70e9, 1.0e9, 1.8e9, 4.2e9, 9.9e9, 19e9, 37e9]
    assert [v["top1"] for v in EFFICIENTNET_LITE["variants"].values()] == [75.1, 76.7, 77.6, 79.8, 81.5]
    assert expected_top1("mobilenet", width=0.5) == expected_top1("mobilenet_v1", width=0.5)


@pytest.mark.parametrize("family", sorted(GRIDS))
def test_interpolation_lies_between_neighbours_and_is_monotone(family):
    top1 = GRIDS[family]["top1"]
    rhos = sorted({r for row in top1.values() for r in row})
    alphas = sorted(a for a, row in top1.items() if len(row) == len(rhos))
    fine_a = np.linspace(alphas[0], alphas[-1], 23)
    fine_r = np.linspace(rhos[0], rhos[-1], 17)
    values = np.array([[expected_top1(family, width=a, resolution=r).top1 for r in fine_r] for a in fine_a])
    assert np.all(np.diff(values, axis=0) >= -1e-9) and np.all(np.diff(values, axis=1) >= -1e-9)
    for a0, a1 in pairwise(alphas):
        for r0, r1 in pairwise(rhos):
            e = expected_top1(family, width=(a0 + a1) / 2, resolution=(r0 + r1) / 2)
            corners = [top1[a][r] for a in (a0, a1) for r in (r0, r1)]
            assert e.method == "interpolated" and min(corners) < e.top1 < max(corners)
    # along a published edge the value lies between the two neighbours
    e = expected_top1(family, width=alphas[-1], resolution=(rhos[-1] + rhos[-2]) / 2)
    assert top1[alphas[-1]][rhos[-2]] < e.top1 < top1[alphas[-1]][rhos[-1]]


def test_v2_wide_row_interpolates_at_224_only():
    e = expected_top1("mobilenet_v2", width=1.2)
    assert e.method == "interpolated" and 71.8 < e.top1 < 74.4
    between = expected_top1("mobilenet_v2", width=1.35)
    assert between.method == "interpolated" and 74.4 < between.top1 < 75.0
    off_row = expected_top1("mobilenet_v2", width=1.3, resolution=160)
    assert off_row.method == "extrapolated" and 68.8 < off_row.top1 <= _best("mobilenet_v2") + EXTRAPOLATION_MARGIN
    widths = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    for rho in (128, 224):
        values = [expected_top1("mobilenet_v2", width=w, resolution=rho).top1 for w in widths]
        assert values == sorted(values)


@pytest.mark.parametrize(
    ("family", "kwargs"),
    [
        ("mobilenet_v1", {"width": 1.3}),
        ("mobilenet_v1", {"width": 1.4}),
        ("mobilenet_v1", {"width": 1.4, "resolution": 128}),
        ("mobilenet_v1", {"width": 0.5, "resolution": 96}),
        ("mobilenet_v1", {"width": 0.1, "resolution": 64}),
        ("mobilenet_v1", {"width": 1.0, "resolution": 320}),
        ("mobilenet_v2", {"width": 2.0, "resolution": 320}),
        ("mobilenet_v2", {"width": 0.25, "resolution": 224}),
        ("efficientnet", {"phi": 9.0}),
        ("efficientnet", {"phi": -1.0}),
        ("efficientnet", {"macs": 80e9}),
        ("efficientnet_lite", {"macs": 5e9}),
        ("resnet", {"variant": "152", "resolution": 320}),
        ("resnet", {"variant": "resnet50", "resolution": 160}),
        ("densenet", {"variant": "densenet121", "resolution": 192}),
        ("mobilenet_v3", {"variant": "large", "width": 1.25}),
        ("mobilenet_v3", {"variant": "mobilenet_v3_small", "resolution": 160}),
    ],
)
def test_extrapolation_is_flagged_and_clamped(family, kwargs):
    e = expected_top1(family, **kwargs)
    assert e.method == "extrapolated"
    assert 0.1 <= e.top1 <= _best(family) + EXTRAPOLATION_MARGIN


def test_extrapolation_is_monotone_and_below_published_neighbours():
    v1 = [expected_top1("mobilenet_v1", width=w).top1 for w in (1.0, 1.3, 1.4, 2.0)]
    assert v1 == sorted(v1) and v1[-1] == pytest.approx(70.9 + EXTRAPOLATION_MARGIN)
    low = [expected_top1("mobilenet_v1", width=0.75, resolution=r).top1 for r in (64, 96, 128)]
    assert low == sorted(low) and low[1] < 62.1
    assert expected_top1("resnet", variant="50", resolution=128).top1 < 76.13
    assert expected_top1("mobilenet_v1", width=0.35).method == "interpolated"


def test_efficientnet_phi():
    b0 = expected_top1("efficientnet", phi=0.0)
    assert b0.top1 == pytest.approx(77.1) and b0.method == "published"
    assert expected_top1("efficientnet").top1 == pytest.approx(77.1)  # φ from resolution 224
    values = [expected_top1("efficientnet", phi=p).top1 for p in np.arange(0.0, 7.01, 0.25)]
    assert all(b > a for a, b in pairwise(values))
    assert all(77.1 <= v <= 84.3 + EXTRAPOLATION_MARGIN for v in values)
    for name, v in EFFICIENTNET["variants"].items():
        phi = phi_equivalent(v["width"], v["depth"], v["resolution"])
        assert expected_top1("efficientnet", phi=phi) == expected_top1("efficientnet", variant=name)
    assert expected_top1("efficientnet", phi=1.0).method == "interpolated"
    assert expected_top1("efficientnet", phi=7.5).method == "extrapolated"


def test_efficientnet_macs_and_variants():
    values = [expected_top1("efficientnet", macs=m).top1 for m in np.geomspace(0.39e9, 37e9, 30)]
    assert all(b > a for a, b in pairwise(values))
    mid = expected_top1("efficientnet", macs=2.5e9)
    assert mid.method == "interpolated" and 81.6 < mid.top1 < 82.9
    assert expected_top1("efficientnet", macs=1.8e9).method == "published"
    assert expected_top1("efficientnet", variant="b3") == Expectation(81.6, "published", mid.source)
    assert expected_top1("efficientnet", variant="lite2").top1 == 77.6
    assert expected_top1("efficientnet_lite", variant="efficientnet-lite4").top1 == 81.5
    assert expected_top1("efficientnet_lite", phi=0.0).top1 == 75.1


def test_errors():
    with pytest.raises(ValueError, match=r"unknown family 'vgg'.*mobilenet_v1.*resnet"):
        expected_top1("vgg")
    with pytest.raises(ValueError, match="unknown family"):
        published_points("vgg")
    with pytest.raises(ValueError, match="variant must be one of"):
        expected_top1("resnet", variant="42")
    with pytest.raises(ValueError, match="variant must be one of"):
        expected_top1("efficientnet", variant="b9")
    with pytest.raises(ValueError, match="no width multiplier"):
        expected_top1("resnet", variant="50", width=0.5)
    with pytest.raises(ValueError, match="must be positive"):
        expected_top1("mobilenet_v1", width=0.0)


def test_imports_without_torch():
    """The reading helpers need no torch (the tables live in the family modules, which do)."""
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None; "
        "import edgecnn.models.accuracy as a; print(a.grid_top1({1.0: {224: 71.8, 160: 68.8}}, 1.0, 224)[0])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "71.8", result.stderr
