"""The app in a real browser: Debian's chromium driven by playwright against a running server.

Uploads an image, visits every page, moves a slider, clicks the image, runs the on-demand extras, checks
that plotly charts drew and no exception box appeared, and saves full-height screenshots to
``out/screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import app_samples as S
from browser_tools import CHROMIUM, SHOTS, settle
from pages.common.navigation import PAGES

CHARTS = {"overview": 0, "emb": 3, "grp": 2, "sch": 3, "dpb": 4, "attn": 2, "int": 2, "attr": 0, "ref": 0, "stats": 0, "about": 0}

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]


def check(page, charts: int, name: str) -> None:
    """No exception box; ``charts`` plotly charts drew their SVG; a screenshot for a person."""
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']").first.inner_text()
    if charts:
        page.wait_for_function(
            f"document.querySelectorAll(\"[data-testid='stPlotlyChart'] .main-svg\").length >= {charts}",
            timeout=60_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(400)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def slider_value(page, label: str) -> str:
    """Current value of a Streamlit slider (an ``input type=range`` labelled ``label``)."""
    return page.get_by_role("slider", name=label).evaluate("e => e.value")


def test_upload_every_page_slider_click_and_extras(server, browser, tmp_path):
    img = tmp_path / "student_photo.png"
    img.write_bytes(S.png(S.gradient(240, 320)))
    ctx = browser.new_context(viewport={"width": 1400, "height": 3000})
    page = ctx.new_page()
    page.goto(server)
    settle(page)
    check(page, 0, "00_start")

    # upload → the sidebar names the upload and the model input
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(img))
    page.get_by_text("upload: student_photo.png", exact=False).first.wait_for(timeout=120_000)
    settle(page)
    check(page, 0, "01_overview_upload")

    links = page.locator("[data-testid='stSidebarNavLink']")
    assert links.count() == len(PAGES)
    for i, spec in enumerate(PAGES):
        links.nth(i).click()
        page.get_by_role("heading", name=spec.title, exact=True).first.wait_for(timeout=60_000)
        settle(page)
        check(page, CHARTS[spec.id], f"{i + 2:02d}_{spec.id}")
        assert page.get_by_text("upload: student_photo.png", exact=False).count() >= 1, "image kept across pages"

    # attention page: the keyboard slider and a click on the image move the shared query
    links.nth([p.id for p in PAGES].index("attn")).click()
    settle(page)
    row = page.get_by_role("slider", name="Query row (token)")
    last = row.get_attribute("max")                            # last token row of stage 0
    assert int(last) == 224 // 4 - 1                           # 320×240 kept at shorter side 224 → 56 rows
    row.focus()
    page.keyboard.press("End")
    page.wait_for_function("() => [...document.querySelectorAll(\"[data-testid='stSliderThumbValue']\")]"
                           f".some(e => e.textContent.trim() === '{last}')", timeout=60_000)
    settle(page)
    assert slider_value(page, "Query row (token)") == last
    frame = page.frame_locator("iframe[title*='streamlit_image_coordinates']").first
    frame.locator("img").click(position={"x": 3, "y": 3})
    page.wait_for_function("() => [...document.querySelectorAll(\"input[type='range']\")]"
                           ".some(e => e.getAttribute('aria-label') === 'Query row (token)' && e.value === '0')",
                           timeout=60_000)
    settle(page)
    assert slider_value(page, "Query row (token)") == "0" and slider_value(page, "Query column (token)") == "0"
    check(page, 2, "20_attention_after_click")

    # downloads are made on click: the figure as PNG and as standalone HTML
    for label, magic in (("PNG", b"\x89PNG"), ("HTML", b"<html")):
        button = page.get_by_role("button", name=label, exact=True).first   # not "Delete student_photo.png"
        with page.expect_download(timeout=120_000) as dl:
            button.click()
        data = Path(dl.value.path()).read_bytes()
        assert magic in data[:200], (label, data[:80])

    # the query followed to another page
    links.nth([p.id for p in PAGES].index("grp")).click()
    settle(page)
    assert slider_value(page, "Query row (token)") == "0"

    # on-demand extras
    links.nth([p.id for p in PAGES].index("ref")).click()
    settle(page)
    page.get_by_role("button", name="Run the NumPy reference on this image").click()
    page.get_by_text("PASS", exact=False).first.wait_for(timeout=180_000)
    settle(page)
    check(page, 1, "21_reference_run")
    links.nth([p.id for p in PAGES].index("attr")).click()
    settle(page)
    page.get_by_text("Grad-CAM", exact=True).click()
    settle(page)
    page.get_by_role("button", name="Compute grad-cam").click()
    page.get_by_text("Computed in", exact=False).first.wait_for(timeout=180_000)
    settle(page)
    check(page, 1, "22_attributions_gradcam")
    ctx.close()


def test_bad_upload_in_the_browser(server, browser, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_bytes(S.not_an_image())
    ctx = browser.new_context(viewport={"width": 1400, "height": 3000})
    page = ctx.new_page()
    page.goto(server)
    settle(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(bad))
    page.get_by_text("is not an image this app can read", exact=False).first.wait_for(timeout=60_000)
    settle(page)
    assert page.locator("[data-testid='stException']").count() == 0
    check(page, 0, "30_bad_upload")
    ctx.close()
