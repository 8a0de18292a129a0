"""Write PNG screenshots of the diagram pages and the run view to docs/images/ (docs/render.md shows them).

    .venv/bin/python tests/browser/screenshots.py [--out DIR] [--size 1280x800]

Each page is rendered by ``meshctl render ... --format html`` (the run view: the README quick
start's `meshctl run workflows/orders ... --trace`, then `meshctl render --trace ... --format
html`) and shot in Debian's chromium as it first appears: fitted to the window. Run it after
a change to the drawing.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from browser_support import browser_problem, launch
from click.testing import CliRunner
from test_flow_pages import PAGES, REPO, render_page

ORDERS = REPO / "workflows" / "orders"


def quick_start_page(where: Path) -> Path:
    """The quick start's commands, run in *where* (so the page names the trace as they do)."""
    from cli import main

    runner = CliRunner()
    with contextlib.chdir(where):
        for args in (["run", ORDERS, "--events", ORDERS / "events.jsonl", "--trace", "orders.trace.jsonl"],
                     ["render", "--trace", "orders.trace.jsonl", "--format", "html", "-o",
                      "orders-run.html"]):
            result = runner.invoke(main, [str(a) for a in args])
            if result.exit_code != 0:
                raise SystemExit(result.output)
        return Path("orders-run.html").resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    problem = browser_problem()
    if problem is not None:
        print(f"screenshots: {problem}", file=sys.stderr)
        return 1
    width, height = (int(v) for v in args.size.split("x"))
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": width, "height": height})
        shots = [(name, lambda name=name: render_page(name, Path(tmp))) for name in PAGES]
        shots.append(("orders-run", lambda: quick_start_page(Path(tmp))))
        for name, make_page in shots:
            page.goto(make_page().as_uri(), wait_until="load")  # read before the folder goes
            target = args.out / f"render-{name}.png"
            page.screenshot(path=str(target))
            shown = target.relative_to(REPO) if target.is_relative_to(REPO) else target
            print(f"{shown}: {target.stat().st_size // 1024} KiB")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
