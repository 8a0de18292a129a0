"""Benchmarks against peers: ``python -m bench`` (all workloads; see docs/performance.md), or one
module alone, e.g. ``python -m bench.routing``."""
