"""A deviation: one choice point settled otherwise than `meshctl run` settles it.

Three kinds, each naming its point by labels that stay the same from run to run of one mesh
and input (engine.runtime.choices.task_label), so that a list of deviations replays exactly and
still means the same after another deviation or an input is dropped from it:

- ``order``: among tasks due at the same instant, ``at`` is the one `run` takes first and
  ``choice`` the one taken instead;
- ``attempt``: the attempt ``at`` fails, crashes after its effects, or is delivered twice
  (``choice``: fail, crash, duplicate);
- ``late``: the input whose id is ``at`` arrives after the ``choice`` inputs that follow it.

``occurrence`` says which meeting of the point it is (a crashed attempt is met again with the
same label). A choices file is JSON: ``{"choices": [...]}``, or a counterexample trace (JSON
Lines) whose first record holds them (engine.explore.counterexample).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import UsageError
from ..runtime.choices import ATTEMPT_CHOICES

KINDS = ("order", "attempt", "late")
MAX_LATE = 3  # an input held back behind at most this many later ones (per deviation)


@dataclass(frozen=True, slots=True)
class Deviation:
    kind: str
    at: str
    choice: str
    occurrence: int = 1

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.kind, self.at, self.occurrence)

    def as_dict(self) -> dict:
        out = {"kind": self.kind, "at": self.at, "choice": self.choice}
        if self.occurrence != 1:
            out["occurrence"] = self.occurrence
        return out

    def describe(self) -> str:
        """One line for a person: what happened differently."""
        again = f" (meeting {self.occurrence})" if self.occurrence != 1 else ""
        if self.kind == "order":
            return f"ran {self.choice} before {self.at}{again}"
        if self.kind == "late":
            later = "the next input" if self.choice == "1" else f"the next {self.choice} inputs"
            return f"{self.at} arrived late, after {later}"
        what = {"fail": "failed (a failure from outside the mesh)",
                "crash": "crashed after its effects, before its acknowledgement",
                "duplicate": "was delivered twice"}[self.choice]
        return f"attempt {self.at} {what}{again}"


def from_dict(item: object, where: str) -> Deviation:
    """A deviation read from a choices file; a UsageError names *where* and what is wrong."""
    if not isinstance(item, dict):
        raise UsageError(f"{where}: a choice is an object with kind, at and choice")
    kind, at, choice = item.get("kind"), item.get("at"), item.get("choice")
    occurrence = item.get("occurrence", 1)
    if kind not in KINDS:
        raise UsageError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(at, str) or not at:
        raise UsageError(f"{where}: `at` must be the label of a choice point (text)")
    if not isinstance(choice, str) or not choice:
        raise UsageError(f"{where}: `choice` must be text")
    if kind == "attempt" and choice not in ATTEMPT_CHOICES:
        raise UsageError(f"{where}: an attempt's choice is one of {', '.join(ATTEMPT_CHOICES)}, "
                         f"not {choice!r}")
    if kind == "late" and not (choice.isdigit() and 1 <= int(choice) <= MAX_LATE):
        raise UsageError(f"{where}: a late input's choice is how many inputs it arrives after, "
                         f"1 to {MAX_LATE}")
    if not isinstance(occurrence, int) or isinstance(occurrence, bool) or occurrence < 1:
        raise UsageError(f"{where}: `occurrence` must be a whole number from 1")
    return Deviation(kind, at, choice, occurrence)


def from_list(items: object, where: str) -> tuple[Deviation, ...]:
    if not isinstance(items, list):
        raise UsageError(f"{where}: `choices` must be a list")
    return tuple(from_dict(item, f"{where}: choice {n}") for n, item in enumerate(items, 1))
