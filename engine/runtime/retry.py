"""Retry delays: backoff shape, cap and jitter, from a RetrySpec.

Jitter draws from a ``random.Random`` seeded by (run seed, event id, consumer, attempt), so a
delay depends only on what is being retried, not on what else happened first: the same
input and seed always give the same schedule.

A delay never exceeds ``max_delay``, nor the longest duration (``36500d``) when there is none:
exponential growth over up to 1,000 attempts would otherwise overflow a float.
"""
from __future__ import annotations

import math
import random

from ..core.errors import Location
from ..language.model import MAX_DURATION, RetrySpec

DEFAULT_RETRY = RetrySpec(loc=Location("<default>"), max_attempts=3, backoff="exponential", initial=1.0,
                          multiplier=2.0, max_delay=300.0, jitter="full")
NO_RETRY = RetrySpec(loc=Location("<default>"), max_attempts=1)


def base_delay(spec: RetrySpec, failures: int) -> float:
    """The delay before retry number *failures* (1 = after the first failure), before jitter.

    >>> spec = RetrySpec(loc=None, backoff="exponential", initial=1.0, multiplier=2.0, max_delay=5.0)
    >>> [base_delay(spec, n) for n in range(1, 6)]
    [1.0, 2.0, 4.0, 5.0, 5.0]
    >>> base_delay(RetrySpec(loc=None, multiplier=1000.0), 1000)  # 1000**999 would overflow: the longest
    duration
    3153600000.0
    """
    if spec.backoff == "fixed":
        delay = spec.initial
    elif spec.backoff == "linear":
        delay = spec.initial * failures
    else:
        delay = _grown(spec.initial, spec.multiplier, min(failures - 1, 1000))
    return min(delay, MAX_DURATION if spec.max_delay is None else spec.max_delay, MAX_DURATION)


def _grown(initial: float, multiplier: float, times: int) -> float:
    """``initial * multiplier ** times``, infinite where a float would overflow."""
    if initial == 0 or multiplier == 1:
        return initial
    try:
        return initial * multiplier**times
    except OverflowError:
        return math.inf


def delay(spec: RetrySpec, failures: int, seed: int, event_key: str, consumer: str) -> float:
    """The jittered delay before retry number *failures*; the jitter is seeded per delivery
    (*event_key*: the event's identity), so two events never share it."""
    full = base_delay(spec, failures)
    if spec.jitter == "none" or full <= 0:
        return full
    rng = random.Random(f"{seed}:{event_key}:{consumer}:{failures}")
    if spec.jitter == "full":
        return rng.uniform(0.0, full)
    return full / 2 + rng.uniform(0.0, full / 2)
