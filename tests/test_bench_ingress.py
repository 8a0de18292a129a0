"""`python -m bench ingress`: the rows made from a run's figures (the targets of issue 18), and
the load generator against a real `meshctl serve` for a moment (what it counts, not how fast).
Nothing here looks at a time."""
from __future__ import annotations

import copy

import pytest

from bench.common import REPO
from bench.ingress import STRUCTURED, Load, Server, table_rows

FIGURES = {
    "workers": 2,
    "single": {
        "uvicorn": {"accepted_per_s": 3000.0, "cpu_ms_per_request": 0.25},
        "waitress-4": {"accepted_per_s": 2000.0},
        "waitress-8": {"accepted_per_s": 1500.0},
        "refused": {"status_503": 900, "cpu_ms_per_request": 0.1},
    },
    "batch": {
        "uvicorn": {"accepted_per_s": 20000.0, "cpu_ms_per_request": 4.0},
        "waitress-4": {"accepted_per_s": 16000.0},
        "waitress-8": {"accepted_per_s": 25000.0},
        "refused": {"status_503": 800, "cpu_ms_per_request": 0.12},
    },
    "capacity": {"processed_per_s": 1000.0},
    "overload": {"accepted_per_s": 850.0, "offered_per_s": 2000.0, "status_202": 850, "status_503": 1275,
                 "p50_ms": 20.0, "processed_per_s": 860.0, "server_cores": 0.4, "client_cores": 0.1},
}


def rows_by_case(figures):
    return {row.case.split(" (")[0].split(",")[0]: row for row in table_rows(figures)}


def test_the_rows_compare_with_the_better_waitress_and_hold_the_targets():
    rows = rows_by_case(FIGURES)
    assert rows["single-event ingest"].ratio == 1.5 and "waitress-4" in rows["single-event ingest"].peer
    assert rows["batch ingest"].ratio == 0.8 and "waitress-8" in rows["batch ingest"].peer
    refusals = [r for r in table_rows(FIGURES) if r.case.startswith("refusal cost")]
    assert [(r.ratio, r.met, r.check) for r in refusals] == [(0.4, False, "all 503"), (0.03, True, "all 503")]
    overload = rows["2× overload"]
    assert (overload.ratio, overload.met) == (0.85, True) and "60% refused" in overload.check


@pytest.mark.parametrize(("accepted", "met"), [(800.0, True), (799.0, False)])
def test_the_overload_target_is_eighty_percent_of_the_capacity(accepted, met):
    figures = copy.deepcopy(FIGURES)
    figures["overload"]["accepted_per_s"] = accepted
    assert rows_by_case(figures)["2× overload"].met is met


def test_a_refusal_row_says_so_when_a_request_was_accepted():
    figures = copy.deepcopy(FIGURES)
    figures["single"]["refused"]["status_202"] = 1
    refusal = next(r for r in table_rows(figures) if r.case.startswith("refusal cost, single"))
    assert refusal.check == "NOT all refused"


@pytest.mark.slow
def test_the_load_generator_counts_every_answer_of_a_real_server(redis_url, tmp_path):
    event = (REPO / "workflows" / "arena" / "events.jsonl").read_bytes().splitlines()[0]
    server = Server(redis_url, tmp_path, "uvicorn", 2, max_backlog=5)
    try:
        answers = Load([event], STRUCTURED).drive(server, 1.0, connections=2)["answers"]
    finally:
        server.stop()
    assert set(answers) == {202, 503} and len(answers[202]) >= 5  # accepted up to the limit, then refused
