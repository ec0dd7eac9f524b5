"""The 3-D DPB surface drawn by WebGL in a real browser (issue 18): the scene's box fits its plot area.

The other browser tests run chromium with ``--disable-gpu``, where plotly's 3-D scenes draw nothing; here
chromium renders WebGL in software (SwiftShader: ``webgl_browser`` in ``conftest.py``). The surface's tick
labels and axis titles are WebGL pixels, not DOM text, so the check is on the screenshot: the pixel columns
at the plot area's left and right edges must be background. A camera too close to the box cut the box (and lost every axis title) exactly
there. The screenshot is kept in ``out/screenshots/webgl_dpb_surface.png`` for a person to look at.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from browser_tools import CHROMIUM, SHOTS, assert_no_exception, goto_page, settle

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]


def test_dpb_surface_box_fits_its_plot_area(server, webgl_browser):
    from PIL import Image

    page = webgl_browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
    page.goto(server)
    settle(page)
    assert page.evaluate("() => !!document.createElement('canvas').getContext('webgl')"), "no WebGL here"
    goto_page(page, "Dynamic position bias")
    assert_no_exception(page, "DPB page")
    page.get_by_text("Show the selected head as a 3-D surface").click()       # drawn on request only
    settle(page)
    chart = page.locator("[data-testid='stPlotlyChart']").nth(1)          # the surface (right column)
    chart.locator(".gl-container canvas").first.wait_for(timeout=30_000)
    page.wait_for_timeout(3000)                                           # WebGL draws after the DOM
    SHOTS.mkdir(parents=True, exist_ok=True)
    png = chart.screenshot(path=str(SHOTS / "webgl_dpb_surface.png"))
    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.int16)
    # the plot area of the scene, in screenshot pixels (the chart is drawn at its layout size, scaled)
    box = chart.bounding_box()
    lay = page.evaluate("""() => { const d = document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot")[1];
                                   const l = d._fullLayout; return [l.width, l.height, l.margin.l, l.margin.r,
                                   l.margin.t, l.margin.b]; }""")
    W, H, ml, mr, mt, mb = lay
    sx, sy = img.shape[1] / W, img.shape[0] / H
    top, bottom = int((mt + 10) * sy), int((H - mb - 60) * sy)           # the scene band (colour bar below)
    left, right = int(ml * sx), int((W - mr) * sx) - 1
    drawn = (img[top:bottom] < 235).sum()
    assert drawn > 0.02 * (bottom - top) * (right - left), "the surface drew (almost) nothing"
    for x in (left, right):
        column = img[top:bottom, max(0, x - 1):x + 2]
        assert (column < 235).sum() < 6, f"the 3-D box is cut at x = {x} px of {img.shape[1]} ({box})"
    page.context.close()
