"""The Rank tab in a real browser (Debian chromium): spectra of two runs, a truncation curve computed as a
background job, nearest tokens; screenshots of the tab and each view under test-artifacts/."""
from __future__ import annotations

from helpers import needs_chromium, seed_home, start_app, stop_app
from helpers import seed_runs
from helpers import ART, open_page

pytestmark = needs_chromium


def pick(page, dropdown: str, run_id: str) -> None:
    page.locator(f"{dropdown} input").first.click()
    page.get_by_role("option", name=run_id, exact=False).first.click()


def test_rank_tab_in_the_browser(tmp_path, tiny_model_dir):
    from playwright.sync_api import expect, sync_playwright
    home = tmp_path / "home"
    seed_home(home)
    ids = seed_runs(home, tiny_model_dir)
    proc, url = start_app(home)
    ART.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser, page = open_page(p, url)
            page.get_by_role("tab", name="Rank").click()
            pick(page, "#lopt-spectrum-runs", ids["lopt1"])
            pick(page, "#lopt-spectrum-runs", ids["prompt_tuning"])
            page.keyboard.press("Escape")
            expect(page.locator("#lopt-spectrum .js-plotly-plot .scatterlayer .trace")).to_have_count(2, timeout=30_000)
            expect(page.locator("#lopt-spectrum-table")).to_contain_text(ids["lopt1"], timeout=10_000)

            pick(page, "#lopt-trunc-run", ids["prompt_tuning"])
            page.locator("#lopt-trunc-ranks textarea, #lopt-trunc-ranks input").first.fill("1,3")
            page.locator("#lopt-trunc-size textarea, #lopt-trunc-size input").first.fill("8")
            page.locator("#lopt-trunc-go").click()
            expect(page.locator("#lopt-trunc-status")).to_contain_text("done", timeout=120_000)
            expect(page.locator("#lopt-trunc-fig .js-plotly-plot .scatterlayer .trace").first).to_be_attached(
                timeout=20_000)

            pick(page, "#lopt-near-run", ids["lopt1"])
            page.locator("#lopt-near-go").click()
            expect(page.locator("#lopt-near-table")).to_contain_text("cos 1", timeout=60_000)
            page.wait_for_timeout(800)
            page.screenshot(path=str(ART / "tab-rank.png"), full_page=True)
            page.locator("#lopt-spectrum").screenshot(path=str(ART / "view-spectrum.png"))
            page.locator("#lopt-trunc-fig").screenshot(path=str(ART / "view-truncation.png"))
            page.locator("#lopt-near-table").screenshot(path=str(ART / "view-nearest.png"))
            browser.close()
    finally:
        stop_app(proc)
    for name in ("tab-rank", "view-spectrum", "view-truncation", "view-nearest"):
        assert (ART / f"{name}.png").stat().st_size > 5_000
