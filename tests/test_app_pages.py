"""AppTest of every page and the main widget paths (no browser)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import app_samples as S
from pages.common.navigation import PAGES


@pytest.fixture(autouse=True)
def _server_like(monkeypatch):
    S.run_like_the_server(monkeypatch)


charts = S.plotly_specs


array = S.plotly_array


def trace_named(spec: dict, name: str) -> dict:
    return next(t for t in spec["data"] if t.get("name") == name)


no_errors = S.no_errors


def ctx_value(at, label: str) -> str:
    """The sidebar caption that starts with ``label`` (image and model summaries)."""
    return next(c.value for c in at.sidebar.caption if c.value.startswith(label))


EXPECTED_CHARTS = {"overview": 0, "emb": 3, "grp": 2, "sch": 3, "dpb": 3, "attn": 2, "int": 2, "attr": 0, "ref": 0, "stats": 0, "about": 0}


@pytest.mark.parametrize("spec", PAGES, ids=[p.id for p in PAGES])
def test_every_page_renders(spec):
    at = S.new_app(96).run()
    at.switch_page(spec.path).run()
    no_errors(at)
    assert at.title[0].value == spec.title
    assert len(at.get("plotly_chart")) == EXPECTED_CHARTS[spec.id]
    assert len(at.sidebar.children) > 5, "the shared sidebar is drawn on every page"
    if EXPECTED_CHARTS[spec.id]:
        from viz.export import png_available
        labels = [b.label for b in at.get("download_button")]
        assert labels.count("HTML") == EXPECTED_CHARTS[spec.id]            # one set per figure
        assert labels.count("PNG") == (EXPECTED_CHARTS[spec.id] if png_available() else 0)


def test_overview_shows_prediction_and_pipeline():
    at = S.new_app(128).run()
    no_errors(at)
    top5, stages = at.dataframe[0].value, at.dataframe[1].value
    assert len(top5) == 5 and list(top5["rank"]) == [1, 2, 3, 4, 5]
    assert np.all(np.diff(top5["probability"].to_numpy()) <= 0)
    from crossformer.navon import CLASS_NAMES
    assert set(top5["class"]) <= set(CLASS_NAMES)
    # the pipeline table follows the real token grids of this input (aspect ratio kept, shorter side 128)
    caption = ctx_value(at, "sample") if any(c.value.startswith("sample") for c in at.sidebar.caption) else \
        ctx_value(at, "Navon")
    h, w = (int(v) for v in caption.split("model input ")[1].split(" ")[0].split("×"))
    assert list(stages["tokens"]) == [f"{h // 4 // 2 ** i}×{w // 4 // 2 ** i}" for i in range(4)]
    assert any(b.label == "Trace (.npz)" for b in at.get("download_button"))


def test_query_is_shared_between_pages_and_sliders():
    at = S.new_app(96, query_px=(50, 70)).run()
    at.switch_page("pages/groups.py").run()
    no_errors(at)
    assert (S.widget(at.slider, "grp_qrow").value, S.widget(at.slider, "grp_qcol").value) == (50 // 4, 70 // 4)
    S.widget(at.slider, "grp_qrow").set_value(3).run()                          # keyboard path
    assert at.session_state["query_px"] == (3 * 4 + 2, (70 // 4) * 4 + 2)
    at.switch_page("pages/attention.py").run()                              # default block s0_b1: stage 0
    no_errors(at)
    assert S.widget(at.slider, "attn_qrow").value == 3
    at.switch_page("pages/embedding.py").run()
    S.widget(at.selectbox, "emb_layer").set_value(1).run()                        # merge → stage 1 tokens
    no_errors(at)
    assert S.widget(at.slider, "emb_qrow").value == (3 * 4 + 2) // 8


def test_groups_figure_shows_the_layout_the_model_used():
    at = S.new_app(96, query_px=(10, 10)).run()
    at.switch_page("pages/groups.py").run()
    no_errors(at)
    import crossformer
    model = crossformer.create_model("crossformer_demo")
    h, w = (int(v) for v in next(c.value for c in at.sidebar.caption if "model input" in c.value)
            .split("model input ")[1].split(" ")[0].split("×"))
    layout = model.plan((h, w))[0][1]                                    # stage 0, block 1 (LDA)
    part = charts(at)[0]
    ids = array(trace_named(part, "groups")["customdata"])             # (Hp, Wp, 2): group id, member index
    np.testing.assert_array_equal(ids[..., 0].reshape(layout.padded_hw), layout.group_map)
    np.testing.assert_array_equal(ids[..., 1].reshape(layout.padded_hw), layout.member_map)
    S.widget(at.selectbox, "grp_stage").set_value(2).run()
    no_errors(at)
    assert "Stage 2" in at.markdown[0].value or "Stage 2" in " ".join(m.value for m in at.markdown)


@pytest.mark.parametrize("view", ["heads", "matrix", "split", "diagnostics", "rollout"])
def test_attention_views(view):
    at = S.new_app(96).run()
    at.switch_page("pages/attention.py").run()
    S.widget(at.radio, "attn_view").set_value(view).run()
    no_errors(at)
    assert len(at.get("plotly_chart")) == 2


def test_position_bias_surface_is_drawn_on_request_only():
    """The 3-D surface (WebGL: the slowest thing the browser draws) is off until asked for, then it is the
    selected head's table."""
    at = S.new_app(96).run()
    at.switch_page("pages/position_bias.py").run()
    assert not any(t.get("type") == "surface" for c in charts(at) for t in c["data"])
    at.toggle(key="dpb_show_surface").set_value(True).run()
    no_errors(at)
    surfaces = [t for c in charts(at) for t in c["data"] if t.get("type") == "surface"]
    assert len(surfaces) == 1 and array(surfaces[0]["z"]).ndim == 2


def test_attention_block_and_head_pickers():
    at = S.new_app(96).run()
    at.switch_page("pages/attention.py").run()
    S.widget(at.selectbox, "attn_stage").set_value(1).run()
    S.widget(at.selectbox, "attn_block").set_value(0).run()
    S.widget(at.selectbox, "attn_head").set_value(1).run()
    no_errors(at)
    text = at.markdown[0].value
    assert "s1_b0" in text and "SDA" in text
    q = charts(at)[0]
    assert "head 1" in json.dumps(q["layout"].get("title", ""))


def test_position_bias_group_size_slider():
    at = S.new_app(96).run()
    at.switch_page("pages/position_bias.py").run()
    S.widget(at.slider, "dpb_g").set_value(12).run()
    no_errors(at)
    sizes = charts(at)[2]
    names = [t.get("name") for t in sizes["data"]]
    assert "G=12" in names
    z12 = array(trace_named(sizes, "G=12")["z"])
    assert z12.size == (2 * 12 - 1) ** 2


def test_embedding_layers_and_kernels():
    at = S.new_app(96).run()
    at.switch_page("pages/embedding.py").run()
    S.widget(at.radio, "emb_kernel").set_value(3).run()                 # the CEL's 32×32 kernel …
    for layer in (3, 0):
        S.widget(at.selectbox, "emb_layer").set_value(layer).run()        # … then a merge with only 2 kernels
        no_errors(at)
        assert len(at.get("plotly_chart")) == 3
        S.widget(at.radio, "emb_kernel").set_value(1).run()
        no_errors(at)
    assert "CEL" in at.markdown[0].value


def test_preprocessing_official_and_navon_generator():
    at = S.new_app(None, sb_source="Navon generator").run()
    S.widget(at.selectbox, "sb_navon_global").set_value("cross").run()
    S.widget(at.selectbox, "sb_navon_local").set_value("ring").run()
    S.widget(at.radio, "sb_prep").set_value("official").run()
    no_errors(at)
    assert "model input 224×224" in ctx_value(at, "Navon figure")
    assert "cross of rings" in " ".join(m.value for m in at.markdown)


def test_lesson_mode_walks_the_pages():
    at = S.new_app(96, sb_lesson=True).run()
    no_errors(at)
    from pages.common.navigation import PAGES
    n, attn = len(PAGES), [p.id for p in PAGES].index("attn") + 1
    assert f"Lesson step 1 of {n}" in " ".join(m.value for m in at.markdown)
    at.switch_page("pages/attention.py").run()
    assert f"Lesson step {attn} of {n}" in " ".join(m.value for m in at.markdown)
    at.switch_page(PAGES[-1].path).run()                                     # the last page recaps
    assert "Recap." in " ".join(m.value for m in at.markdown)


def test_front_door_names_the_app_and_starts_the_lesson():
    at = S.new_app(96).run()
    assert "CrossFormer Explorer" in " ".join(m.value for m in at.markdown)
    at.button(key="overview_lesson").click().run()
    no_errors(at)
    assert at.session_state["sb_lesson"] is True
    assert "Lesson step 1 of" in " ".join(m.value for m in at.markdown)


def test_reference_page_runs_and_explains():
    at = S.new_app(64).run()
    at.switch_page("pages/reference.py").run()
    assert not at.get("badge")
    at.button(key="ref_run").click().run()
    no_errors(at)
    assert "PASS" in " ".join(m.value for m in at.markdown)
    caption = next(c.value for c in at.caption if "fields compared" in c.value)
    torch_top, numpy_top = re.search(r"top-1: PyTorch “(.+)”, NumPy “(.+)”\.", caption).groups()
    assert torch_top == numpy_top and " of " in torch_top                         # a Navon class of the demo model
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    assert list(table["step"])[0] == "q·k" and list(table["step"])[-1] == "stored weight"
    assert float(table["|difference|"].max()) < 1e-4
    weight = table.set_index("step").loc["= weight"]
    stored = table.set_index("step").loc["stored weight"]
    assert abs(weight["PyTorch"] - stored["PyTorch"]) < 1e-6
    S.widget(at.slider, "ref_key").set_value(5).run()                              # a widget rerun keeps the run
    no_errors(at)
    assert len(at.dataframe) == 1
    # the picked query is kept in image coordinates across block changes (not the group/member numbers)
    S.widget(at.slider, "ref_query").set_value(3).run()
    pixel = at.session_state["query_px"]
    S.widget(at.selectbox, "ref_block").set_value(0).run()                          # the SDA block of stage 0
    no_errors(at)
    assert at.session_state["query_px"] == pixel
    from crossformer.geometry import plan_layout
    L = plan_layout("sda", (16, 16), 7, None)                                      # 64×64 input, stage 0
    g, m = L.locate((pixel[0] // 4, pixel[1] // 4))
    assert (S.widget(at.slider, "ref_group").value if L.num_groups > 1 else 0,
            S.widget(at.slider, "ref_query").value) == (g, m)


@pytest.mark.parametrize("method, param_key, value", [("ig", "attr_steps", 8), ("gradcam", "attr_stage", 2),
                                                      ("occlusion", "attr_window", 56)])
def test_attributions_on_demand(method, param_key, value):
    at = S.new_app(64).run()
    at.switch_page("pages/attributions.py").run()
    S.widget(at.radio, "attr_method").set_value(method).run()
    widget = S.widget(at.slider if method == "ig" else (at.selectbox if method == "gradcam" else at.select_slider),
                      param_key)
    widget.set_value(value).run()
    assert not at.get("plotly_chart")
    at.button(key="attr_run").click().run()
    no_errors(at)
    assert len(at.get("plotly_chart")) == 1
    at.run()                                                                 # cached: still shown
    assert len(at.get("plotly_chart")) == 1


def test_architecture_only_model():
    at = S.new_app(64, sb_model="architecture").run()
    S.widget(at.selectbox, "sb_arch").set_value("crossformer_pp_s").run()
    no_errors(at)
    assert "CrossFormer++-S" in ctx_value(at, "**")
    assert any("Random weights" in w.value for w in at.sidebar.warning)
    at.switch_page("pages/groups.py").run()
    no_errors(at)
    assert "G = 4" in at.markdown[0].value or "G=4" in " ".join(m.value for m in at.markdown)


def _warnings(at) -> list[str]:
    return [w.value for w in at.warning]


def test_a_photo_is_told_the_demo_labels_cannot_describe_it_and_a_navon_figure_is_not():
    at = S.new_app(96, sb_source="Sample", sb_sample="chelsea").run()
    no_errors(at)
    assert any("cannot describe this image" in w and "python -m crossformer fetch" in w for w in _warnings(at))
    # its numbers are the shown prediction's: top-1 as in the table, and −Σ p ln p (nats) between the top-5's
    # share of it and that share plus the most the other classes' mass r can add (r spread evenly: r ln((C−5)/r))
    text = next(w for w in _warnings(at) if "cannot describe this image" in w)
    top1, ent, n = re.search(r"top-1 (\d+)%, entropy ([\d.]+) of ln (\d+)", text).groups()
    p = np.asarray(at.dataframe[0].value["probability"], dtype=np.float64)          # the overview's top-5
    assert int(top1) == round(100 * p[0])
    h5, r = -(p * np.log(p)).sum(), max(1.0 - p.sum(), 1e-12)
    assert h5 - 0.006 <= float(ent) <= h5 + r * np.log((int(n) - len(p)) / r) + 0.006
    at.switch_page("pages/attributions.py").run()
    assert any("cannot describe this image" in w for w in _warnings(at))
    for source, extra in (("Sample", {"sb_sample": "navon triangle of squares"}), ("Navon generator", {})):
        at = S.new_app(None, sb_source=source, **extra).run()
        no_errors(at)
        assert not any("cannot describe this image" in w for w in _warnings(at)), source


def test_attention_opens_on_the_most_focused_head_and_explains_it():
    at = S.new_app(96).run()
    at.switch_page("pages/attention.py").run()
    no_errors(at)
    head = S.widget(at.selectbox, "attn_head").value
    assert head is not None
    assert any(f"Head {head} is the most focused head" in c.value for c in at.caption)
    other = 1 - head if head in (0, 1) else 0
    S.widget(at.selectbox, "attn_head").set_value(other).run()               # the user's choice wins …
    assert S.widget(at.selectbox, "attn_head").value == other
    assert not any("most focused head" in c.value for c in at.caption)
    at.switch_page("pages/overview.py").run()
    at.switch_page("pages/attention.py").run()
    assert S.widget(at.selectbox, "attn_head").value == other                 # … and is kept
    at.button(key="attn_reset").click().run()                                # one click back
    assert S.widget(at.selectbox, "attn_head").value == head
    no_errors(at)


def test_attention_toggle_shows_the_deviation_from_uniform():
    at = S.new_app(96).run()
    at.switch_page("pages/attention.py").run()
    raw = charts(at)[0]
    at.toggle(key="attn_relative").set_value(True).run()
    no_errors(at)
    dev = charts(at)[0]
    z = [t for t in dev["data"] if t.get("name") == "attention"][0]
    assert z["zmid"] == 0 and z["zmin"] == -z["zmax"] and z["colorscale"] != [
        t for t in raw["data"] if t.get("name") == "attention"][0]["colorscale"]
    assert "1/" in json.dumps(dev["layout"]["title"])
