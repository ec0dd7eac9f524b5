"""A detector's checkpoint in a real browser: upload a synthetic mmdet file (CrossFormer-T backbone, random
weights, fake neck / RPN / RoI tensors) and a 1333×800 photo, visit every page, then the Overview at the
detector's own resolution (800×1333, padded to 800×1344). No exception box anywhere; screenshots in
``out/screenshots/`` (``backbone_*.png``) for a person to look at.
"""

from __future__ import annotations

import os

import pytest

import backbone_samples as B
from browser_tools import CHROMIUM, SHOTS, assert_no_exception, choose_radio, goto_page, select, settle
from pages.common.navigation import PAGES

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"backbone_{name}.png"))


def test_detector_checkpoint_every_page(server, browser, tmp_path):
    ckpt = B.write_mmdet(tmp_path / "mask_rcnn_crossformer_t.pth")
    photo = tmp_path / "street.jpg"
    photo.write_bytes(B.jpeg(B.street_photo(800, 1333)))
    ctx = browser.new_context(viewport={"width": 1400, "height": 3000})
    page = ctx.new_page()
    page.goto(server)
    settle(page)
    uploads = page.locator("[data-testid='stFileUploaderDropzoneInput']")
    uploads.first.set_input_files(str(photo))
    page.get_by_text("upload: street.jpg", exact=False).first.wait_for(timeout=120_000)
    settle(page)

    select(page, "Model", "Upload a checkpoint")
    uploads.nth(1).set_input_files(str(ckpt))
    page.get_by_text("detector parts not used", exact=False).first.wait_for(timeout=180_000)
    settle(page, timeout=180_000)
    assert_no_exception(page, "loading the detector checkpoint")
    # the user's preprocessing (keep aspect, 224) is kept and padded to 32: 224×373 → 224×384
    page.get_by_text("Padded to a multiple of 32", exact=False).first.wait_for(timeout=30_000)
    page.get_by_text("224×384", exact=False).first.wait_for(timeout=30_000)

    for spec in PAGES:
        goto_page(page, spec.title)
        assert_no_exception(page, f"page {spec.title}")
        assert page.get_by_text("upload: street.jpg", exact=False).count() >= 1, "image kept across pages"
        _shot(page, spec.id)

    # the detector's own preprocessing: 800×1333 → padded 800×1344, the pyramid drawn
    goto_page(page, "Overview")
    choose_radio(page, "Preprocessing", "Detector (mmdet)")
    page.get_by_text("Input: padded 800×1333 → 800×1344", exact=False).first.wait_for(timeout=240_000)
    settle(page, timeout=240_000)
    assert_no_exception(page, "the detector preprocessing")
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stPlotlyChart'] .main-svg\").length >= 1",
                           timeout=120_000)
    assert page.get_by_text("Output: the feature pyramid", exact=False).count() == 1
    _shot(page, "overview_800x1333")
    ctx.close()
