"""Issue 4's multi-worker test: 3 `meshctl worker` processes on Redis drain a few thousand
game-example events with injected faults; one is SIGKILLed mid-run. Every event must be
accounted for and the results identical to a single-process `meshctl run` on SQLite."""
from __future__ import annotations

import pytest

from bench.scaleout import compare

pytestmark = pytest.mark.slow  # starts servers and workers, or routes at volume


@pytest.mark.parametrize("seed", [11, 12])
def test_three_workers_one_killed_give_the_results_of_one_process(seed, redis_url, tmp_path):
    result = compare(2000, workers=3, kill=True, workdir=tmp_path, seed=seed)
    assert result["killed"] in ("w1", "w2", "w3"), result
    assert result["exit_codes"][result["killed"]] == -9
    assert all(code == 0 for name, code in result["exit_codes"].items() if name != result["killed"]), result
    assert result["backlog"] == 0, result  # nothing left in a queue
    assert result["identical"], (result["different"], result["summary"], result["reference_summary"])
    assert result["summary"]["events_in"] == 2000  # every input accounted for
    assert result["dead_letters"] > 0 and result["emitted"] > 1000
