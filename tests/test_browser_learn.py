"""A real browser on the Learn tab: the page fills in with the default model's numbers when the tab opens, the
chart draws a line per method, and moving n changes the live formulas. Screenshot: test-artifacts/tab-learn.png."""
from __future__ import annotations

import pytest

from helpers import ART, needs_chromium, open_page, seed_home, start_app, stop_app

pytestmark = needs_chromium


@pytest.fixture
def app_url(tmp_path):
    seed_home(tmp_path / "home")
    proc, url = start_app(tmp_path / "home")
    yield url
    stop_app(proc)


def test_browser_learn_tab(app_url):
    from playwright.sync_api import expect, sync_playwright
    ART.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser, page = open_page(p, app_url)
        try:
            page.get_by_role("tab", name="Learn").click()
            summary = page.locator("#lopt-learn-summary")
            expect(summary).to_contain_text("d = 576", timeout=60_000)
            expect(summary).to_contain_text("11,520", timeout=10_000)
            expect(page.locator("#lopt-learn-table")).to_contain_text("LoRA", timeout=30_000)
            expect(page.locator("#lopt-learn-table")).not_to_contain_text("choose a model", timeout=30_000)
            expect(page.locator("#lopt-learn-chart .js-plotly-plot .scatterlayer .trace").first).to_be_attached(
                timeout=30_000)
            box = page.locator("#lopt-learn-n input[type='number']")
            box.fill("10")
            box.press("Enter")
            page.locator("#lopt-learn-n input[type='range']").dispatch_event("pointerup")
            expect(summary).to_contain_text("n = 10", timeout=30_000)
            expect(summary).to_contain_text("5,760", timeout=10_000)  # 10 · 576
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ART / "tab-learn.png"), full_page=True)
        finally:
            browser.close()
    assert (ART / "tab-learn.png").stat().st_size > 10_000
