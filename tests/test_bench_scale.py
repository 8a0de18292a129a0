"""`python -m bench scale` and `python -m bench.scalecost`: the per-event cost of a deployment
and the model built on it. The model is checked on made-up costs (which bound sets the rate);
the measurement on a small drain of the game example (what it counts is there, and adds up).
Nothing here looks at a time."""
from __future__ import annotations

import dataclasses

from bench import scalecost
from bench.scalecost import Cost, predict, predict_here

COST = Cost(events=1000, seconds=1.0, worker_cpu_us=400.0, redis_cpu_us=100.0, commands=11.0,
            round_trips=1.5, loopback_rtt_us=50.0, shares=(0.05,) * 20)


def test_few_workers_set_the_rate_and_many_hit_the_redis_bound():
    few, many = predict(COST, 1, 1, 250), predict(COST, 128, 1, 250)
    assert few["bound"] == "workers" and few["events_per_s"] == round(1e6 / (400 + 1.5 * 250))
    assert many["bound"] == "redis" and many["events_per_s"] == round(1e6 / 100)


def test_a_partition_that_does_most_of_the_work_caps_the_rate_whatever_the_workers():
    skewed = dataclasses.replace(COST, shares=(0.5,) + (0.05,) * 10)
    per_worker = 1e6 / (400 + 1.5 * 250)
    assert predict(skewed, 1, 1, 250)["bound"] == "workers"
    # 2 workers: partitions 0, 2, 4, ... (0.5 + 5 × 0.05) are the first's
    assert predict(skewed, 2, 6, 250) == {
        "workers": 2, "primaries": 6, "events_per_s": round(per_worker / 0.75), "bound": "partitions"}
    for workers in (11, 32, 128):  # a partition each: the busiest alone bounds it
        expected = {"workers": workers, "primaries": 6, "events_per_s": round(per_worker / 0.5),
                    "bound": "partitions"}
        assert predict(skewed, workers, 6, 250) == expected
    most = dataclasses.replace(COST, shares=(0.8, 0.2))
    assert predict_here(most, 2)["events_per_s"] == round(1e6 / (400 + 1.5 * 50) / 0.8)


def test_with_even_partitions_the_speed_up_stops_at_their_number():
    even = dataclasses.replace(COST, redis_cpu_us=1.0, shares=(0.125,) * 8)
    per_worker = 1e6 / (400 + 1.5 * 250)
    assert predict(even, 8, 1, 250)["events_per_s"] == round(8 * per_worker)
    assert predict(even, 32, 1, 250) == {
        "workers": 32, "primaries": 1, "events_per_s": round(8 * per_worker), "bound": "partitions"}


def test_more_primaries_never_lower_the_rate_and_lift_the_redis_bound():
    for workers in (8, 32, 128):
        rates = [predict(COST, workers, p, 250)["events_per_s"] for p in (1, 3, 6)]
        assert rates == sorted(rates)
    assert predict(COST, 128, 6, 250)["events_per_s"] > predict(COST, 128, 1, 250)["events_per_s"]


def test_on_two_shared_cores_the_model_counts_redis_cpu_against_the_workers():
    one, two = predict_here(COST, 1)["events_per_s"], predict_here(COST, 2)["events_per_s"]
    assert one == round(1e6 / (400 + 1.5 * 50))
    assert two == round(2e6 / (400 + 100))  # both cores busy: the workers and Redis share them
    assert two < 2 * one


def test_a_small_drain_is_measured_per_input_event(redis_url, tmp_path, monkeypatch):
    monkeypatch.setattr(scalecost, "REDIS", redis_url.split("?")[0])
    cost = scalecost.measure(150, tmp_path)
    assert cost.events == 150
    assert cost.worker_cpu_us > 0 and cost.redis_cpu_us > 0 and cost.loopback_rtt_us > 0
    # a unit of work is one script with many commands in it: more commands than requests
    assert cost.commands > cost.round_trips > 0
    assert 0 < cost.busiest_share <= 1 and abs(sum(cost.shares) - 1) < 1e-9

