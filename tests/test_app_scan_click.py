"""AppTest of "click a scan cell applies that edit" on the Interventions page.

AppTest cannot click inside a plotly chart, so the selection Streamlit would return for a click is set as the
chart's state (the same dict shape: ``{"selection": {"points": [...]}}``); the real click is in
tests/test_browser_compare.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import app_samples as S

PAGE = "pages/interventions.py"


@pytest.fixture(autouse=True)
def _server_like(monkeypatch):
    S.run_like_the_server(monkeypatch)


def scanned():
    at = S.new_app(96).run()
    at.switch_page(PAGE).run()
    at.button(key="int_scan").click().run()
    S.no_errors(at)
    spec = next(s for s in S.plotly_specs(at) if any(t.get("name") == "importance" for t in s["data"]))
    return at, spec


def click(at, spec, row: int, head: int) -> None:
    cells = next(t for t in spec["data"] if t.get("name") == "cells")
    custom = [tuple(c) for c in cells["customdata"]]
    k = next(i for i, c in enumerate(custom) if (int(c[0]), int(c[1])) == (row, head))
    point = {"x": head, "y": cells["y"][k], "customdata": list(custom[k]), "curve_number": 1, "point_index": k}
    at.session_state["int_scan_fig"] = {"selection": {"points": [point], "point_indices": [k], "box": [],
                                                      "lasso": []}}
    at.run()
    S.no_errors(at)


def test_cells_cover_every_real_head():
    _, spec = scanned()
    heat = next(t for t in spec["data"] if t.get("name") == "importance")
    z = S.plotly_array(heat["z"]).astype(np.float64)
    cells = next(t for t in spec["data"] if t.get("name") == "cells")
    got = {(int(c[0]), int(c[1])) for c in cells["customdata"]}
    assert got == {(int(i), int(j)) for i, j in zip(*np.nonzero(np.isfinite(z)))}
    for c in cells["customdata"]:
        assert abs(float(c[2]) - z[int(c[0]), int(c[1])]) < 1e-9


def test_click_selects_the_edit_and_reruns_before_after():
    at, spec = scanned()
    heat = next(t for t in spec["data"] if t.get("name") == "importance")
    z = S.plotly_array(heat["z"]).astype(np.float64)
    rows = heat["y"]
    row, head = np.unravel_index(int(np.nanargmax(np.abs(z))), z.shape)
    click(at, spec, int(row), int(head))
    stage, index = (int(v) for v in rows[row][1:].split("_b"))
    assert at.session_state["int_stage"] == stage and at.session_state["int_block"] == index
    assert S.widget(at.selectbox, "int_zero").value == head
    assert S.widget(at.radio, "int_headkind").value == "zero"
    # the before/after table is the edited pass: the followed class moves by the cell's Δ logit
    target = S.widget(at.selectbox, "int_target").value
    names = list(at.dataframe[-1].value["class"])
    table = at.dataframe[-1].value
    top_name = names[0]
    assert top_name and len(table) >= 5
    caption = next(c.value for c in at.caption if c.value.startswith("Δ logit of"))
    tol = 0.15 if "bf16" in caption else 1e-3
    dl_table = dict(zip(table["class"], table["Δ logit"]))
    from crossformer.navon import CLASS_NAMES
    assert abs(dl_table[CLASS_NAMES[int(target)]] - z[row, head]) < tol
    # the same selection again (any rerun) does not override a later manual choice
    other = 0 if head != 0 else 1
    S.widget(at.selectbox, "int_zero").set_value(other).run()
    S.no_errors(at)
    assert S.widget(at.selectbox, "int_zero").value == other
    at.run()
    assert S.widget(at.selectbox, "int_zero").value == other
    # nor does the stale selection apply itself to a new scan (another ablation kind)
    S.widget(at.radio, "int_kind").set_value("uniform").run()
    at.button(key="int_scan").click().run()
    S.no_errors(at)
    assert S.widget(at.selectbox, "int_zero").value == other


def test_click_with_uniform_scan_selects_uniform():
    at = S.new_app(96).run()
    at.switch_page(PAGE).run()
    S.widget(at.radio, "int_kind").set_value("uniform").run()
    at.button(key="int_scan").click().run()
    S.no_errors(at)
    spec = next(s for s in S.plotly_specs(at) if any(t.get("name") == "importance" for t in s["data"]))
    click(at, spec, 0, 1)
    assert S.widget(at.radio, "int_headkind").value == "uniform"
    assert S.widget(at.selectbox, "int_zero").value == 1
    assert any("made uniform" in m.value for m in at.info)
