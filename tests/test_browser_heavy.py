"""Heavy actions in a real browser: arrow-key steps of the size slider run the model once (on Apply), and a
long integrated-gradients run shows its progress and stops on Cancel, saying where, with nothing drawn.

The server's log is read to count the forward traces the app computed (``traces.trace`` logs one line each).
"""

from __future__ import annotations

import os
import re

import pytest

from browser_tools import CHROMIUM, assert_no_exception, goto_page, settle

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]
SIZE = "Shorter side (px)"


@pytest.fixture(scope="module")
def logged_server(tmp_path_factory):
    """A server whose output goes to a file → (URL, log path)."""
    from browser_tools import free_port, start_server, stop_server
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc = start_server(port := free_port(), log=log)
    yield f"http://127.0.0.1:{port}", log
    stop_server(proc)


@pytest.fixture
def page(logged_server, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 2400})
    pg = ctx.new_page()
    pg.goto(logged_server[0])
    try:
        slider(pg, SIZE).wait_for(state="attached", timeout=180_000)   # model, trace
    except Exception:
        pg.screenshot(path=str(logged_server[1].with_suffix(".png")))
        print(pg.locator("[data-testid='stSidebar']").inner_text()[-800:], logged_server[1].read_text()[-2000:])
        raise
    settle(pg)
    yield pg
    ctx.close()


def traces(log) -> int:
    return log.read_text().count("forward_trace ")


def slider(page, label: str):
    """The slider labelled ``label`` (a substring match: its accessible name may carry more than the label)."""
    return page.get_by_role("slider", name=label).first


def slider_value(page, label: str) -> int:
    s = slider(page, label)
    return int(s.get_attribute("aria-valuenow") or s.input_value())


def press(page, label: str, key: str) -> None:
    slider(page, label).focus()
    page.keyboard.press(key)
    page.wait_for_timeout(400)
    settle(page)


def apply_size(page) -> None:
    page.locator("[data-testid='stSidebar']").get_by_role("button", name=re.compile(r"^.*Apply \d+ px")).click()
    page.wait_for_timeout(300)
    settle(page)


def test_arrow_steps_of_the_size_slider_run_the_model_once(page, logged_server):
    log = logged_server[1]
    start = slider_value(page, SIZE)
    before = traces(log)
    for _ in range(6):                                   # six arrow-key steps, as a person presses them
        press(page, SIZE, "ArrowRight")
    assert slider_value(page, SIZE) == start + 6 * 16
    assert traces(log) == before, "a slider step ran the model"
    apply_size(page)
    page.get_by_role("button", name=re.compile(f"Applied: {start + 96} px")).first.wait_for(timeout=60_000)
    settle(page)
    for _ in range(120):                                 # the trace line is written when the pass ends
        if traces(log) > before:
            break
        page.wait_for_timeout(500)
    page.wait_for_timeout(1000)
    assert_no_exception(page, "Apply")
    assert traces(log) == before + 1, "Apply runs the model exactly once"
    # the slider still shows the applied size (it once fell back to its minimum, 32, after Apply while the
    # server kept the new size: the browser had been sent the minimum as the redrawn widget's default)
    thumb = page.locator("[data-testid='stSidebar'] [data-testid='stSliderThumbValue']").first
    assert thumb.inner_text().strip() == str(start + 96)
    assert slider_value(page, SIZE) == start + 96


def test_cancel_stops_a_long_run_and_says_where(page, logged_server):
    press(page, SIZE, "End")                      # 512 px: integrated gradients takes a while
    apply_size(page)
    goto_page(page, "Attributions")
    press(page, "Steps along the path", "End")    # 64 steps
    assert slider_value(page, "Steps along the path") == 64
    # this CPU's figure, or a rough one while the server is still timing this model in the background
    caption = page.get_by_text(re.compile(r"Estimated about .*(on this CPU|a rough figure while this machine is "
                                          r"being timed) \(66 images\)")).first
    caption.wait_for(timeout=30_000)
    page.get_by_role("button", name=re.compile("Compute integrated gradients")).click()
    cont = page.get_by_role("button", name=re.compile("Continue"))
    progress = page.get_by_text(re.compile(r"Integrated gradients: [1-9]\d* / 66 images"))
    # the confirm shows when the estimate is over 10 s: wait for whichever comes (a settle alone can return
    # before the rerun that draws the confirm has started, on a loaded machine)
    cont.first.or_(progress.first).wait_for(timeout=120_000)
    if cont.count():
        cont.first.click()
    progress.first.wait_for(timeout=120_000)
    page.get_by_role("button", name=re.compile("Cancel")).first.click()
    note = page.get_by_text(re.compile(r"Cancelled at (\d+) / 66 images; nothing was kept\.")).first
    note.wait_for(timeout=120_000)
    settle(page)
    done = int(re.search(r"Cancelled at (\d+) /", note.inner_text()).group(1))
    assert 0 < done < 66
    assert_no_exception(page, "Cancel")
    assert page.get_by_text(re.compile("Computed in .* convergence delta")).count() == 0   # no map drawn
    # nothing half-computed was kept: the button is offered again
    assert page.get_by_role("button", name=re.compile("Compute integrated gradients")).count() == 1
