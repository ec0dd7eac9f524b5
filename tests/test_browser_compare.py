"""A/B compare and click-to-edit in a real browser: turning compare on, switching B's source and the block
while the option sets change between runs (the widget-crash class of bugs), and a real click on a cell of
the head-importance heat map."""

from __future__ import annotations

import os

import pytest

from browser_tools import CHROMIUM, SHOTS, assert_no_exception, choose_radio, goto_page, select, settle
from pages.common.navigation import PAGES

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]
TITLE = {p.id: p.title for p in PAGES}


def wait_text(page, text: str, timeout: float = 120_000) -> None:
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout)
    settle(page)


def test_compare_on_then_switch_source_and_block(page):
    goto_page(page, TITLE["attn"])
    page.get_by_text("Compare with…", exact=True).first.click()
    wait_text(page, "Shared query")
    assert_no_exception(page, "compare on")
    for source, blocks in (("Another model", ("s0_b0", "s2_b1")), ("Another input size", ("s1_b1",)),
                           ("Another image", ("s0_b1",))):
        choose_radio(page, "B is", source)
        wait_text(page, "Shared query")
        assert_no_exception(page, f"B is {source}")
        for option in blocks:
            stage = f"Stage {option[1]}"
            select(page, "Stage", stage)
            select(page, "Block", option)
            assert_no_exception(page, f"{source}: {stage} / {option}")
    choose_radio(page, "B's image", "Navon generator")
    choose_radio(page, "More views", "All blocks")
    wait_text(page, "Shared query")
    assert_no_exception(page, "Navon B, All blocks view")
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stPlotlyChart'] .main-svg\").length >= 6",
                           timeout=60_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "compare_attention.png"))
    goto_page(page, TITLE["dpb"])
    page.get_by_text("Compare with…", exact=True).first.click()
    wait_text(page, "DPB difference (CSV)")
    choose_radio(page, "B is", "Another model")
    wait_text(page, "DPB difference (CSV)")
    select(page, "Stage", "Stage 2")
    assert_no_exception(page, "DPB compare, another model, stage 2")
    page.screenshot(path=str(SHOTS / "compare_dpb.png"))


CELL_JS = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
      g => g.data && g.data.some(t => t.name === 'cells'));
  if (!gd) return null;
  const tr = gd.data.find(t => t.name === 'cells');
  const k = tr.x.length - 1;                        // the last head of the last block
  gd.scrollIntoView({block: 'center'});
  const fl = gd._fullLayout, r = gd.getBoundingClientRect();
  return {x: r.left + fl.xaxis._offset + fl.xaxis.d2p(tr.x[k]), y: r.top + fl.yaxis._offset + fl.yaxis.d2p(tr.y[k]),
          head: Number(tr.x[k]), block: String(tr.y[k])};
}"""


def test_click_on_a_scan_cell_applies_that_edit(page):
    goto_page(page, TITLE["int"])
    page.get_by_role("button", name="Scan every head").click()
    page.wait_for_function(f"({CELL_JS})() !== null", timeout=180_000)
    settle(page)
    cell = page.evaluate(CELL_JS)
    page.wait_for_timeout(300)
    cell = page.evaluate(CELL_JS)                    # after the scroll
    page.mouse.move(cell["x"], cell["y"])
    page.wait_for_timeout(200)
    page.mouse.click(cell["x"], cell["y"])
    page.wait_for_function(
        "(h) => [...document.querySelectorAll('input[role=combobox]')].some(e => e.value === h)",
        arg=f"head {cell['head']}", timeout=60_000)
    settle(page)
    assert_no_exception(page, "click on a scan cell")
    block = page.get_by_role("combobox", name="Block", exact=True).first.input_value()
    assert block.startswith(cell["block"]), (block, cell)
    assert page.get_by_role("combobox", name="Ablate one head", exact=True).first.input_value() == f"head {cell['head']}"
    wait_text(page, f"head {cell['head']} zeroed in {cell['block']}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "interventions_click.png"))
