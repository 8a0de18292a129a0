"""Issue 4's multi-worker test: 3 `meshctl worker` processes on Redis (one server, or a
cluster) drain a few thousand game-example events with injected faults; one is SIGKILLed
mid-run. Every event must be accounted for and the results identical to a single-process
`meshctl run` on SQLite."""
from __future__ import annotations

import pytest

from bench.scaleout import compare

pytestmark = pytest.mark.slow  # starts servers and workers, or routes at volume


@pytest.mark.parametrize(("seed", "server"), [(11, "redis_url"), (12, "redis_url"),
                                              (11, "redis_cluster_url")])
def test_three_workers_one_killed_give_the_results_of_one_process(seed, server, request, tmp_path):
    """On one Redis server, and on a Redis Cluster (where units' tasks for other partitions go
    through their partition's outbox)."""
    redis = request.getfixturevalue(server).split("?")[0]
    result = compare(2000, workers=3, kill=True, workdir=tmp_path, seed=seed, redis=redis)
    assert result["killed"] in ("w1", "w2", "w3"), result
    assert result["exit_codes"][result["killed"]] == -9
    assert all(code == 0 for name, code in result["exit_codes"].items() if name != result["killed"]), result
    assert result["backlog"] == 0, result  # nothing left in a queue
    assert result["identical"], (result["different"], result["summary"], result["reference_summary"])
    assert result["summary"]["events_in"] == 2000  # every input accounted for
    assert result["dead_letters"] > 0 and result["emitted"] > 1000
