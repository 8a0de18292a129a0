"""Where the browser tests find chromium, how they launch it, and what to do when they cannot.

A plain module (tests/ is not a package), shared by conftest.py and the screenshot script.
"""
from __future__ import annotations

import os

import pytest

CHROMIUM = os.environ.get("MESHCTL_TEST_CHROMIUM", "/usr/bin/chromium")
# playwright cannot download a browser here; these keep chromium off the network
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def browser_problem() -> str | None:
    """Why browser tests cannot run here (None: they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no chromium at {CHROMIUM} (run .ci/install-browser)"
    return None


def require_browser() -> None:
    """Skip the test with the reason when chromium cannot run; under CI=true fail instead."""
    problem = browser_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and browser tests cannot run: {problem}")
        pytest.skip(problem)


def launch(playwright):
    """Launch Debian's chromium headless through a started playwright."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
