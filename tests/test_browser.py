"""A real browser: headless Debian Chromium (Playwright's own download does not work here) loads the app,
starts a short run on a tiny model, sees the loss curve appear, and saves a screenshot of each tab under
test-artifacts/."""
from __future__ import annotations

import re

from helpers import ART, assert_screenshots, needs_chromium, open_page, seed_home, start_app, stop_app

pytestmark = needs_chromium


def pick_first(page, dropdown: str) -> None:
    page.locator(f"{dropdown} input").first.click()
    page.get_by_role("option").first.click()


def test_browser_trains_and_shows_curve(tmp_path, tiny_model_dir):
    from playwright.sync_api import expect, sync_playwright
    home = tmp_path / "home"
    seed_home(home)
    tiny = tiny_model_dir
    proc, url = start_app(home)
    ART.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser, page = open_page(p, url)
            expect(page.get_by_text("LoPT Lab", exact=False).first).to_be_visible(timeout=60_000)
            expect(page.locator("#lopt-readout")).to_contain_text("fewer than prompt tuning", timeout=30_000)

            # a short run on the tiny model: type its folder as the model, few steps, small eval
            model = page.locator("input[aria-label='Model'], [aria-label='Model'] input").first
            model.click()
            model.fill(tiny)
            model.press("Enter")
            page.get_by_text("Training settings").click()
            for label, value in (("steps", "6"), ("batch size", "2"), ("evaluate every (steps, 0 = end only)", "3"),
                                 ("eval examples (0 = all)", "8")):
                box = page.get_by_label(label, exact=True)
                for _ in range(5):  # a just-opened accordion may re-render its inputs once: type until it holds
                    box.fill(value)
                    box.press("Tab")
                    page.wait_for_timeout(300)
                    if box.input_value() == value:
                        break
                expect(box).to_have_value(value)
            page.locator("#lopt-train").click()
            expect(page.locator("#lopt-status")).to_contain_text("Queued", timeout=30_000)
            # the loss curve appears (a plotly trace path inside the plot), then the run finishes
            expect(page.locator("#lopt-curves .js-plotly-plot .scatterlayer .trace").first).to_be_attached(
                timeout=90_000)
            expect(page.locator("#lopt-progress")).to_contain_text("done", timeout=120_000)
            # the run picker's label follows the run's state
            expect(page.locator("#lopt-watch input")).to_have_value(re.compile(r"· done"), timeout=10_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ART / "tab-train.png"), full_page=True)

            page.get_by_role("tab", name="Compare").click()
            expect(page.locator("#lopt-tradeoff .js-plotly-plot .scatterlayer .trace").first).to_be_attached(
                timeout=30_000)
            expect(page.locator("#lopt-runs-table")).to_contain_text("done", timeout=10_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ART / "tab-compare.png"), full_page=True)

            page.get_by_role("tab", name="Generate").click()
            pick_first(page, "#lopt-gen-runs")
            page.keyboard.press("Escape")
            page.locator("#lopt-generate").click()
            expect(page.locator("#lopt-gen-probs-1")).to_contain_text("positive", timeout=60_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(ART / "tab-generate.png"), full_page=True)

            page.get_by_role("tab", name="Runs").click()
            pick_first(page, "#lopt-runs-select")
            expect(page.locator("#lopt-runs-details")).to_contain_text("lopt1", timeout=20_000)
            page.screenshot(path=str(ART / "tab-runs.png"), full_page=True)
            browser.close()
    finally:
        stop_app(proc)
    assert_screenshots("tab-train", "tab-compare", "tab-generate", "tab-runs")
