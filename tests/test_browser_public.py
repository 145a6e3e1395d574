"""A public host in a real browser (Debian Chromium): a visitor's runs follow them into a reloaded second tab (the
token kept in the browser's storage), where they can stop them; another visitor (another browser profile) never
sees them. Screenshots: test-artifacts/public-*.png."""
from __future__ import annotations

import re

from helpers import needs_chromium, seed_home, start_app, stop_app
from helpers import long_run_link
from helpers import ART, CHROMIUM

pytestmark = needs_chromium

WATCH, PROGRESS, STATUS, QUEUE = "#lopt-watch input", "#lopt-progress", "#lopt-status", "#lopt-queue"


def test_a_visitors_run_follows_them_across_tabs_and_stays_hidden_from_others(tmp_path, tiny_model_dir):
    from playwright.sync_api import expect, sync_playwright
    home = tmp_path / "home"
    seed_home(home)
    proc, url = start_app(home, {"LOPT_PUBLIC": "1", "LOPT_ALLOWED_MODELS": tiny_model_dir,
                                 "LOPT_MAX_QUEUED_PER_VISITOR": "1"})
    ART.mkdir(exist_ok=True)
    link = long_run_link(url, tiny_model_dir)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update"])
            ada = browser.new_context(viewport={"width": 1400, "height": 1000})  # one visitor: one profile
            page1 = ada.new_page()
            page1.goto(link, wait_until="domcontentloaded")
            expect(page1.locator("#lopt-host-notice")).to_contain_text("runs you start are yours", timeout=60_000)
            expect(page1.locator("#lopt-readout")).to_contain_text("n=4, r=2", timeout=60_000)
            page1.wait_for_timeout(1500)  # the page load has stored this browser's token
            page1.locator("#lopt-train").click()
            expect(page1.locator(STATUS)).to_contain_text("Queued", timeout=30_000)
            run_id = re.search(r"Queued \**(\S+?)\**[ .(]", page1.locator(STATUS).inner_text()).group(1)

            # another visitor opens the page: the run is in none of their lists
            bob = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            bob.goto(url, wait_until="domcontentloaded")
            expect(bob.locator("#lopt-host-notice")).to_be_visible(timeout=60_000)
            bob.wait_for_timeout(3000)  # several ticks of the page's timer
            expect(bob.locator(QUEUE)).not_to_contain_text(run_id)
            expect(bob.locator(PROGRESS)).not_to_contain_text(run_id)
            bob.screenshot(path=str(ART / "public-other-visitor.png"), full_page=True)

            # the same visitor in a second tab, reloaded: the run is theirs, shown, and they can stop it
            page2 = ada.new_page()
            page2.goto(url, wait_until="domcontentloaded")
            page2.reload(wait_until="domcontentloaded")
            expect(page2.locator(WATCH)).to_have_value(re.compile(re.escape(run_id)), timeout=60_000)
            page2.locator("#lopt-train").click()  # a second job is past this host's cap of one per visitor
            expect(page2.locator(STATUS)).to_contain_text("LOPT_MAX_QUEUED_PER_VISITOR", timeout=30_000)
            page2.locator("#lopt-stop").click()
            expect(page2.locator(STATUS)).not_to_contain_text("another visitor", timeout=5_000)
            expect(page2.locator(PROGRESS)).to_contain_text("stopped", timeout=90_000)
            page2.screenshot(path=str(ART / "public-owner-second-tab.png"), full_page=True)
            browser.close()
    finally:
        stop_app(proc)
