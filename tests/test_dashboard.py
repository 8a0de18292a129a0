"""docs/grafana-dashboard.json asks only for metrics meshctl exposes: every `meshctl_*` name in
its queries is a row of the metrics table of docs/observability.md (a histogram's series by
their `_bucket`, `_count` and `_sum` names), and every row of that table is drawn somewhere.
The table itself is held to what /metrics answers by tests/cluster/test_observability.py."""
from __future__ import annotations

import json
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
NAME = re.compile(r"\bmeshctl_[a-z_]+")


def documented() -> set[str]:
    text = (DOCS / "observability.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(meshctl_[a-z_]+)` \|", text, flags=re.M))


def queried() -> set[str]:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    names = {name for expr in exprs for name in NAME.findall(expr)}
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in names}


def test_the_dashboard_asks_only_for_documented_metrics():
    assert queried() - documented() == set()


def test_every_documented_metric_is_on_the_dashboard():
    assert documented() - queried() == set()
