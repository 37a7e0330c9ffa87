"""The knob table is the one place the scaling knobs are spelled: registry, profiles, export and CLI read it."""

import ast
from dataclasses import fields
from pathlib import Path

import pytest

from edgecnn.cli import cli
from edgecnn.config.profiles import PROFILE_SCHEMA
from edgecnn.errors import UsageError
from edgecnn.models.knobs import KNOBS, RESOLUTION, input_size
from edgecnn.models.registry import create_model, get_model_info
from edgecnn.pipeline.context import ExportOptions
from edgecnn.pipeline.export import _options

ROOT = Path(__file__).resolve().parents[2] / "edgecnn"
READERS = ("models/registry.py", "config/profiles.py", "pipeline/context.py", "pipeline/export.py", "cli.py")
OTHER_MEANINGS = {"pipeline/export.py": {"resolution", "stages"}}  # a plan candidate's input size, pipeline stages


@pytest.mark.parametrize("path", [*READERS, "analysis/planner.py"])
def test_no_knob_name_is_spelled_outside_the_table(path):
    names = set(KNOBS) | {knob.flag for knob in KNOBS.values()}
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    spelled = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names}
    assert spelled <= OTHER_MEANINGS.get(path, set()), path


def test_export_options_carry_the_knobs_as_one_dict():
    assert not {f.name for f in fields(ExportOptions)} & set(KNOBS)
    options = _options("mobilenet", {"resolution": 160, "width": 0.5, "phi": None, "profile": "raspberrypi4"})
    assert options.scaling == {"width": 0.5, "resolution": 160}  # the table's order, None dropped
    assert options.profile == "raspberrypi4"
    with pytest.raises(UsageError, match=r"unknown option.*scaling"):
        _options("mobilenet", {"scaling": {"width": 0.5}})


def test_profile_defaults_take_every_knob_checked_as_the_table_says():
    schema = PROFILE_SCHEMA["defaults"].values
    assert list(schema) == list(KNOBS)
    for name, knob in KNOBS.items():
        assert schema[name].check == knob.problem


@pytest.mark.parametrize("command", ["export", "predict"])
def test_cli_options_come_from_the_table(command):
    options = {p.name: p for p in cli.commands[command].params}
    for name, knob in KNOBS.items():
        option = options[name]
        assert option.opts == [knob.flag] and option.help == knob.help
    knob_params = [p.name for p in cli.commands[command].params if p.name in KNOBS]
    assert knob_params == list(KNOBS)


def test_builder_arguments_named_in_the_table_are_the_model_knobs():
    assert get_model_info("efficientnet").knobs == ("width", "phi", "depth", RESOLUTION.name)
    assert get_model_info("densenet121").knobs == ("growth_rate", RESOLUTION.name)
    assert get_model_info("efficientnet_b0").knobs == (RESOLUTION.name,)


@pytest.mark.parametrize(
    ("name", "valid", "invalid"),
    [
        ("width", [0.25, 2, 1e-3], [0, -1.0, "a", None]),
        ("phi", [0, 0.0, 7.5], [-0.25]),
        ("depth", [1.2], [0]),
        ("growth_rate", [1, 12, 12.0], [0, 12.5, -2, float("inf")]),
        ("resolution", [8, 160, 160.0, 0.5, 1.0], [7, 1, 0.0, 1.5, 2.0, -5, 160.5]),
        ("stages", [(1,), [2, 3], (1, 2, 3, 4, 7)], [(), (0,), (1.5,), "2,3", 3]),
    ],
)
def test_valid_values(name, valid, invalid):
    knob = KNOBS[name]
    assert [knob.problem(v) for v in valid] == [None] * len(valid)
    for value in invalid:
        with pytest.raises(UsageError, match=f"^{name} must be "):
            knob.check(value)


def test_resolution_is_pixels_or_a_multiplier_of_the_default():
    assert input_size(None, 300) == 300 and input_size(160.0, 224) == 160 and input_size(0.5, 224) == 112
    assert input_size(8 / 224, 224) == 8
    with pytest.raises(UsageError, match=r"resolution 0.01 of the default 224 px is 2 px, below the least 8 px"):
        input_size(0.01, 224)  # was 8 px, said nowhere


def test_a_family_narrows_a_knob():
    """DCN's stages are ResNet's four (the table allows any stage ≥ 1)."""
    with pytest.raises(UsageError, match=r"stages must be a non-empty list of stages among 1–4, got \(1, 5\)"):
        create_model("resnet50_dcn", stages=(1, 5))
    assert KNOBS["stages"].problem((1, 5)) is None
