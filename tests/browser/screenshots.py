"""Write PNG screenshots of the diagram pages to docs/images/ (docs/render.md shows them).

    .venv/bin/python tests/browser/screenshots.py [--out DIR] [--size 1280x800]

Each page is rendered by ``meshctl render ... --format html`` and shot in Debian's chromium
as it first appears: fitted to the window. Run it after a change to the drawing.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from browser_support import browser_problem, launch
from test_flow_pages import PAGES, REPO, render_page


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
        for name in PAGES:
            page.goto(render_page(name, Path(tmp)).as_uri(), wait_until="load")
            target = args.out / f"render-{name}.png"
            page.screenshot(path=str(target))
            print(f"{target.relative_to(REPO) if target.is_relative_to(REPO) else target}: {target.stat().st_size // 1024} KiB")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
