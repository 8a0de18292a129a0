"""`python -m bench explore`: its rows say what the search did, and their check column holds
only when the fixed mesh's space was spent without a violation and the planted bug was found
with one choice. Nothing here looks at a time."""
from __future__ import annotations

import pytest

import bench.__main__ as bench_main
from bench import explore


@pytest.fixture(scope="module")
def rows():
    return explore.rows(quick=True)


def test_explore_is_a_workload_of_the_suite():
    assert "explore" in bench_main.WORKLOADS


def test_the_rows_check_what_the_search_found(rows):
    cases = {row.case: row for row in rows}
    rate = cases["checkout, depth 2: explorations/s"]
    assert rate.check == "ok" and rate.extra["runs"] == 401 and 0 < rate.ratio
    hashing = cases["checkout, depth 2: state hashing"]
    assert hashing.ours == "401 runs" and hashing.ratio > 1 and hashing.check == "ok"
    found = cases["buggy-checkout: planted bug found and minimised"]
    assert found.check == "ok" and found.extra["runs"] >= 2
