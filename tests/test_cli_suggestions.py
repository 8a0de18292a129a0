"""Values of options are checked, with a did-you-mean when a known value is close.

`--reason` takes a dead-letter reason (a usage error otherwise, before anything is read or
removed); `--fault` and `replay --to` a consumer of the mesh; `dlq show` a record id. Filters
that may rightly match nothing (`--consumer`, `--id`, `runs list --orchestration`) keep
working and print a note on stderr when nothing has that value.
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARENA = REPO / "workflows" / "arena"
ORDERS = REPO / "workflows" / "orders"
SCORE = "service:score-service/score.recorded"


@pytest.fixture
def dlq(meshctl, tmp_path) -> Path:
    path = tmp_path / "dlq.jsonl"
    assert meshctl("run", ARENA, "--events", ARENA / "events.jsonl", "--dlq-out", path).exit_code == 0
    return path


@pytest.mark.parametrize("command", [["dlq", "list"], ["dlq", "purge"], ["dlq", "replay", ARENA]])
def test_a_misspelt_reason_is_a_usage_error_with_a_suggestion(meshctl, dlq, command):
    before = dlq.read_text()
    result = meshctl(*command, "--dlq", dlq, "--reason", "retries-exausted")
    assert result.exit_code == 2
    assert ("Error: Invalid value for '--reason': 'retries-exausted' is not a dead-letter reason; "
            "did you mean 'retries-exhausted'?") in result.output
    assert dlq.read_text() == before


def test_an_unknown_reason_lists_the_reasons(meshctl, dlq):
    result = meshctl("dlq", "list", "--dlq", dlq, "--reason", "broken")
    assert result.exit_code == 2
    assert (
        "'broken' is not a dead-letter reason; reasons: retries-exhausted, non-retryable, expired,"
        in result.output
    )


def test_every_known_reason_is_accepted(meshctl, dlq):
    result = meshctl("dlq", "list", "--dlq", dlq, "--reason", "sequence-gap")
    assert (result.exit_code, result.output) == (0, "0 dead letters\n")


@pytest.mark.parametrize(("fault", "problem"), [
    (f"{SCORE[:-1]}=2", f"; no consumer {SCORE[:-1]!r}: did you mean {SCORE!r}?"),
    (SCORE.replace("score-service", "score-servce"),
     f"; no consumer {SCORE.replace('score-service', 'score-servce')!r}: did you mean {SCORE!r}?"),
    (SCORE.replace("score-service", "score-servce") + ":TimeoutError",
     f"; no consumer {SCORE.replace('score-service', 'score-servce')!r}: did you mean {SCORE!r}?"),
    (f"{SCORE}=x", f"; after {SCORE!r}, '=x' is not =TIMES|always[:ERROR]"),
])
def test_a_misspelt_fault_consumer_gets_a_suggestion(meshctl, fault, problem):
    result = meshctl("run", ARENA, "--events", ARENA / "events.jsonl", "--fault", fault)
    assert (result.exit_code, result.output) == (
        2, f"meshctl: --fault {fault!r}: expected CONSUMER[=TIMES|always][:ERROR]{problem}\n")


def test_a_fault_consumer_like_none_lists_them_all(meshctl):
    result = meshctl("run", ARENA, "--events", ARENA / "events.jsonl", "--fault", "nothing-like-it=1")
    assert result.exit_code == 2 and result.output.startswith(
        "meshctl: --fault 'nothing-like-it=1': "
        "expected CONSUMER[=TIMES|always][:ERROR] with CONSUMER one of: "
        "route:ranked-scores, service:match-service/match.requested")


def test_dlq_show_of_a_misspelt_id_suggests_the_record(meshctl, dlq):
    record = dlq.read_text().split('"id": "', 1)[1][:16]
    wrong = record[:-1] + ("0" if record[-1] != "0" else "1")
    result = meshctl("dlq", "show", "--dlq", dlq, wrong)
    assert result.exit_code == 2
    assert f"no dead letter {wrong!r} in {dlq}; did you mean {record!r}?" in result.output


def test_filters_that_match_nothing_say_so_on_stderr(meshctl, dlq):
    result = meshctl("dlq", "list", "--dlq", dlq, "--consumer", "stream:leaderbord", "--id", "nothing")
    assert result.exit_code == 0 and result.stdout == "0 dead letters\n"
    assert result.stderr == ("meshctl dlq: note: no dead letter has consumer 'stream:leaderbord'; "
                             "did you mean 'stream:leaderboard'?\n"
                             "meshctl dlq: note: no dead letter has id 'nothing'\n")
    assert meshctl("dlq", "list", "--dlq", dlq, "--consumer", "stream:leaderboard").stderr == ""


def test_replay_to_and_runs_list_orchestration_suggest(meshctl, tmp_path):
    db = f"sqlite:{tmp_path / 'orders.db'}"
    assert meshctl("run", ORDERS, "--events", ORDERS / "events.jsonl", "--store", db).exit_code == 0
    to = meshctl("replay", ORDERS, "--store", db, "--to", "service:notifications/order.faild")
    assert to.exit_code == 2 and to.output == (
        "meshctl: --to 'service:notifications/order.faild': not a consumer of "
        "the mesh; did you mean 'service:notifications/order.failed'?\n"
    )
    runs = meshctl("runs", "list", "--store", db, "--orchestration", "fulfil-ordr")
    assert runs.exit_code == 0 and runs.stdout == "0 runs\n"
    assert (
        runs.stderr
        == "meshctl runs: note: no run of orchestration 'fulfil-ordr'; did you mean 'fulfil-order'?\n"
    )
