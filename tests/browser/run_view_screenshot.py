"""Write the PNG of the quick start's run view to docs/images/ (docs/render.md shows it).

    .venv/bin/python tests/browser/run_view_screenshot.py [--out FILE] [--size 1280x800]

The page is the README quick start's (`meshctl run workflows/orders ... --trace`, then
`meshctl render --trace ... --format html`), shot in Debian's chromium as it first appears:
fitted to the window. Run it after a change to the run view.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

from browser_support import browser_problem, launch

REPO = Path(__file__).resolve().parents[2]
ORDERS = REPO / "workflows" / "orders"


def quick_start_page(where: Path) -> Path:
    """The quick start's commands, run in *where* (so the page names the trace as they do)."""
    from cli import main

    runner = CliRunner()
    with contextlib.chdir(where):
        for args in (["run", ORDERS, "--events", ORDERS / "events.jsonl", "--trace", "orders.trace.jsonl"],
                     ["render", "--trace", "orders.trace.jsonl", "--format", "html", "-o", "orders-run.html"]):
            result = runner.invoke(main, [str(a) for a in args])
            if result.exit_code != 0:
                raise SystemExit(result.output)
        return Path("orders-run.html").resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "render-orders-run.png")
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    problem = browser_problem()
    if problem is not None:
        print(f"run_view_screenshot: {problem}", file=sys.stderr)
        return 1
    width, height = (int(v) for v in args.size.split("x"))
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(quick_start_page(Path(tmp)).as_uri(), wait_until="load")  # read before the folder goes
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"{args.out}: {args.out.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
