"""AppTest of the A/B compare views (Attention and DPB pages): a second image, a second model, another size."""

from __future__ import annotations

import re

import numpy as np
import pytest

import app_samples as S

ATTN, DPB = "pages/attention.py", "pages/position_bias.py"


@pytest.fixture(autouse=True)
def _server_like(monkeypatch):
    S.run_like_the_server(monkeypatch)


def open_compare(page: str, prefix: str, what: str | None = None, **state):
    at = S.new_app(96, **state).run()
    at.switch_page(page).run()
    S.no_errors(at)
    at.toggle(key=f"{prefix}_cmp").set_value(True).run()
    S.no_errors(at)
    if what is not None:
        S.widget(at.radio, "cmp_what").set_value(what).run()
        S.no_errors(at)
    return at


def figure(at, title_part: str) -> dict:
    found = [s for s in S.plotly_specs(at) if title_part in str(s["layout"].get("title", {}).get("text", ""))]
    assert found, f"no figure titled with {title_part!r}"
    return found[-1]


def shared_query(at) -> dict:
    text = next(c.value for c in at.caption if c.value.startswith("Shared query"))
    nums = [int(v) for v in re.findall(r"\d+", text)]
    # pixel A (y, x), A's H×W, pixel B (y, x), B's H×W, B's token (h, w), stage, A's token (h, w)
    keys = ("ya", "xa", "Ha", "Wa", "yb", "xb", "Hb", "Wb", "hb", "wb", "stage", "ha", "wa")
    return dict(zip(keys, nums))


def query_star(spec: dict) -> tuple[int, int]:
    star = next(t for t in spec["data"] if t.get("name") == "query token")
    return tuple(int(v) for v in re.search(r"h=(\d+), w=(\d+)", star["hovertemplate"]).groups())


def check_mapping(q: dict) -> None:
    """The shared query maps proportionally (pixel centres) and B's token is the stage-grid cell of that pixel."""
    assert q["yb"] == min(int((q["ya"] + 0.5) * q["Hb"] / q["Ha"]), q["Hb"] - 1)
    assert q["xb"] == min(int((q["xa"] + 0.5) * q["Wb"] / q["Wa"]), q["Wb"] - 1)
    stride = 4 * 2 ** q["stage"]
    assert (q["hb"], q["wb"]) == (q["yb"] // stride, q["xb"] // stride)


def test_second_image_side_by_side_with_difference():
    at = open_compare(ATTN, "attn", query_px=(40, 60))
    q = shared_query(at)
    assert (q["ya"], q["xa"]) == (40, 60)
    check_mapping(q)
    assert query_star(figure(at, "B · ")) == (q["hb"], q["wb"])
    assert query_star(figure(at, "A · ")) == (q["ha"], q["wa"])
    diff = figure(at, "What changes")
    ent = next(t for t in diff["data"] if t["name"] == "d_entropy")
    z = S.plotly_array(ent["z"]).astype(np.float64)
    assert np.isfinite(z).any() and np.nanmax(np.abs(z)) > 0          # another image: the focus changes
    assert ent["zmin"] == -ent["zmax"] and abs(ent["zmax"] - np.nanmax(np.abs(z))) < 1e-9
    note = next(m.value for m in at.info if "ln N more focused" in m.value or "as focused" in m.value)
    assert "Over all blocks" in note
    # B's version of the "All heads" view is drawn too, and the CSV is offered
    assert any("cmp_diff_csv" == b.key for b in at.get("download_button"))
    assert len(at.get("plotly_chart")) == 2 + 4


def test_other_size_maps_the_query_proportionally():
    at = open_compare(ATTN, "attn", "size", query_px=(50, 70))
    assert at.button(key="cmp_size_apply").label == "Applied: 160 px"   # B's default: A's 96 px + 64
    S.widget(at.slider, "cmp_size_draft").set_value(192).run()       # B's size applies on Apply, as A's does
    assert at.button(key="cmp_size_apply").label == "Apply 192 px"
    at.button(key="cmp_size_apply").click().run()
    S.no_errors(at)
    q = shared_query(at)
    assert (q["ya"], q["xa"]) == (50, 70)
    assert min(q["Hb"], q["Wb"]) == 192 and q["Ha"] != q["Hb"]
    check_mapping(q)
    assert query_star(figure(at, "B · ")) == (q["hb"], q["wb"])
    # another stage: the same pixel, the stage-2 grid of each input
    S.widget(at.selectbox, "attn_stage").set_value(2).run()
    S.no_errors(at)
    q2 = shared_query(at)
    assert q2["stage"] == 2 and (q2["yb"], q2["xb"]) == (q["yb"], q["xb"])
    check_mapping(q2)


def test_other_model_says_what_it_lacks_and_draws_diagnostics():
    at = open_compare(ATTN, "attn", "model")
    S.no_errors(at)
    assert any("random weights" in c.value or "CrossFormer-T" in c.value for c in at.caption if "**B**" in c.value)
    S.widget(at.radio, "attn_view").set_value("diagnostics").run()
    S.no_errors(at)
    assert any("B · attention diagnostics" in str(s["layout"]["title"]["text"]) for s in S.plotly_specs(at))
    diff = figure(at, "What changes")
    names = diff["data"][0]["y"]
    assert len(names) == len(set(names))
    # where B has no block of that name or fewer heads the cell is empty, never compared
    import crossformer
    a, _ = crossformer.load_checkpoint("assets/crossformer_demo.safetensors")
    b = crossformer.create_model("crossformer_t")
    z = S.plotly_array(diff["data"][0]["z"]).astype(np.float64)
    row = 0
    for stage, depth in enumerate(a.cfg.depths):
        for idx in range(depth):
            n_a = a.cfg.num_heads[stage]
            n_b = b.cfg.num_heads[stage] if idx < b.cfg.depths[stage] else 0
            assert names[row] == f"s{stage}_b{idx}"
            assert np.isfinite(z[row, :min(n_a, n_b)]).all() and np.isnan(z[row, min(n_a, n_b):]).all()
            row += 1
    if b.cfg.depths[0] < 2:                       # the page's default block s0_b1 does not exist in B
        assert any("B's model has no block s0_b1" in w.value for w in at.warning)


def test_dpb_difference_against_another_model_is_a_minus_b():
    import torch

    from pages.common import models
    at = open_compare(DPB, "dpb", "model")
    S.widget(at.selectbox, "dpb_stage").set_value(1).run()
    S.widget(at.selectbox, "dpb_block").set_value(0).run()
    S.no_errors(at)
    spec = figure(at, "A − B · s1_b0")
    G = int(re.search(r"G=(\d+)", spec["layout"]["title"]["text"]).group(1))
    import crossformer
    a_model, _ = crossformer.load_checkpoint("assets/crossformer_demo.safetensors")
    b_model = models.build_architecture("t", models.ARCHITECTURES[0], torch.device("cpu")).model
    with torch.no_grad():
        ta = a_model.dpb_table(1, 0, G).numpy().astype(np.float64)
        tb = b_model.dpb_table(1, 0, G).numpy().astype(np.float64)
    h = min(ta.shape[1], tb.shape[1])
    want = (ta[:, :h] - ta[:, :h].mean(0)) - (tb[:, :h] - tb[:, :h].mean(0))
    for head in range(h):
        tr = next(t for t in spec["data"] if t["name"] == f"head {head}")
        got = S.plotly_array(tr["z"]).astype(np.float64).ravel()
        assert np.allclose(got, want[:, head], atol=1e-5)
    axis = spec["layout"]["coloraxis"]
    assert axis["cmin"] == -axis["cmax"] and abs(axis["cmax"] - np.abs(want).max()) < 1e-5


def test_dpb_same_model_other_size_is_zero():
    at = open_compare(DPB, "dpb", "size")
    S.no_errors(at)
    spec = figure(at, "A − B")
    for tr in spec["data"]:
        assert np.allclose(S.plotly_array(tr["z"]).astype(np.float64), 0.0)
    assert any("not on the image" in m.value for m in at.info)


def test_bad_upload_for_b_is_a_message():
    at = open_compare(ATTN, "attn")
    S.widget(at.radio, "cmp_source").set_value("Uploaded image").run()
    S.no_errors(at)
    at.file_uploader(key="cmp_upload").upload("broken.png", S.not_an_image(), "image/png").run()
    assert not at.exception
    assert any("Could not use B's upload" in w.value for w in at.warning)


def attention_zrange(spec: dict) -> tuple[float, float]:
    heat = next(t for t in spec["data"] if t.get("name") == "attention" and t.get("xaxis", "x") == "x")
    return float(heat["zmin"]), float(heat["zmax"])


def test_a_and_b_attention_share_one_colour_scale_unless_toggled():
    """Issue 31, Must-have 4: A and B on one colour scale by default, stated in the caption; a toggle for
    independent scales."""
    at = open_compare(ATTN, "attn", query_px=(40, 60))
    a, b = attention_zrange(figure(at, "A · ")), attention_zrange(figure(at, "B · "))
    assert a == b
    assert any("one colour scale" in c.value and f"{a[1]:.3g}" in c.value for c in at.caption)
    at.toggle(key="cmp_own_scales").set_value(True).run()
    S.no_errors(at)
    a2, b2 = attention_zrange(figure(at, "A · ")), attention_zrange(figure(at, "B · "))
    assert a2[1] != b2[1] and max(a2[1], b2[1]) == pytest.approx(a[1])
    assert any("own colour scale" in c.value for c in at.caption)


def test_b_is_chosen_with_the_sidebars_own_sections():
    """Issue 29, item 3: B's image section is the sidebar's, under ``cmp_`` keys — the Navon generator with its
    seed, and an upload that switches B's source to it, as A's does — not a second copy with fewer controls."""
    at = open_compare(ATTN, "attn")
    S.widget(at.radio, "cmp_source").set_value("Navon generator").run()
    S.no_errors(at)
    at.number_input(key="cmp_navon_seed").set_value(7).run()
    S.no_errors(at)
    assert any("**B**: Navon figure" in c.value and "seed 7)" in c.value for c in at.caption)
    S.widget(at.radio, "cmp_source").set_value("Sample").run()
    at.file_uploader(key="cmp_upload").upload("b.png", S.png(S.gradient(64, 96)), "image/png").run()
    S.no_errors(at)
    assert at.session_state["cmp_source"] == "Uploaded image"
    assert any("**B**: upload: b.png · " in c.value for c in at.caption)
