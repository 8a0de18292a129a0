"""Token buckets for ``rate_limit`` on routes and subscriptions, in clock time.

Each attempt takes a token. With ``overflow: delay`` an attempt that finds the bucket empty
reserves the next free token (the bucket goes negative) and is rescheduled for the moment it
becomes available, so a burst is spread out evenly instead of retried in a herd. With
``overflow: dead_letter`` it is dead-lettered as ``rate-limited``.
"""
from __future__ import annotations

from ..language.model import RateLimit


class Buckets:
    def __init__(self):
        self.state: dict[str, list[float]] = {}  # consumer -> [tokens, time of last refill]

    def take(self, consumer: str, limit: RateLimit, now: float, reserve: bool) -> float:
        """0 if a token was taken now; else the wait until one is free (reserved if *reserve*)."""
        tokens, last = self.state.get(consumer, [float(limit.burst), now])
        tokens = min(float(limit.burst), tokens + (now - last) * limit.rate / limit.per)
        if tokens >= 1.0:
            self.state[consumer] = [tokens - 1.0, now]
            return 0.0
        wait = (1.0 - tokens) * limit.per / limit.rate
        self.state[consumer] = [tokens - 1.0 if reserve else tokens, now]
        return wait
