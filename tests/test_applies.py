"""The option rules (edgecnn/applies.py): each names real options, defaults are the API's, messages are one line."""

from __future__ import annotations

import dataclasses

import pytest

from edgecnn.analysis.drift import Thresholds
from edgecnn.analysis.tasks import TASK_MODULES, task
from edgecnn.applies import Rules, check_applies, scope
from edgecnn.bench.api import RULES as BENCH
from edgecnn.cli import cli
from edgecnn.commands.drift import RULES as DRIFT
from edgecnn.errors import UnusedOptionError
from edgecnn.pipeline.context import RULES as EXPORT
from edgecnn.pipeline.context import ExportOptions


@pytest.mark.parametrize("rules", [EXPORT, DRIFT, BENCH], ids=lambda r: r.command)
def test_every_rule_is_an_option_of_its_command(rules):
    """A renamed option cannot silently leave its rule behind: each rule's option is a parameter of the command,
    spelled as its flag, and each scope it needs is one check_applies knows."""
    params = {p.name: p for p in cli.commands[rules.command].params}
    for option, needs in rules.needs.items():
        parameter = params.get(option) or params.get("max_accuracy_drop" if option == "max_drop" else "")
        assert parameter is not None, f"{rules.command}: rule for unknown option {option}"
        assert rules.flag(option).split("/")[0] in [*parameter.opts, *parameter.secondary_opts], (
            option,
            parameter.opts,
        )
        for name in needs:
            scope(name)  # a KeyError for a scope nobody declared


def test_cli_defaults_are_the_apis():
    """The CLI passes only typed options, so its shown defaults must be the ones the API applies."""
    import click

    apis = {
        "export": {f.name: f.default for f in dataclasses.fields(ExportOptions)},
        "drift": {f.name: f.default for f in dataclasses.fields(Thresholds)},
    }
    for command, defaults in apis.items():
        options = [p for p in cli.commands[command].params if isinstance(p, click.Option) and p.name in defaults]
        assert len(options) > 8, command
        for p in options:
            if isinstance(p.default, (int, float, str)) and p.default is not False:  # not click's "unset" sentinel
                assert p.default == defaults[p.name], (command, p.name)


def test_task_options_are_threshold_fields():
    fields = {f.name for f in dataclasses.fields(Thresholds)}
    for name in TASK_MODULES:
        assert set(task(name).options) <= fields, name


def test_an_option_is_checked_only_once_its_scope_is_known():
    rules = Rules("demo", {"a": ("int8",), "b": ("int8", "task:segmentation"), "c": ("task:classification|task:raw",)})
    check_applies(rules, ["b"], {"int8"}, known={"int8"})  # the tasks are not known yet
    check_applies(rules, ["c"], {"task:raw"})
    with pytest.raises(UnusedOptionError, match=r"^--b applies to a segmentation output, but the tasks"):
        check_applies(rules, ["b", "a"], {"int8"}, why="the tasks are others")
    with pytest.raises(UnusedOptionError, match=r"^--a, --b apply to the int8 artifacts, .*or drop them$"):
        check_applies(rules, ["b", "a"], set())
    with pytest.raises(UnusedOptionError, match="applies to a classification output or a raw output"):
        check_applies(rules, ["c"], {"task:segmentation"})
