"""CrossFormer Explorer — entry point: ``streamlit run app.py`` (optionally ``-- --checkpoint PATH``).

Builds the navigation, draws the shared sidebar (image, model, preprocessing), computes — or reads from
the cache — the one forward trace every page uses, then runs the selected page.
"""

from __future__ import annotations

import logging

import streamlit as st

from pages.common import sidebar, widgets
from pages.common.context import CONTEXT_KEY
from pages.common.navigation import PAGES

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

st.set_page_config(page_title="CrossFormer Explorer", page_icon=":material/grid_view:", layout="wide",
                   initial_sidebar_state="expanded")

page = st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=(i == 0))
                      for i, p in enumerate(PAGES)])
ctx = sidebar.render()
st.session_state[CONTEXT_KEY] = ctx
widgets.notices(ctx)
try:
    page.run()
finally:   # the context lives for this run only (see pages.common.context.get)
    st.session_state.pop(CONTEXT_KEY, None)
