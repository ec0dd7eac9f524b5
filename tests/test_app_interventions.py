"""AppTest of the Interventions page: head-importance scan and per-block edits."""

from __future__ import annotations

import re

import numpy as np
import pytest

import app_samples as S

PAGE = "pages/interventions.py"


@pytest.fixture(autouse=True)
def _server_like(monkeypatch):
    S.run_like_the_server(monkeypatch)


array = S.plotly_array


no_errors = S.no_errors


specs = S.plotly_specs


def after_table(at):
    return at.dataframe[-1].value


def open_page():
    at = S.new_app(96).run()
    at.switch_page(PAGE).run()
    no_errors(at)
    return at


def test_page_renders_with_before_after_maps():
    at = open_page()
    assert at.title[0].value == "Interventions"
    assert len(at.get("plotly_chart")) == 2                      # before / after attention, no scan yet
    table = after_table(at)
    assert np.allclose(table["before prob"], table["after prob"])  # no edit: the same pass


def test_scan_draws_the_heat_map_and_names_its_top_cell(monkeypatch):
    import crossformer
    import crossformer.interventions as ci

    real, seen = ci.head_importance, {}

    def spy(model, x, target, **kw):                              # records the app's own input
        seen.update(x=x.detach().clone(), target=int(target), kind=kw.get("kind"))
        return real(model, x, target, **kw)

    monkeypatch.setattr(ci, "head_importance", spy)
    at = open_page()
    at.button(key="int_scan").click().run()
    no_errors(at)
    heat = [s for s in specs(at) if any(t.get("name") == "importance" for t in s["data"])]
    assert len(heat) == 1
    tr = next(t for t in heat[0]["data"] if t.get("name") == "importance")
    z = array(tr["z"]).astype(np.float64)

    model, _ = crossformer.load_checkpoint("assets/crossformer_demo.safetensors")
    heads = [h for h in model.cfg.num_heads for _ in range(2)]
    assert z.shape == (sum(model.cfg.depths), max(model.cfg.num_heads))
    for i, n in enumerate(heads):                                  # NaN where a block has fewer heads
        assert np.all(np.isnan(z[i, n:])) and np.all(np.isfinite(z[i, :n]))

    # the teaching text names the argmax |Δ| cell of the figure's own z
    text = next(m.value for m in at.info if "most important head" in m.value)
    h, block, amount = re.search(r"head (\d+) of (s\d_b\d) (?:lowers|raises) .* by ([\d.]+) logits", text).groups()
    rows = tr["y"] if not isinstance(tr["y"], dict) else list(array(tr["y"]))
    mag = np.where(np.isfinite(z), np.abs(z), -1)
    i, j = np.unravel_index(int(np.argmax(mag)), mag.shape)
    assert (rows[i], j) == (block, int(h))
    assert abs(abs(z[i, j]) - float(amount)) < 0.006
    hurt = re.search(r"(\d+) of \d+ heads lower the logit by more than 0\.1 when removed alone", text).group(1)
    assert int(hurt) == int(np.sum(np.nan_to_num(z) < -0.1))

    # the same numbers as head_importance on the same input, computed here
    assert seen["kind"] == "zero" and seen["x"].shape[:2] == (1, 3)
    ref = real(model, seen["x"], seen["target"], kind="zero")
    assert ref["blocks"] == list(rows)
    assert np.allclose(z, ref["delta_logit"], atol=1e-4, equal_nan=True)
    assert any(b.label == "Scan (CSV)" for b in at.get("download_button"))


def test_dropping_the_bias_of_a_block_changes_the_after_table():
    at = open_page()
    before = after_table(at)
    S.widget(at.radio, "int_nodpb").set_value("all").run()
    no_errors(at)
    after = after_table(at)
    assert np.allclose(before["before prob"][:5], after["before prob"][:5])
    assert not np.allclose(after["before prob"], after["after prob"])
    assert len(at.get("plotly_chart")) == 2
    note = next(m.value for m in at.info if "no DPB" in m.value)
    shift = float(re.search(r"moves by a total variation of (\d\.\d{3})", note).group(1))
    assert 0 <= shift <= 1                                         # stated for the next block's query row


def test_swap_zero_and_uniform_scan_run_without_errors():
    at = open_page()
    S.widget(at.radio, "int_swap").set_value("on").run()
    no_errors(at)
    S.widget(at.selectbox, "int_zero").set_value(1).run()
    no_errors(at)
    assert any("SDA↔LDA swap + head 1 zeroed" in m.value for m in at.info)
    S.widget(at.radio, "int_kind").set_value("uniform").run()
    at.button(key="int_scan").click().run()
    no_errors(at)
    assert len(at.get("plotly_chart")) == 3                      # heat map + before / after
    assert any("Making uniform head" in m.value for m in at.info)


def attention_scales(at) -> list[tuple[float, float]]:
    """``(zmin, zmax)`` of the "attention" heat map of every drawn figure that has one."""
    out = []
    for spec in specs(at):
        heat = [t for t in spec["data"] if t.get("name") == "attention" and t.get("xaxis", "x") == "x"]
        if heat:
            out.append((float(heat[0]["zmin"]), float(heat[0]["zmax"])))
    return out


def test_before_and_after_maps_share_one_colour_scale_unless_toggled():
    """Issue 31, Must-have 4: maps meant to be compared share one scale by default (stated in the caption);
    the toggle gives each its own."""
    at = open_page()
    S.widget(at.radio, "int_nodpb").set_value("all").run()       # an edit: the after map differs
    no_errors(at)
    (b0, b1), (a0, a1) = attention_scales(at)
    assert (b0, b1) == (a0, a1)
    note = next(c.value for c in at.caption if "colour scale" in c.value)
    assert "one colour scale" in note and f"{b1:.3g}" in note
    at.toggle(key="int_own_scales").set_value(True).run()
    no_errors(at)
    (b0, b1i), (a0, a1i) = attention_scales(at)
    assert b1i != a1i and max(b1i, a1i) == pytest.approx(b1)      # each its own maximum; the larger was shared
    note = next(c.value for c in at.caption if "colour scale" in c.value)
    assert "own colour scale" in note and "before 0 – " in note and "after 0 – " in note
