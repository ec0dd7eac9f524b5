"""AppTest of the "Why cross-scale attention?" page: it renders, and its numbers are crossformer.schemes'."""

from __future__ import annotations

import json

import pytest

import app_samples as S
from crossformer import schemes
from crossformer.analysis.facts import human


@pytest.fixture(autouse=True)
def _server_like(monkeypatch):
    S.run_like_the_server(monkeypatch)


def test_schemes_page_renders_with_its_numbers():
    at = S.new_app(96).run()
    at.switch_page("pages/schemes.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Why cross-scale attention?"
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(specs) == 3
    assert sum(1 for n in (t.get("name") for t in specs[0]["data"]) if n and n.startswith("visible: ")) == 8
    assert sum(1 for t in specs[1]["data"] if " · " in (t.get("name") or "")) == 15      # 5 architectures × 3
    lines = [t["name"] for t in specs[2]["data"]]
    assert len(lines) == 8 and lines[-1].startswith("this image")                        # 7 schemes + marker

    # the numbers of the teaching text and the table are crossformer.schemes' for this trace's layout
    stage_hws = [tuple(int(v) for v in row.split("×")) for row in at.dataframe[0].value["tokens"]]
    hw = stage_hws[0]
    full = schemes.pair_count("full", hw)
    cf = schemes.pair_count("sda", hw, group_size=7) + schemes.pair_count("lda", hw, group_size=7, interval=None)
    text = " ".join(m.value for m in at.markdown)
    assert f"{hw[0]}×{hw[1]} = {hw[0] * hw[1]:,} tokens" in text
    assert f"full attention scores **{human(full)}**" in text
    assert f"one SDA + one LDA block **{human(cf)}**" in text
    table = at.dataframe[0].value
    for stage, row in table.iterrows():
        st_settings = schemes.Settings.for_stage(int(row["stage"]))
        for spec in schemes.panel_specs(st_settings):
            assert row[spec.short] == schemes.pair_count(spec.scheme, stage_hws[int(row["stage"])], **spec.params)
    assert table["ViT"].iloc[0] == full


def test_schemes_page_follows_stage_and_parameters():
    at = S.new_app(96).run()
    at.switch_page("pages/schemes.py").run()
    S.widget(at.selectbox, "sch_stage").select(1).run()
    assert not at.exception, [e.value for e in at.exception]
    S.widget(at.slider, "sch_swin_m").set_value(4).run()
    assert not at.exception, [e.value for e in at.exception]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert any("Swin W-MSA (M=4)" in t for t in titles)
    assert any("PVT SRA (R=4)" in t for t in titles)                 # stage 1 default R
