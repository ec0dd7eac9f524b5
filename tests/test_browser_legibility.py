"""Every figure legible at 224 and at 512, in a real browser (issue 18, Must-have 3).

For the demo model and CrossFormer++-S (random weights) at shorter side 224 and 512, and CrossFormer-S
(random weights; v1 like the demo) at 512, the main pages are opened; on every drawn plotly chart, every
title, subtitle, axis title and annotation must lie inside the chart's SVG box (a cut title overflows it),
the tick labels of one axis must not overlap each other, and a zoom inset must not cover a tick label of its
image (issue 31, Must-have 3).
Screenshots go to ``out/screenshots/legible_*.png`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import re

import pytest

from browser_tools import CHROMIUM, SHOTS, assert_no_exception, choose_radio, goto_page, select, settle

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]

#: (page title, radio "More views" option or None) visited per configuration.
VISITS = (("Overview", None), ("SDA & LDA groups", None), ("Why cross-scale attention?", None),
          ("Dynamic position bias", None),
          ("Attention", None), ("Attention", "All heads"), ("Attention", "All blocks"),
          ("Attention", "Content vs position"), ("About", None))

#: Runs in the browser: a list of "chart i: what is cut / overlaps" strings (empty when legible).
PROBLEMS_JS = r"""
() => {
  const out = [];
  const inside = (r, box, tol) => r.left >= box.left - tol && r.right <= box.right + tol &&
                                  r.top >= box.top - tol && r.bottom <= box.bottom + tol;
  const charts = [...document.querySelectorAll("[data-testid='stPlotlyChart']")];
  charts.forEach((chart, i) => {
    const svg = chart.querySelector(".main-svg");
    if (!svg) return;
    const box = svg.getBoundingClientRect();
    const texts = chart.querySelectorAll(
      ".g-gtitle text, .g-xtitle text, .g-ytitle text, [class*='g-x'][class*='title'] text, " +
      "[class*='g-y'][class*='title'] text, .annotation-text, .gtitle, .gtitle-subtitle, .cbtitle text");
    for (const t of texts) {
      const s = (t.textContent || "").trim();
      if (!s) continue;
      const r = t.getBoundingClientRect();
      if (r.width === 0) continue;
      if (!inside(r, box, 1)) out.push(`chart ${i}: text cut "${s.slice(0, 60)}" ` +
        `(${Math.round(r.left - box.left)}..${Math.round(r.right - box.left)} of ${Math.round(box.width)} px)`);
    }
    // tick labels of one axis must not overlap
    for (const layer of chart.querySelectorAll(".xaxislayer-above, .yaxislayer-above")) {
      const boxes = [...layer.querySelectorAll("text")]
        .filter(t => (t.textContent || "").trim() && getComputedStyle(t).display !== "none")
        .map(t => ({s: t.textContent.trim(), r: t.getBoundingClientRect()}))
        .filter(b => b.r.width > 0);
      for (let a = 0; a < boxes.length; a++) for (let b = a + 1; b < boxes.length; b++) {
        const p = boxes[a].r, q = boxes[b].r;
        const ox = Math.min(p.right, q.right) - Math.max(p.left, q.left);
        const oy = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
        if (ox > 1 && oy > 1) {
          out.push(`chart ${i}: tick labels overlap "${boxes[a].s}" / "${boxes[b].s}"`);
          a = boxes.length; break;
        }
      }
    }
    // a zoom inset (axes x2/y2, labelled "zoom: …") must not cover a tick label of the main image
    const zoomed = [...chart.querySelectorAll(".annotation-text")].some(t => (t.textContent || "").startsWith("zoom"));
    const frame = chart.querySelector(".subplot.x2y2 .xlines-above");
    if (zoomed && frame) {
      const f = frame.getBoundingClientRect();
      for (const t of chart.querySelectorAll(".subplot.xy .xaxislayer-above text, .subplot.xy .yaxislayer-above text")) {
        const r = t.getBoundingClientRect();
        if (!(t.textContent || "").trim() || r.width === 0) continue;
        const ox = Math.min(r.right, f.right) - Math.max(r.left, f.left);
        const oy = Math.min(r.bottom, f.bottom) - Math.max(r.top, f.top);
        if (ox > 1 && oy > 1) { out.push(`chart ${i}: the zoom inset covers tick "${t.textContent.trim()}"`); break; }
      }
    }
  });
  return out;
}
"""


#: Random-weight variants the test can choose (sidebar label).
VARIANTS = {"pp_s": "CrossFormer++-S", "s": "CrossFormer-S ("}


def problems(page) -> list[str]:
    """Cut titles and overlapping tick labels on the current page (see :data:`PROBLEMS_JS`)."""
    return page.evaluate(PROBLEMS_JS)


def configure(page, model: str, size: int) -> None:
    """Sidebar: the model (``demo``, or ``pp_s`` / ``s`` random weights), aspect-kept preprocessing, shorter
    side."""
    if model in VARIANTS:
        select(page, "Model", "Official architecture, random weights")
        select(page, "Variant", VARIANTS[model])
        page.get_by_text("Keep aspect ratio", exact=True).first.click()
        page.wait_for_timeout(2000)                      # the rerun starts after settle() would return
        settle(page)
        select(page, "Sample image", "chelsea")          # a photo: the group mosaic must still read
        page.wait_for_timeout(2000)
        settle(page)
    if size == 512:
        page.get_by_role("slider").first.wait_for(timeout=120_000)
        slider = [s for s in page.get_by_role("slider").all()
                  if s.get_attribute("aria-label") == "Shorter side (px)"][0]
        slider.focus()
        page.keyboard.press("End")
        page.wait_for_function("() => [...document.querySelectorAll(\"[data-testid='stSliderThumbValue']\")]"
                               ".some(e => e.textContent.trim() === '512')", timeout=120_000)
        sidebar = page.locator("[data-testid='stSidebar']")
        sidebar.get_by_role("button", name=re.compile(r"Apply 512 px")).click()     # the slider applies on Apply
        settle(page)
        sidebar.get_by_text(re.compile(r"model input 512×")).first.wait_for(timeout=180_000)
        page.screenshot(path=str(SHOTS / f"legible_{model}_{size}_sidebar.png"))


@pytest.mark.parametrize("model,size", [("demo", 224), ("demo", 512), ("pp_s", 224), ("pp_s", 512), ("s", 512)])
def test_no_cut_titles_or_colliding_ticks(server, browser, model, size):
    ctx = browser.new_context(viewport={"width": 1400, "height": 3000})
    page = ctx.new_page()
    page.goto(server)
    settle(page)
    configure(page, model, size)
    assert_no_exception(page, f"choosing {model} at {size}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    found: list[str] = []
    for title, view in VISITS:
        goto_page(page, title)
        if view is not None:
            choose_radio(page, "More views", view)
        assert_no_exception(page, f"{title} / {view}")
        page.wait_for_timeout(1500)                      # plotly lays out (and decodes images) after the script
        name = f"legible_{model}_{size}_{title.split()[0].lower()}" + (f"_{view.split()[-1].lower()}" if view else "")
        page.screenshot(path=str(SHOTS / f"{name}.png"))
        found += [f"{model} {size} · {title}{' / ' + view if view else ''} · {p}" for p in problems(page)]
    ctx.close()
    assert not found, "\n".join(found)
