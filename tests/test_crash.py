"""Crash recovery with SQLite: SIGKILL `meshctl run` at random points of its input, resume, compare with
a clean run."""
from __future__ import annotations

import pytest

from bench.crash_test import crash_test

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_and_resume_neither_loses_nor_repeats(seed, tmp_path):
    result = crash_test(n=1500, kills=3, seed=seed, every=50, workdir=str(tmp_path))
    assert (result["kills"], result["starts"]) == (3, 4), result  # kills follow progress: all three land
    assert result["different"] == [] and result["identical"], result
    assert result["summary_equal"], result
    assert result["dead_letters"] > 0 and result["emitted"] > 1500
