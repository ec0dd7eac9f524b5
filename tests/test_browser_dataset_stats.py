"""The Dataset statistics page in a real browser: the samples button draws the summary, a broken CSV is an
error box, and the page keeps working (marked ``browser``; Debian's chromium)."""

from __future__ import annotations

import os

import pytest

from browser_tools import CHROMIUM, SHOTS, goto_page, settle

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]

CHART = "[data-testid='stPlotlyChart'] .main-svg"


def test_samples_button_broken_csv_then_samples_again(server, browser, tmp_path):
    page = browser.new_context(viewport={"width": 1400, "height": 2600}).new_page()
    page.goto(server)
    settle(page)
    goto_page(page, "Dataset statistics")
    assert page.locator(CHART).count() == 0
    page.get_by_role("button", name="Compute for the bundled samples", exact=False).click()
    page.wait_for_selector(CHART, timeout=120_000)
    settle(page)
    assert page.get_by_text("heads are uniform", exact=False).count() >= 1
    assert page.locator("[data-testid='stException']").count() == 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "dataset_stats_samples.png"))

    bad = tmp_path / "broken.csv"
    bad.write_text("image,stage,block\nx,0,s0_b0\n")
    page.locator("[data-testid='stFileUploaderDropzoneInput']").last.set_input_files(str(bad))
    page.get_by_text("missing column", exact=False).first.wait_for(timeout=60_000)
    settle(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator(CHART).count() == 0

    page.get_by_role("button", name="Compute for the bundled samples", exact=False).click()   # back to samples
    page.wait_for_selector(CHART, timeout=120_000)
    settle(page)
    assert page.locator("[data-testid='stException']").count() == 0
