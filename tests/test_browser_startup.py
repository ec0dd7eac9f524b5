"""A fresh server whose very first request names a page URL (Streamlit's legacy ``pages/``-folder mode).

``pages.common.startup.page_context`` must turn that request into a normal run through ``app.py``: the page
renders with the shared sidebar and the navigation, and no exception box appears. This module gets its own
server (the ``server`` fixture is per module), so its first request really is the first.
"""

from __future__ import annotations

import os

import pytest

from browser_tools import CHROMIUM, assert_no_exception, goto_page, settle

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]


def test_first_request_to_a_page_url_runs_through_the_app(server, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    try:
        page.goto(f"{server}/attention")
        settle(page)
        assert_no_exception(page, "first request /attention")
        page.get_by_role("heading", name="Attention").first.wait_for(timeout=60_000)
        sidebar = page.locator("[data-testid='stSidebar']")
        sidebar.get_by_text("Shorter side (px)").first.wait_for(timeout=30_000)   # the shared sidebar drew
        assert page.locator("[data-testid='stSidebarNav'] a").count() >= 9        # and the navigation
        page.wait_for_function("document.querySelectorAll(\"[data-testid='stPlotlyChart'] .main-svg\").length >= 1",
                               timeout=60_000)
        goto_page(page, "Overview")
        assert_no_exception(page, "Overview after the deep link")
    finally:
        page.close()
