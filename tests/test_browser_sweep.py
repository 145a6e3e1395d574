"""A real browser on the Sweep tab: the tiny model typed as the model, the quick rank-sensitivity preset launched
with one click; while it runs the live curves show many configurations at once, the trade-off plot fills, the
reading appears when it is done; the custom grid's readout names a bad value. Screenshots under test-artifacts/:
sweep-running.png, sweep-done.png, sweep-custom.png."""
from __future__ import annotations

import re
import time

from helpers import ART, needs_chromium, open_page, seed_home, start_app, stop_app

pytestmark = needs_chromium

CURVES = "#lopt-sweep-curves .js-plotly-plot .scatterlayer .trace"
PROGRESS = "#lopt-sweep-progress"


def wait_running_with_curves(page, at_least: int, timeout_s: float, min_step: int = 5) -> int:
    """Until the progress says running, past `min_step`, while the curves plot holds `at_least` traces."""
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        traces = page.locator(CURVES).count()
        text = page.locator(PROGRESS).inner_text()
        step = re.search(r"step (\d+)/", text)
        if "running" in text and traces >= at_least and step and int(step.group(1)) >= min_step:
            return traces
        assert "· done ·" not in text, f"the sweep ended before its curves were seen: {text}"
        page.wait_for_timeout(500)
    raise AssertionError(f"no {at_least} curves while running within {timeout_s} s: {page.locator(PROGRESS).inner_text()}")


def test_browser_sweep_preset(tmp_path, tiny_model_dir):
    from playwright.sync_api import expect, sync_playwright
    home = tmp_path / "home"
    seed_home(home)
    proc, url = start_app(home)
    ART.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser, page = open_page(p, url)
            page.get_by_role("tab", name="Sweep").click()
            expect(page.locator("#lopt-sweep-progress")).to_contain_text("No sweep shown yet", timeout=60_000)

            model = page.locator("#lopt-sweep-model input").first
            model.click()
            model.fill(tiny_model_dir)
            model.press("Enter")
            expect(page.locator("#lopt-sweep-quick input")).to_be_checked()
            expect(page.locator("#lopt-sweep-quick")).to_contain_text("quick trains 60 steps instead of 150")  # once
            note = page.locator("#lopt-preset-note-rank_sensitivity")
            expect(note).to_contain_text("13 configurations", timeout=30_000)
            # the typed model's own timing: none yet, or the calibration this machine made of it (an earlier test)
            expect(note).to_contain_text(re.compile(rf"(no timing yet for|a calibration of) {re.escape(tiny_model_dir)}"),
                                         timeout=30_000)

            page.locator("#lopt-preset-rank_sensitivity").click()
            expect(page.locator("#lopt-sweep-status")).to_contain_text("Queued", timeout=30_000)
            expect(page.locator("#lopt-sweep-picker input")).to_have_value(re.compile(r"Rank sensitivity"),
                                                                           timeout=10_000)
            traces = wait_running_with_curves(page, at_least=4, timeout_s=120)
            assert traces >= 4
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ART / "sweep-running.png"), full_page=True)

            expect(page.locator(PROGRESS)).to_contain_text("· done ·", timeout=240_000)
            expect(page.locator("#lopt-sweep-tradeoff .js-plotly-plot .scatterlayer .trace .point").first) \
                .to_be_attached(timeout=15_000)
            expect(page.locator("#lopt-sweep-reading")).to_contain_text("Reading", timeout=15_000)
            expect(page.locator("#lopt-sweep-reading")).to_contain_text("prompt tuning", timeout=5_000)
            expect(page.locator("#lopt-sweep-picker input")).to_have_value(
                re.compile(r"Rank sensitivity .* done · 13 runs"), timeout=10_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ART / "sweep-done.png"), full_page=True)

            # the custom grid's live readout names a bad value as it is typed
            page.locator("#lopt-sweep-custom").get_by_text("Custom sweep").click()
            readout = page.locator("#lopt-sweep-readout")
            expect(readout).to_contain_text("13 configurations", timeout=15_000)
            r_list = page.get_by_label("r list (ranks)", exact=True)
            r_list.fill("1,x")
            expect(readout).to_contain_text("r list: 'x' is not a whole number", timeout=15_000)
            page.screenshot(path=str(ART / "sweep-custom.png"), full_page=True)
            browser.close()
    finally:
        stop_app(proc)
    for name in ("running", "done"):
        assert (ART / f"sweep-{name}.png").stat().st_size > 10_000
