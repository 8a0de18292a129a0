"""The browser fixtures themselves: window size, local pages, and the CI rule for a missing browser."""
from __future__ import annotations

import browser_support
import pytest


def test_open_page_loads_html_text_at_the_window_size(open_page):
    page = open_page("<!doctype html><p id=p>hi</p><script>document.title = 'ran'</script>", width=640,
                     height=480)
    assert page.title() == "ran"
    assert page.evaluate("[innerWidth, innerHeight]") == [640, 480]
    assert page.url.startswith("file://")


def test_open_page_loads_a_file(open_page, tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<!doctype html><title>file</title>", encoding="utf-8")
    assert open_page(path).title() == "file"


def test_missing_chromium_is_a_failure_under_ci(monkeypatch):
    monkeypatch.setattr(browser_support, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and browser tests cannot run: no chromium"):
        browser_support.require_browser()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="no chromium at /nonexistent/chromium"):
        browser_support.require_browser()
