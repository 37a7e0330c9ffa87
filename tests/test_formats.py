"""The format table is the one source of format knowledge: every other list is read from it."""

from __future__ import annotations

import pytest

from edgecnn.applies import check_applies
from edgecnn.bench import harness
from edgecnn.config.profiles import PROFILE_SCHEMA, RUNTIMES
from edgecnn.errors import UsageError
from edgecnn.formats import FORMATS, SUFFIXES, parse_formats, require_format, stage_formats
from edgecnn.pipeline.context import RULES
from edgecnn.pipeline.stages import STAGES, artifact_order


def test_the_standalone_harness_keeps_an_equal_copy():
    assert {suffix: fmt.name for suffix, fmt in SUFFIXES.items()} == harness.FORMATS


def test_profiles_accept_exactly_the_table_formats_and_runtimes():
    assert tuple(PROFILE_SCHEMA["formats"].choices) == tuple(FORMATS)
    assert set(RUNTIMES) == {fmt.runtime for fmt in FORMATS.values()}


def test_every_format_is_made_by_stages_that_declare_its_artifacts():
    stages = {stage.name: stage for stage in STAGES}
    for fmt in FORMATS.values():
        assert set(fmt.stages) <= set(stages), fmt.name
        declared = {o.key for name in fmt.stages for o in stages[name].outputs}
        assert set(fmt.artifacts) <= declared, fmt.name
        assert set(fmt.artifacts) <= set(artifact_order())
    assert set(stage_formats()) == {name for fmt in FORMATS.values() for name in fmt.stages}


def test_manifest_order_has_no_scratch_files():
    order = artifact_order()
    assert "exported" not in order and len(order) == len(set(order))
    assert order[:2] == ("fp32_onnx", "int8_onnx")


def test_parse_formats():
    assert parse_formats("tflite", ()) == ("onnx", "tflite")
    assert parse_formats(None, ("ort", "onnx", "nope")) == ("onnx", "ort")
    with pytest.raises(UsageError, match="did you mean 'ort'"):
        parse_formats("ortt", ())


@pytest.mark.parametrize(("option", "value"), [("nchw_io", True), ("tflite_io", "float")])
def test_format_options_need_their_format(option, value):
    """The format table's options column drives the export's rules: given without the format, an error."""
    check_applies(RULES, [option], {"int8", "format:onnx", "format:tflite"})
    flag = "--" + option.replace("_", "-")
    with pytest.raises(UsageError, match=f"{flag} applies to --format tflite, but this export does not make it"):
        check_applies(RULES, [option], {"int8", "format:onnx", "format:ort"})


def test_unknown_suffix_names_the_known_ones(tmp_path):
    with pytest.raises(UsageError, match=r"unknown artifact format '.pb' \(known: .onnx, .ort, .tflite\)"):
        require_format(tmp_path / "model.pb")
    assert require_format("M.TFLITE").name == "tflite"
