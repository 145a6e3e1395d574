"""A real browser trains a prompt on a generation task (arithmetic, on a tiny model, from a shared link) and sees,
in the Generate tab, what no prompt and the trained prompt write for the task's test examples beside the gold
answers, each marked right or wrong. Screenshots under test-artifacts/."""
from __future__ import annotations

import re

from helpers import ART, needs_chromium, open_page, seed_home, start_app, stop_app

from lopt_core import share

pytestmark = needs_chromium


def test_browser_trains_on_arithmetic_and_reads_the_answers(tmp_path, tiny_model_dir):
    from playwright.sync_api import expect, sync_playwright
    home = tmp_path / "home"
    seed_home(home)
    proc, url = start_app(home)
    ART.mkdir(exist_ok=True)
    settings = dict(model=tiny_model_dir, task="arithmetic", method="lopt1", n=4, r=2, steps=4, batch_size=4,
                    eval_every=0, eval_size=8, seed=0)
    try:
        with sync_playwright() as p:
            browser, page = open_page(p, f"{url}?{share.settings_to_query(settings)}")
            task = page.locator("input[aria-label='Task'], [aria-label='Task'] input").first
            expect(task).to_have_value(re.compile(r"^arithmetic  ·  generation"), timeout=60_000)
            page.locator("#lopt-train").click()
            expect(page.locator("#lopt-progress")).to_contain_text("done", timeout=180_000)
            expect(page.locator("#lopt-progress")).to_contain_text("exact match", timeout=10_000)
            expect(page.locator("#lopt-watch input")).to_have_value(re.compile(r"arithmetic · done · EM"))
            page.screenshot(path=str(ART / "answers-train.png"), full_page=True)

            page.get_by_role("tab", name="Generate").click()
            page.locator("#lopt-gen-runs input").first.click()
            page.get_by_role("option").first.click()
            page.keyboard.press("Escape")
            k = page.locator("#lopt-ans-k input[type=number]")
            k.fill("6")
            k.press("Tab")
            expect(page.locator("#lopt-gen-runs")).to_contain_text("EM")
            page.locator("#lopt-answer").click()
            reading = page.locator("#lopt-ans-reading")
            expect(reading).to_contain_text("without a prompt", timeout=120_000)
            expect(reading).to_contain_text("of these")
            table = page.locator("#lopt-ans-table")
            expect(table).to_contain_text("gold")
            expect(table).to_contain_text("Calculate")
            marks = table.get_by_text(re.compile(r"^[✓✗] "))
            shown = marks.evaluate_all("els => els.filter(e => e.offsetParent !== null).map(e => e.innerText).filter(t => t.trim())")
            assert len(shown) == 2 * 6, f"each of the 6 examples marked under no prompt and under the prompt: {shown}"
            page.wait_for_timeout(500)
            page.locator("#lopt-ans-table").scroll_into_view_if_needed()
            page.screenshot(path=str(ART / "answers-generate.png"), full_page=True)
            browser.close()
    finally:
        stop_app(proc)
    assert (ART / "answers-generate.png").stat().st_size > 10_000
