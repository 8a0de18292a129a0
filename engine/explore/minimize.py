"""The smallest counterexample: fewest deviations, then fewest inputs, that still break the
same invariant.

Greedy, one element at a time (each try is one run): drop a deviation, keep the drop if the
invariant still breaks; then drop an input (with any ``late`` deviation of its own); then try
the deviations once more, since fewer inputs may need fewer of them. Deviations name their
points by labels that do not depend on the rest, so what is left keeps its meaning.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..runtime.events import BadInput
from .deviations import Deviation
from .session import Outcome, Session


@dataclass
class Minimal:
    deviations: tuple[Deviation, ...]
    inputs: list
    outcome: Outcome  # the run of both, with its trace records
    tries: int


def minimize(session: Session, found: Outcome) -> Minimal:
    broken = {_name(v) for v in found.violations}
    deviations, inputs, tries = list(found.taken), list(session.inputs), 0

    def still_breaks(trial_deviations: list[Deviation], trial_inputs: list) -> Outcome | None:
        nonlocal tries
        tries += 1
        outcome = session.run(trial_deviations, inputs=trial_inputs)
        return outcome if broken & {_name(v) for v in outcome.violations} else None

    def drop_deviations() -> None:
        nonlocal deviations
        for index in reversed(range(len(deviations))):
            trial = deviations[:index] + deviations[index + 1:]
            outcome = still_breaks(trial, inputs)
            if outcome is not None:
                deviations = list(outcome.taken)

    drop_deviations()
    for index in reversed(range(len(inputs))):
        item = inputs[index]
        own = f"input {item.get('id')}" if not isinstance(item, BadInput) else None
        trial_deviations = [d for d in deviations if not (d.kind == "late" and d.at == own)]
        outcome = still_breaks(trial_deviations, inputs[:index] + inputs[index + 1:])
        if outcome is not None:
            inputs = inputs[:index] + inputs[index + 1:]
            deviations = list(outcome.taken)
    drop_deviations()
    final = session.run(deviations, inputs=inputs, records=True)
    return Minimal(tuple(final.taken), inputs, final, tries + 1)


def _name(violation) -> tuple[str, str]:
    return (violation.check, violation.invariant)
