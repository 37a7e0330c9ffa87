"""The scaling knobs, each once: its name, value type, CLI flag and help, and the values it takes.

Everything else reads this table: which builder arguments the registry treats as knobs and how
``create_model`` checks them, the ``defaults`` schema of the device profiles, ``ExportOptions.scaling``
and the options of ``edgecnn export`` and ``edgecnn predict``. Adding a knob is one row here plus the
builders that take it. This module imports no torch: the CLI and the profiles read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgecnn.errors import UsageError


def is_multiplier(value: Any) -> bool:
    """A resolution given as a multiplier ρ ∈ (0, 1] of the model's default size (a float)."""
    return isinstance(value, float) and 0 < value <= 1


@dataclass(frozen=True)
class Knob:
    """One scaling option: a number (or a list of numbers) within bounds."""

    name: str
    type: type  # what the CLI parses: float or int (for a list: each item)
    help: str  # the CLI option's help text
    valid: str  # the valid values in words, for errors: "<name> must be <valid>, got …"
    minimum: float = 0.0
    open_minimum: bool = True  # the minimum itself is not valid
    maximum: float | None = None
    whole: bool = False  # whole numbers only
    many: bool = False  # a non-empty list of such numbers (on the command line: a comma list)
    multiplier: bool = False  # a float in (0, 1] is valid too: a multiplier of the default (resolution)

    @property
    def flag(self) -> str:
        """The CLI option: ``--growth-rate`` for ``growth_rate``."""
        return "--" + self.name.replace("_", "-")

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` ("must be …, got …"), or None when it is valid."""
        if self.many:
            listed = isinstance(value, Sequence) and not isinstance(value, str)
            valid = listed and len(value) > 0 and all(self._number(item) for item in value)
        else:
            valid = (self.multiplier and is_multiplier(value)) or self._number(value)
        return None if valid else f"must be {self.valid}, got {value!r}"

    def check(self, value: Any) -> None:
        """Raise a UsageError naming the knob when ``value`` is not valid."""
        problem = self.problem(value)
        if problem:
            raise UsageError(f"{self.name} {problem}")

    def _number(self, value: Any) -> bool:
        if not isinstance(value, (int, float)):
            return False
        above = value > self.minimum if self.open_minimum else value >= self.minimum
        below = self.maximum is None or value <= self.maximum
        return above and below and (not self.whole or float(value).is_integer())


PLAUSIBLE = " (the bound keeps the network a plausible edge model that fits in memory)"

RESOLUTION = Knob(
    "resolution",
    float,
    "Input size in pixels, or a multiplier ρ ≤ 1 of the default.",
    "a size in pixels from 8 to 8192 or a multiplier in (0, 1] (larger inputs are not edge images)",
    minimum=8,
    open_minimum=False,
    maximum=8192,
    whole=True,
    multiplier=True,
)  # every model takes it: the registry sizes the input, the builder never sees it

KNOBS: dict[str, Knob] = {
    knob.name: knob
    for knob in (
        Knob(
            "width",
            float,
            "Width multiplier α (MobileNet, EfficientNet with --phi, ResNet).",
            f"a positive number ≤ 4{PLAUSIBLE}",
            maximum=4,
        ),
        RESOLUTION,
        Knob(
            "phi",
            float,
            "EfficientNet compound coefficient φ (model 'efficientnet').",
            f"a number from 0 to 8 (B7 is about φ = 7){PLAUSIBLE}",
            open_minimum=False,
            maximum=8,
        ),
        Knob(
            "depth", float, "Depth multiplier (model 'efficientnet').", f"a positive number ≤ 8{PLAUSIBLE}", maximum=8
        ),
        Knob(
            "growth_rate",
            int,
            "DenseNet growth rate k.",
            f"a whole number from 1 to 256{PLAUSIBLE}",
            minimum=1,
            open_minimum=False,
            maximum=256,
            whole=True,
        ),
        Knob(
            "stages",
            int,
            "DCN: deformable stages, a comma list of 1–4 [default: 2,3,4].",
            "a non-empty list of stage numbers ≥ 1",
            minimum=1,
            open_minimum=False,
            whole=True,
            many=True,
        ),
    )
}


def input_size(resolution: float | None, default: int) -> int:
    """The input size a valid ``resolution`` gives: its pixels, or a multiplier of ``default`` (a one-line error
    when that is below the least size)."""
    if resolution is None:
        return default
    if is_multiplier(resolution):
        size = round(default * resolution)
        if size < RESOLUTION.minimum:
            least = RESOLUTION.minimum / default
            raise UsageError(
                f"resolution {resolution:g} of the default {default} px is {size} px, below the least "
                f"{RESOLUTION.minimum:g} px: give a multiplier ≥ {least:.3g} or a size in pixels"
            )
        return size
    return int(resolution)
