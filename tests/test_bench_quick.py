"""`python -m bench --quick` never writes docs/performance.md: its figures (smaller inputs, a
missing peer) are not those of the targets. It writes bench/results/quick.md; a full run
writes the doc. The workloads themselves are replaced by one row each here."""
from __future__ import annotations

import json
import types

import pytest

import bench.__main__ as bench_main
from bench import report
from bench.common import Row

MACHINE = {"date": "Mon Dec  7 10:00:00 UTC 2026", "commit": "abc1234", "nproc": "2", "cpu": "test",
           "memory": "1 GiB", "python": "3.11", "implementation": "CPython", "platform": "Linux",
           "peers": {"bytewax": None}}


@pytest.fixture
def bench_dirs(tmp_path, monkeypatch):
    results, doc = tmp_path / "results", tmp_path / "performance.md"
    monkeypatch.setattr(bench_main, "RESULTS", results)
    monkeypatch.setattr(bench_main, "REPO", tmp_path)
    monkeypatch.setattr(report, "RESULTS", results)
    monkeypatch.setattr(report, "DOC", doc)
    monkeypatch.setattr(bench_main, "machine", lambda: dict(MACHINE))

    def workload(name):
        short = name.lstrip(".")
        return types.SimpleNamespace(
            rows=lambda quick: [Row(short, "quick" if quick else "full", "1 ev/s", target="x", met=not quick)]
        )
    monkeypatch.setattr(bench_main.importlib, "import_module", lambda name, package=None: workload(name))
    return results, doc


def test_a_quick_run_writes_its_own_report_and_leaves_the_doc_alone(bench_dirs, capsys):
    results, doc = bench_dirs
    assert bench_main.main(["--quick"]) == 0
    assert not doc.exists() and not (results / "latest.json").exists()
    assert json.loads((results / "quick.json").read_text())["quick"] is True
    assert "not comparable with the targets" in (results / "quick.md").read_text()
    assert "wrote results/quick.json and results/quick.md" in capsys.readouterr().out


def test_a_full_run_writes_the_doc_and_a_quick_one_then_keeps_it(bench_dirs):
    results, doc = bench_dirs
    assert bench_main.main([]) == 0
    written = doc.read_text()
    assert (
        "## Figures: this run" in written
        and "quick" not in json.loads((results / "latest.json").read_text())["command"]
    )
    assert bench_main.main(["--quick"]) == 0
    assert doc.read_text() == written
    assert not (results / "previous.json").exists()  # the full run stays the latest
    assert bench_main.main(["--report"]) == 0 and doc.read_text() == written
