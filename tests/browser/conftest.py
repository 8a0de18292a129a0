"""Browser fixtures: Debian's chromium driven by playwright.

``browser`` is one headless chromium per test module; ``open_page(path_or_html,
width=1280, height=800)`` opens a file (a path, or HTML text written to a temporary file)
in a fresh window of that size and returns the loaded playwright ``Page``. Pages are
closed afterwards, and an uncaught script error on any of them fails the test.

Without chromium or playwright the tests are skipped with the reason, except under
CI=true, where they must run: there they fail (.ci/install-browser installs chromium).
Every test under tests/browser carries the ``browser`` marker: ``-m "not browser"`` skips them;
and the ``slow`` one (a page load is near a second), so ``-m "not slow"`` skips them too.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import launch, require_browser

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def browser():
    """One headless chromium per module. Not per session: playwright's sync API keeps an event
    loop running in the main thread while it is open, and tests elsewhere that run an
    asyncio loop of their own (the ASGI ingress) would fail after the browser tests."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, tmp_path):
    """Factory: open_page(path_or_html, width=1280, height=800) -> a loaded playwright Page."""
    contexts, errors = [], []

    def _open(path_or_html, width: int = 1280, height: int = 800):
        if isinstance(path_or_html, str) and path_or_html.lstrip().startswith("<"):
            path = tmp_path / f"page-{len(contexts)}.html"
            path.write_text(path_or_html, encoding="utf-8")
        else:
            path = Path(path_or_html).resolve()
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{path.name}: {exc}"))
        page.goto(path.as_uri(), wait_until="load")
        return page

    yield _open
    for context in contexts:
        context.close()
    assert not errors, f"script errors on the page: {errors}"
