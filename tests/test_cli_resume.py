"""`meshctl run --resume` says what it resumed: from which input, how many were left, or that
nothing was (on stderr: the summary on stdout stays the whole run's, as an uninterrupted run's)."""
from __future__ import annotations

import json
from pathlib import Path

from engine.runtime.interpreter import Runtime

REPO = Path(__file__).resolve().parent.parent
ARENA = REPO / "workflows" / "arena"
EVENTS_IN = len((ARENA / "events.jsonl").read_text().splitlines())
# a resumed run lacks the history before its restart: the arena's invariants are not judged
NOT_JUDGED = ("meshctl run: invariants not checked: a resumed run does not have the history of what happened "
              "before it was interrupted\n")


def _args(db: Path) -> list:
    return ["run", ARENA, "--events", ARENA / "events.jsonl", "--store", f"sqlite:{db}", "--format", "json",
            "--checkpoint-every", "10"]


def test_resume_after_a_crash_says_where_it_went_on(meshctl, runner, tmp_path, monkeypatch, unjudged):
    from cli import main

    feed = Runtime.feed

    def crash_at_25(self, item):  # the process dies reading input 25: inputs 1-20 were committed
        if self.fed == 24:
            raise SystemError("crash")
        return feed(self, item)

    with monkeypatch.context() as patch:
        patch.setattr(Runtime, "feed", crash_at_25)
        assert runner.invoke(main, [str(a) for a in _args(tmp_path / "a.db")]).exit_code == 70
    resumed = meshctl(*_args(tmp_path / "a.db"), "--resume")
    assert resumed.stderr == NOT_JUDGED + (
        f"meshctl run: resumed the run in sqlite:{tmp_path / 'a.db'} after input 20: "
        f"read the {EVENTS_IN - 20} inputs left ({EVENTS_IN} in all); the summary is the whole run's\n"
    )
    whole = meshctl(*_args(tmp_path / "b.db"))
    assert json.loads(resumed.stdout) == unjudged(whole.stdout) and whole.stderr == ""


def test_resume_of_a_finished_run_says_nothing_was_left(meshctl, tmp_path, unjudged):
    db = tmp_path / "done.db"
    first = meshctl(*_args(db))
    again = meshctl(*_args(db), "--resume")
    assert again.exit_code == 0 and json.loads(again.stdout) == unjudged(first.stdout)
    assert again.stderr == NOT_JUDGED + (
        f"meshctl run: the run in sqlite:{db} had already finished ({EVENTS_IN} inputs read): "
        "nothing was left to do; the summary is the whole run's\n"
    )


def test_resume_with_no_run_stored_starts_from_the_first_input(meshctl, tmp_path):
    db = tmp_path / "new.db"
    result = meshctl(*_args(db), "--resume")
    assert result.exit_code == 0 and db.exists()
    assert result.stderr == (f"meshctl run: nothing to resume in sqlite:{db} (no run committed yet): "
                             "started from the first input\n")
    assert json.loads(result.stdout)["events_in"] == EVENTS_IN
