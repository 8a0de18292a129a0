"""Exploration: the search of ``meshctl explore`` (``engine.explore``) on the checkout examples.

- *explorations/s*: every run within depth 3 (2 with ``--quick``) of ``workflows/checkout`` on
  its two orders, tried until the space is spent; the peer column is the same mesh and input
  run by ``meshctl run``'s runtime (``Runtime.run``, fast paths on), so the ratio is what a
  steered, hashed run costs against a plain one (a fraction: below 1).
- *state hashing*: the same search with and without cutting runs at a state already
  explored; the ratio is runs tried without / with (×), and both must spend the space with
  no violation.
- *planted bug*: ``workflows/buggy-checkout``, from the start of the search to its minimised
  counterexample (the default depth, 2), best of 3.
"""
from __future__ import annotations

from .common import REPO, Row, best_of, fmt_rate, fmt_time

CHECKOUT, BUGGY = REPO / "workflows" / "checkout", REPO / "workflows" / "buggy-checkout"


def _session(path, judge=None):
    from engine.commands.explore import judge_of, read_input
    from engine.explore.session import Session
    from engine.language.loader import load_mesh

    mesh, _ = load_mesh(str(path))
    return mesh, Session(mesh, read_input(str(path / "events.jsonl")), judge or judge_of(mesh))


def rows(quick: bool = False) -> list[Row]:
    from engine.explore.minimize import minimize
    from engine.explore.search import Bounds, search
    from engine.runtime.interpreter import Runtime

    depth = 2 if quick else 3
    mesh, session = _session(CHECKOUT)
    repeat = 1 if quick else 3
    hashed_time, hashed = best_of(lambda: search(session, Bounds(depth=depth, seconds=600)), repeat)
    plain_time, plain = best_of(lambda: search(session, Bounds(depth=depth, seconds=600, hashing=False)), 1)
    inputs = session.inputs
    n = 200 if quick else 1000
    run_time, _ = best_of(lambda: [Runtime(mesh).run(inputs) for _ in range(n)], 3)
    per_second, runs_per_second = hashed.runs / hashed_time, n / run_time
    both_spent = hashed.exhausted and plain.exhausted
    out = [
        Row("explore", f"checkout, depth {depth}: explorations/s", fmt_rate(per_second, "runs/s"),
            fmt_rate(runs_per_second, "runs/s"), per_second / runs_per_second, "of plain run",
            check="ok" if both_spent else "space not spent",
            extra={"runs": hashed.runs, "seconds": hashed_time, "states": hashed.states, "cut": hashed.cut}),
        Row("explore", f"checkout, depth {depth}: state hashing", f"{hashed.runs:,} runs",
            f"{plain.runs:,} runs", plain.runs / hashed.runs, "fewer runs",
            check="ok" if both_spent else "space not spent",
            extra={"with": hashed_time, "without": plain_time}),
        Row("explore", f"checkout, depth {depth}: time with / without hashing", fmt_time(hashed_time),
            fmt_time(plain_time), plain_time / hashed_time, "speed-up"),
    ]
    _, buggy = _session(BUGGY)

    def find():
        report = search(buggy, Bounds(depth=2, seconds=600))
        return report, minimize(buggy, report.found) if report.found else None

    found_time, (report, minimal) = best_of(find, 1 if quick else 3)
    out.append(Row("explore", "buggy-checkout: planted bug found and minimised", fmt_time(found_time),
                   check="ok" if minimal is not None and len(minimal.deviations) == 1 else "not found",
                   extra={"runs": report.runs, "minimising runs": minimal.tries if minimal else 0}))
    return out


if __name__ == "__main__":
    from .common import table

    print(table(rows()))
