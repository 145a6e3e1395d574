"""A classroom in a real browser (Debian Chromium): a teacher's link opens the Train tab with its settings, a run
started in one tab is found, watched and stopped from a second tab after a reload, and a bad link says which
parameter is wrong. Screenshots go to test-artifacts/classroom-*.png."""
from __future__ import annotations

import re

from helpers import needs_chromium, seed_home, start_app, stop_app
from helpers import ART, open_page

pytestmark = needs_chromium

from helpers import long_run_link

WATCH, PROGRESS, STATUS = "#lopt-watch input", "#lopt-progress", "#lopt-status"
CURVE = "#lopt-curves .js-plotly-plot .scatterlayer .trace"


def test_second_tab_watches_and_stops_a_run_and_links_carry_settings(tmp_path, tiny_model_dir):
    from playwright.sync_api import expect, sync_playwright
    from lopt_core.store.sqlite import Store
    home = tmp_path / "home"
    seed_home(home)
    proc, url = start_app(home)
    ART.mkdir(exist_ok=True)
    link = long_run_link(url, tiny_model_dir)  # long enough to be caught and stopped from the second tab
    try:
        with sync_playwright() as p:
            browser, page1 = open_page(p, link)
            # the link's settings are applied: the readout speaks of n=4, r=2 on the tiny model (d=32)
            expect(page1.locator("#lopt-readout")).to_contain_text("n=4, r=2", timeout=60_000)
            expect(page1.locator("#lopt-readout")).to_contain_text("72", timeout=10_000)  # r(n + d) = 2 * 36
            expect(page1.locator("#lopt-share-link a")).to_have_attribute("href", re.compile(r"steps=3000"))
            assert "steps=3000" in page1.url and "n=4" in page1.url
            page1.wait_for_timeout(1500)  # events sent while the r slider's bound moved must not fail
            expect(page1.get_by_text(re.compile("greater than maximum|less than minimum"))).to_have_count(0)
            page1.get_by_text("Training settings").click()
            expect(page1.get_by_label("steps", exact=True)).to_have_value("3000", timeout=10_000)
            page1.screenshot(path=str(ART / "classroom-share-link.png"), full_page=True)

            page1.locator("#lopt-train").click()
            expect(page1.locator(STATUS)).to_contain_text("Queued", timeout=30_000)
            run_id = re.search(r"Queued (\S+)", page1.locator(STATUS).inner_text()).group(1).rstrip(".")

            # a second tab, opened plainly and reloaded while the run trains, shows that run and its curve
            page2 = browser.new_page(viewport={"width": 1400, "height": 1000})
            page2.goto(url, wait_until="domcontentloaded")
            expect(page2.locator(PROGRESS)).to_contain_text("step", timeout=60_000)
            page2.reload(wait_until="domcontentloaded")
            expect(page2.locator(WATCH)).to_have_value(re.compile(re.escape(run_id) + r".*running"), timeout=60_000)
            expect(page2.locator(CURVE).first).to_be_attached(timeout=60_000)
            expect(page2.locator(PROGRESS)).to_contain_text(run_id, timeout=10_000)
            page2.screenshot(path=str(ART / "classroom-second-tab.png"), full_page=True)

            # ...and stops it; the status line then says how it ended instead of "stop requested"
            page2.locator("#lopt-stop").click()
            expect(page2.locator(STATUS)).to_contain_text("stop", timeout=15_000)
            expect(page2.locator(PROGRESS)).to_contain_text("stopped", timeout=90_000)
            expect(page2.locator(STATUS)).to_contain_text(re.compile(r"stopped at step \d+/3000"), timeout=15_000)
            expect(page2.locator(WATCH)).to_have_value(re.compile(r"· stopped"), timeout=15_000)
            page2.screenshot(path=str(ART / "classroom-stopped.png"), full_page=True)

            # a bad link: the message names each bad parameter, the good ones apply, the rest keep defaults
            page3 = browser.new_page(viewport={"width": 1400, "height": 1000})
            page3.goto(f"{url}?method=lopt9&n=abc&steps=12", wait_until="domcontentloaded")
            expect(page3.locator(STATUS)).to_contain_text("method=lopt9", timeout=60_000)
            expect(page3.locator(STATUS)).to_contain_text("n=abc")
            page3.get_by_text("Training settings").click()
            steps = page3.get_by_label("steps", exact=True)
            expect(steps).to_have_value("12", timeout=10_000)
            expect(page3.locator(CURVE).first).to_be_attached(timeout=30_000)  # the latest run is shown
            page3.screenshot(path=str(ART / "classroom-bad-link.png"), full_page=True)
            # editing a setting makes that message old news: the status clears
            steps.fill("13")
            steps.press("Tab")
            expect(page3.locator(STATUS)).not_to_contain_text("lopt9", timeout=10_000)
            # LoPT-1 at n=20, r=5: n down to 3 takes r's bound (and r) down to 3, with no error on the way
            expect(page3.locator("#lopt-r input[type=range]")).to_have_attribute("max", "20")
            n_box = page3.locator("#lopt-n input[type=number]")
            n_box.fill("3")
            n_box.press("Enter")
            expect(page3.locator("#lopt-readout")).to_contain_text("n=3, r=3", timeout=10_000)
            expect(page3.locator("#lopt-r input[type=range]")).to_have_attribute("max", "3")
            expect(page3.get_by_text(re.compile("greater than maximum|less than minimum"))).to_have_count(0)
            browser.close()
        row = Store(home / "runs.sqlite").get(run_id)
        assert row["state"] == "stopped" and 0 < row["steps_done"] < 3000, row
    finally:
        stop_app(proc)
    for name in ("share-link", "second-tab", "stopped", "bad-link"):
        assert (ART / f"classroom-{name}.png").stat().st_size > 10_000
