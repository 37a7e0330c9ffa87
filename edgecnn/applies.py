"""Which options apply to which path of a run: an option given where its path is not taken is an error, never
silently ignored.

A *scope* is what makes an option do something: the int8 artifacts, a ``.tflite``, a segmentation output, an SSH
run. Each command declares once, in a :class:`Rules` table beside its code, the scopes each of its path-dependent
options needs (the format-only options come from the format table, the task-only ones from the task modules'
``OPTIONS``). A run checks the options the user gave against the scopes it takes as soon as each scope
is known — the static ones before any work, the tasks once the model's outputs are read, the ground truth once
the data is — so a typo or a forgotten flag costs a second, not an export.

"Given" means typed by the user (the CLI passes only those) or passed by a Python caller; defaults are never
given. Standard library only: every layer may import it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from edgecnn.errors import UnusedOptionError
from edgecnn.formats import FORMATS


@dataclass(frozen=True)
class Scope:
    """A path of a run that options may need: what it is and how a user takes it."""

    what: str  # "the int8 artifacts"
    absent: str  # why this run does not take it: "--no-quantize leaves them out"
    enable: str  # how to take it: "drop --no-quantize" ("": no way, the option is only to be dropped)
    any_of: tuple[str, ...] = ()  # taken when any of these scopes is (its own name is then never in ``taken``)


SCOPES: dict[str, Scope] = {
    "int8": Scope("the int8 artifacts", "--no-quantize leaves them out", "drop --no-quantize"),
    **{
        f"format:{name}": Scope(f"--format {name}", "this export does not make it", f"add {name} to --format")
        for name in FORMATS
    },
    "judged": Scope(
        "a judged drift check",
        "the drift check is not judged",
        "give real --calib data, trained --weights and --holdout ≥ 1",
    ),
    "truth": Scope("data with ground truth", "the data has none", "give data with labels, masks or boxes + classes"),
    "deformable": Scope("a model with deformable convolutions", "this model has no DeformConv", ""),
    "traced": Scope("a traced model", "an ONNX MODEL keeps its own input shape", "export the PyTorch model"),
    "fix": Scope("the repair", "the repair runs only with --fix", "add --fix"),
    "layers": Scope("the per-layer figures", "--no-layers leaves them out", "drop --no-layers"),
    "int8_target": Scope(
        "an int8 TARGET", "TARGET is not int8 (a QDQ ONNX or an int8 .tflite)", "give the int8 model as TARGET"
    ),
    "named_output": Scope(
        "a named output", "the default names beside TARGET are always replaced", "add --out or --chart"
    ),
    "host": Scope("a device over SSH", "the run is here", "add --host USER@HOST"),
    "suite": Scope("--suite probes", "ARTIFACTs are timed as they are", "add --suite probes"),
    "artifacts": Scope("ARTIFACTs", "--suite builds its own models", "give ARTIFACTs instead of --suite"),
    "tflite": Scope("a .tflite", "no ARTIFACT is one", "add a .tflite ARTIFACT"),
    "out": Scope("--out", "nothing is written without it", "add --out"),
    "chart": Scope("--chart", "the default chart name is always replaced", "add --chart"),
}


@dataclass(frozen=True)
class Rules:
    """One command's options that apply to some paths only: option (its parameter name) → the scopes it needs
    (all of them); ``flags`` spells an option whose flag is not ``--`` + its name with dashes."""

    command: str
    needs: Mapping[str, tuple[str, ...]]
    flags: Mapping[str, str] | None = None

    def flag(self, option: str) -> str:
        """The option's flag as the user types it."""
        return (self.flags or {}).get(option) or "--" + option.replace("_", "-")


def scope(name: str) -> Scope:
    """The scope ``name``: one of :data:`SCOPES`, ``task:NAME`` (an output judged as that task) or several joined by
    ``|`` (taken when any of them is)."""
    if "|" in name:
        parts = [scope(part) for part in name.split("|")]
        return Scope(
            " or ".join(p.what for p in parts), parts[-1].absent, parts[-1].enable, any_of=tuple(name.split("|"))
        )
    if name.startswith("task:"):
        task = name.removeprefix("task:")
        return Scope(
            f"{'an' if task[0] in 'aeiou' else 'a'} {task} output",
            "no output of this model is judged as one",
            f"give --task OUTPUT={task} if one is",
        )
    return SCOPES[name]


def check_applies(
    rules: Rules,
    given: Iterable[str],
    taken: Collection[str],
    known: Collection[str] | None = None,
    why: Mapping[str, str] | str | None = None,
) -> None:
    """Raise one line for the given options whose scopes are decided (``known``; None: all) and not all ``taken``:
    what they apply to, why this run does not take it, and the two fixes. ``why`` overrides a scope's ``absent``
    with the run's own words, per scope or one for all (e.g. the tasks its outputs have)."""
    missed: dict[str, list[str]] = {}
    given = set(given)
    for option in (option for option in rules.needs if option in given):  # the table's order: one message each time
        for name in rules.needs[option]:
            alternatives = scope(name).any_of or (name,)
            decided = known is None or any(s in known for s in alternatives)
            if decided and not any(s in taken for s in alternatives):
                missed.setdefault(name, []).append(rules.flag(option))
                break
    if not missed:
        return
    name, flags = next(iter(missed.items()))
    about = scope(name)
    many = len(flags) > 1
    absent = (why if isinstance(why, str) else (why or {}).get(name)) or about.absent
    drop = f"drop {'them' if many else flags[0]}"
    raise UnusedOptionError(
        f"{', '.join(flags)} {'apply' if many else 'applies'} to {about.what}, but {absent}: "
        + (f"{about.enable}, or {drop}" if about.enable else drop)
    )


def format_needs() -> dict[str, tuple[str, ...]]:
    """The format-only options of the format table: option → its format's scope."""
    return {option: (f"format:{f.name}",) for f in FORMATS.values() for option in f.options}
