"""A first visit, as a teacher would make it: the shipped atlas is on the Train and Compare tabs with its methods
told apart; then a guided experiment over n fills the score-vs-n view and its reading gives paired verdicts.
Screenshots under test-artifacts/: first-visit-train.png, first-visit-compare.png, reading-paired.png,
n-view.png."""
from __future__ import annotations

from helpers import ART, assert_screenshots, needs_chromium, open_page, seed_home, start_app, stop_app

pytestmark = needs_chromium

LEGEND = ".legend .traces .legendtext"


def legend(page, plot: str) -> list[str]:
    return page.locator(f"{plot} {LEGEND}").all_text_contents()  # SVG text: no innerText


def test_first_visit_shows_the_atlas_then_an_n_experiment_and_its_paired_reading(tmp_path, tiny_model_dir):
    from playwright.sync_api import expect, sync_playwright
    from lopt_core.sweeps import results_file
    home = tmp_path / "home"
    seed_home(home)
    proc, url = start_app(home)
    ART.mkdir(exist_ok=True)
    methods = {r["method"] for r in results_file.atlas_rows() if r["task"] == "sst2"}
    try:
        with sync_playwright() as p:
            browser, page = open_page(p, url)
            atlas = "#lopt-train-atlas"
            expect(page.locator(f"{atlas} .js-plotly-plot .scatterlayer .trace").first).to_be_attached(timeout=60_000)
            names = legend(page, atlas)
            assert len([n for n in names if n.startswith("atlas: ")]) == len(methods) >= 4, names
            page.locator(atlas).scroll_into_view_if_needed()
            page.wait_for_timeout(800)
            page.screenshot(path=str(ART / "first-visit-train.png"), full_page=True)

            page.get_by_role("tab", name="Compare").click()
            expect(page.locator("#lopt-tradeoff .js-plotly-plot .scatterlayer .trace").first).to_be_attached(
                timeout=30_000)
            assert {"atlas: Prompt tuning", "atlas: LoPT-1", "atlas: ULPT"} <= set(legend(page, "#lopt-tradeoff"))
            expect(page.locator("#lopt-by-r .js-plotly-plot .scatterlayer .trace").first).to_be_attached()
            page.wait_for_timeout(800)
            page.screenshot(path=str(ART / "first-visit-compare.png"), full_page=True)

            # the guided experiment that varies n, on the tiny model
            page.get_by_role("tab", name="Sweep").click()
            model = page.locator("#lopt-sweep-model input").first
            model.click()
            model.fill(tiny_model_dir)
            model.press("Enter")
            expect(page.locator("#lopt-preset-note-longer_prompts")).to_contain_text("configurations", timeout=30_000)
            page.locator("#lopt-preset-longer_prompts").click()
            expect(page.locator("#lopt-sweep-status")).to_contain_text("Queued", timeout=30_000)
            expect(page.locator("#lopt-sweep-progress")).to_contain_text("· done ·", timeout=480_000)
            reading = page.locator("#lopt-sweep-reading")
            expect(reading).to_contain_text("paired over", timeout=20_000)
            expect(reading).to_contain_text("prompt tuning")
            reading.scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ART / "reading-paired.png"), full_page=True)

            page.get_by_role("tab", name="Compare").click()
            page.locator("#lopt-compare-refresh").click()
            expect(page.locator("#lopt-by-n .js-plotly-plot .scatterlayer .trace").first).to_be_attached(
                timeout=30_000)
            by_n = legend(page, "#lopt-by-n")
            assert "LoPT-1 r=2" in by_n and "Prompt tuning" in by_n, by_n
            page.locator("#lopt-by-n").scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ART / "n-view.png"), full_page=True)
            browser.close()
    finally:
        stop_app(proc)
    assert_screenshots("first-visit-train", "first-visit-compare", "reading-paired", "n-view")
