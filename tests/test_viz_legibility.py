"""Honest scales and legible figures (issue 18, Must-have 2 and 3): deviation-from-uniform attention maps,
the SDA-vs-LDA pair on one scale with padding marked, dimmed non-selected groups, zoom insets on small
groups, member numbers only where they fit, wrapped titles, ticks that cannot collide."""

from __future__ import annotations

import numpy as np
import pytest
from viz_cases import case, sample_image

from crossformer.analysis.attention import query_weights, uniform_deviation
from crossformer.analysis.heads import trace_head_stats
from crossformer.geometry import plan_layout
from viz import inset, style
from viz.attention_figures import head_grid_figure, query_attention_figure
from viz.diagnostics_figures import HEAD_LABEL_PX, PANEL_MIN_PX, diagnostics_figure, head_dtick
from viz.dpb_figures import dpb_heatmap_figure, dpb_sizes_figure, dpb_surface_figure, offset_ticks
from viz.geometry_figures import MIN_NUMBER_CELL, group_partition_figure, sda_lda_figure
from viz.parity_figures import parity_figure


def named(fig, name):
    return [t for t in fig.data if t.name == name]


def main_traces(fig):
    return [t for t in fig.data if getattr(t, "xaxis", None) in (None, "x")]


@pytest.mark.parametrize("name,stage,j", [("demo_pad", 0, 0), ("pp", 1, 1), ("pp", 2, 0), ("s_v1", 0, 1)])
def test_deviation_from_uniform_sums_to_zero_over_real_keys(name, stage, j):
    c = case(name)
    b = c.trace.block(stage, j)
    H, W = b.layout.feature_hw
    q = (H - 1, W // 2)
    g, _ = b.layout.locate(q)
    real = ~b.layout.key_padding[g]
    w = query_weights(b, q)
    dev = uniform_deviation(b, g, w)
    assert dev[real].sum() == pytest.approx(0.0, abs=1e-6)   # float32 weights
    assert np.allclose(dev[real], w[real] - 1.0 / real.sum())
    fig = query_attention_figure(c.image, b, q, relative=True)
    hm = named(fig, "attention")[0]
    z = np.asarray(hm.z, float)
    assert np.nansum(z) == pytest.approx(0.0, abs=1e-6)
    assert hm.colorscale == fig.data[1].colorscale and hm.zmid == 0 and hm.zmin == -hm.zmax
    assert hm.zmax == pytest.approx(np.nanmax(np.abs(z)))
    raw = named(query_attention_figure(c.image, b, q), "attention")[0]
    assert raw.zmin == 0 and np.nansum(np.asarray(raw.z, float)) == pytest.approx(1.0, abs=1e-5)
    grid = head_grid_figure(c.image, b, q, relative=True)
    ax = grid.layout.coloraxis
    assert ax.cmid == 0 and ax.cmin == -ax.cmax
    for t in grid.data:
        if t.type == "heatmap" and t.name.startswith("head"):
            assert np.nansum(np.asarray(t.z, float)) == pytest.approx(0.0, abs=1e-6)
            assert np.nanmax(np.abs(np.asarray(t.z, float))) <= ax.cmax + 1e-12


@pytest.mark.parametrize("name", ["demo_pad", "pp", "s_v1"])
def test_sda_lda_pair_shares_one_scale_and_marks_padding(name):
    c = case(name)
    for i, blocks in enumerate(c.trace.blocks):
        sda, lda = blocks[0].layout, blocks[1].layout
        H, W = sda.feature_hw
        fig = sda_lda_figure(c.image, sda, lda, i, (H // 2, W // 3))
        assert list(fig.layout.xaxis.range) == list(fig.layout.xaxis2.range)
        assert list(fig.layout.yaxis.range) == list(fig.layout.yaxis2.range)
        s = 4 * 2 ** i
        for lay in (sda, lda):
            marks = named(fig, f"padding ({lay.kind.upper()})")
            if not lay.is_padded:
                assert not marks
                continue
            got = sorted(zip(np.asarray(marks[0].y) // s, np.asarray(marks[0].x) // s))
            assert got == sorted(map(tuple, np.argwhere(lay.padding_map)))


def test_partition_dims_every_group_but_the_selected_one():
    c = case("demo_pad")
    lay = c.trace.block(0, 1).layout
    fig = group_partition_figure(c.image, lay, 0, selected_group=5)
    veil = np.asarray(main_traces(fig)[[t.name for t in main_traces(fig)].index("other groups (dimmed)")].z, float)
    assert np.array_equal(np.isnan(veil), np.asarray(lay.group_map) == 5)
    assert not named(group_partition_figure(c.image, lay, 0), "other groups (dimmed)")


def test_inset_appears_only_when_the_group_is_small_on_screen():
    image = sample_image(512, 770)
    small = plan_layout("sda", (128, 193), 4, 4)                 # CrossFormer++-S stage 0 at 512: 16-px windows
    fig = group_partition_figure(image, small, 0, query=(51, 72))
    view = inset.inset_view(fig)
    assert view is not None and inset.inset_traces(fig)
    g, _ = small.locate((51, 72))
    ys, xs = small.positions[g][:, 0] * 4, small.positions[g][:, 1] * 4
    assert view[0] <= ys.min() and ys.max() + 4 <= view[1] and view[2] <= xs.min() and xs.max() + 4 <= view[3]
    side = max(view[1] - view[0], view[3] - view[2])
    assert side < inset.INSET_BELOW * max(small.padded_hw) * 4        # it zooms in
    assert named(fig, "zoomed members")                                # numbered inside the inset …
    cell = style.cell_px(4, (small.padded_hw[0] * 4, small.padded_hw[1] * 4), style.auto_panel(
        4, (small.padded_hw[0] * 4, small.padded_hw[1] * 4)))
    assert (cell >= MIN_NUMBER_CELL) == bool(named(fig, f"group {g}"))  # … and on the main panel only if they fit
    big = plan_layout("sda", (14, 14), 7, 8)                       # a 7×7 window of a 14×14 map: half the image
    assert inset.inset_view(group_partition_figure(sample_image(224, 224), big, 2, query=(3, 3))) is None


def test_attention_inset_for_a_small_window_and_none_for_a_large_one():
    c = case("pp")                                                 # stage 0: G = 4, 16-px windows of 264 px
    fig = query_attention_figure(c.image, c.trace.block(0, 0), (5, 7))
    assert inset.inset_view(fig) is not None
    ins = [t for t in inset.inset_traces(fig) if t.type == "heatmap"]
    assert ins and np.array_equal(np.asarray(ins[0].z, float), np.asarray(named(fig, "attention")[0].z, float),
                                  equal_nan=True)
    big = case("demo224").trace.block(3, 0)                        # one global group
    assert inset.inset_view(query_attention_figure(case("demo224").image, big, (3, 3))) is None
    assert inset.inset_view(query_attention_figure(c.image, c.trace.block(0, 0), (5, 7), zoom_inset=False)) is None


@pytest.mark.parametrize("heads", [1, 2, 4, 8, 16, 32, 48])
def test_head_ticks_are_spaced_wider_than_their_labels(heads):
    step = head_dtick(heads)
    n_labels = -(-heads // step)
    assert PANEL_MIN_PX / n_labels >= HEAD_LABEL_PX
    assert step == 1 or PANEL_MIN_PX / -(-heads // (step // 2)) < HEAD_LABEL_PX   # no sparser than needed


def test_diagnostics_figure_uses_the_spaced_head_ticks():
    stats = trace_head_stats(case("pp").trace)
    fig = diagnostics_figure(stats)
    H = np.asarray(stats["entropy"]).shape[1]
    assert fig.layout.xaxis.dtick == head_dtick(H)


@pytest.mark.parametrize("G", [2, 3, 7, 14])
def test_dpb_offset_ticks_are_integers_at_the_ends_and_centre(G):
    assert offset_ticks(G) == [-(G - 1), 0, G - 1]
    t = case("demo224").trace.block(0, 0)
    table = np.random.default_rng(0).normal(size=((2 * G - 1) ** 2, t.heads))
    for fig in (dpb_heatmap_figure(table, G, centred=True), dpb_sizes_figure({G: table}, 0)):
        assert list(fig.layout.xaxis.tickvals) == offset_ticks(G)
        assert all(float(v).is_integer() for v in fig.layout.yaxis.tickvals)
    scene = dpb_surface_figure(table, G, 0).layout.scene
    assert list(scene.xaxis.tickvals) == offset_ticks(G) and len(scene.xaxis.title.text) <= 4


def test_eight_heads_are_laid_out_three_by_three():
    table = np.zeros((49, 8))
    fig = dpb_heatmap_figure(table, 4)
    assert sum(1 for t in fig.data if t.type == "heatmap") == 8
    assert fig.layout.xaxis4.domain == fig.layout.xaxis.domain        # the 4th head starts row 2
    assert fig.layout.xaxis3.domain[1] == pytest.approx(1.0)


@pytest.mark.parametrize("text", [
    "stage 0 · block 1 · LDA · G=4 · I=4 · group 652, member 2 · weights over its 16 real members sum to 1 · "
    "4 px per token",
    "entropy: spread of the attention (nats) · distance: how far a head looks<br>residual RMS: size of each "
    "block's output · red circles: heads unlike the other heads of their block"])
@pytest.mark.parametrize("chars", [30, 60, 90])
def test_wrapped_text_keeps_every_word_and_fits(text, chars):
    out = style.wrap_text(text, chars)
    assert out.replace("<br>", " ").split() == text.replace("<br>", " ").split()
    assert all(len(line) <= chars for line in out.split("<br>"))
    fig = style.apply_layout(__import__("plotly.graph_objects").graph_objects.Figure(), "t", text, width=1400,
                             height=500)
    lines = fig.layout.title.subtitle.text.split("<br>")
    assert max(map(len, lines)) * style.SUBTITLE_CHAR_PX <= style.WRAP_PX
    assert fig.layout.height == 500 + 17 * (len(lines) - 1 - text.count("<br>"))


def test_parity_fields_with_equal_errors_are_drawn_side_by_side():
    fig = parity_figure({"s0_b0": {"dpb_table": 3e-7, "dpb_bias": 3e-7}, "s0_b1": {"dpb_table": 0.0,
                                                                                  "dpb_bias": 0.0}})
    assert fig.layout.scattermode == "group"
    assert {t.name for t in fig.data} == {"dpb_table", "dpb_bias"}


def test_sda_lda_pair_zooms_both_panels_alike_when_the_groups_are_small():
    image = sample_image(512, 772)
    sda, lda = plan_layout("sda", (128, 193), 4, 4), plan_layout("lda", (128, 193), 4, 4)
    q = (51, 72)
    fig = sda_lda_figure(image, sda, lda, 0, q)
    xr, yr = list(fig.layout.xaxis.range), list(fig.layout.yaxis.range)
    assert xr == list(fig.layout.xaxis2.range) and yr == list(fig.layout.yaxis2.range)
    assert xr[1] - xr[0] < 0.15 * 772                                  # zoomed in …
    for lay in (sda, lda):                                             # … yet both groups are inside
        g, _ = lay.locate(q)
        ys, xs = lay.positions[g][:, 0] * 4, lay.positions[g][:, 1] * 4
        assert xr[0] <= xs.min() and xs.max() + 4 <= xr[1] and yr[1] <= ys.min() and ys.max() + 4 <= yr[0]
    assert "zoomed" in fig.layout.title.subtitle.text
    small = case("demo224")                                            # 224 px, stage 2: no zoom
    b = small.trace.blocks[2]
    fig = sda_lda_figure(small.image, b[0].layout, b[1].layout, 2, (3, 3))
    assert "zoomed" not in fig.layout.title.subtitle.text


def test_head_grid_labels_y_ticks_only_on_the_first_column():
    fig = dpb_heatmap_figure(np.zeros((49, 8)), 4)
    assert fig.layout.yaxis.showticklabels is True
    assert fig.layout.yaxis2.showticklabels is False and fig.layout.yaxis4.showticklabels is True


def test_head_grid_enlarges_members_too_small_to_see():
    c = case("demo224")                                            # LDA, I = 8: the group spans the image
    b = c.trace.block(0, 1)
    fig = head_grid_figure(c.image, b, (20, 20))
    lay = b.layout
    g, _ = lay.locate((20, 20))
    marks = [t for t in fig.data if t.name.endswith("(enlarged marks)")]
    side = max(np.ptp(lay.positions[g][:, 0]), np.ptp(lay.positions[g][:, 1])) + 3
    assert bool(marks) == (style.cell_px(4, (side * 4, side * 4), 230) < 6)
    if marks:
        w = query_weights(b, (20, 20), 0)
        assert np.allclose(marks[0].marker.color, w[~lay.key_padding[g]])


def test_attention_figure_in_half_a_page_wraps_its_text_to_that_width():
    c = case("pp")
    block = c.trace.block(1, 1)
    wide = query_attention_figure(c.image, block, (3, 4), title=f"{block.name} after the edit")
    half = query_attention_figure(c.image, block, (3, 4), title=f"{block.name} after the edit", wrap_px=420)
    limit = style.wrap_chars(half.layout.width, style.SUBTITLE_CHAR_PX, 420)
    lines = half.layout.title.subtitle.text.split("<br>")
    assert max(len(line) for line in lines) <= limit
    assert len(lines) > len(wide.layout.title.subtitle.text.split("<br>"))   # the same words on more lines
    assert " ".join(lines).split() == " ".join(wide.layout.title.subtitle.text.split("<br>")).split()


def test_signed_attribution_maps_say_what_each_sign_means():
    """Issue 31, item 8: IG / occlusion maps are signed; their colour bar and subtitle name the sign."""
    from viz.attribution_figures import SIGN_LEGEND, attribution_overlay_figure
    image = sample_image(64, 96)
    a = np.linspace(-2.0, 1.0, 64 * 96).reshape(64, 96)
    fig = attribution_overlay_figure(image, a, "IG", signed=True, colorbar_title="attribution")
    heat = named(fig, "attribution")[0]
    bar = heat.colorbar
    assert list(bar.tickvals) == [-heat.zmax, 0.0, heat.zmax] and heat.zmin == -heat.zmax
    assert "lowers" in bar.ticktext[0] and "raises" in bar.ticktext[2]
    assert SIGN_LEGEND in fig.layout.title.subtitle.text.replace("<br>", " ")
    plain = attribution_overlay_figure(image, np.abs(a), "Grad-CAM", signed=False)
    assert named(plain, "attribution")[0].colorbar.ticktext is None
    assert SIGN_LEGEND not in str(plain.layout.title.subtitle.text)


# ---- issue 31, Must-have 3: one zoom rule for every variant, legible numbers, insets off the ticks -------------
PAIR_CASES = {"v1 (demo, T, S)": (7, None), "++-S": (4, 4)}


@pytest.mark.parametrize("variant", PAIR_CASES)
def test_sda_lda_pair_zooms_for_every_variant_at_512(variant):
    """At 512×768 the query's SDA window and LDA members are visible for v1 as for ++: the pair zooms to the
    SDA window plus the nearest LDA members (v1's LDA group spans the whole map)."""
    from viz.geometry_figures import ZOOM_BELOW_PX
    G, I = PAIR_CASES[variant]
    image = sample_image(512, 768)
    sda, lda = plan_layout("sda", (128, 192), G, I), plan_layout("lda", (128, 192), G, I)
    q = (60, 90)
    fig = sda_lda_figure(image, sda, lda, 0, q)
    xr, yr = list(fig.layout.xaxis.range), list(fig.layout.yaxis.range)
    assert xr == list(fig.layout.xaxis2.range) and yr == list(fig.layout.yaxis2.range)
    side = xr[1] - xr[0]
    assert side < 0.5 * 768 and "zoomed" in fig.layout.title.subtitle.text
    g, _ = sda.locate(q)
    ys, xs = sda.positions[g][:, 0] * 4, sda.positions[g][:, 1] * 4
    assert xr[0] <= xs.min() and xs.max() + 4 <= xr[1] and yr[1] <= ys.min() and ys.max() + 4 <= yr[0]
    assert G * 4 * 520 / side >= ZOOM_BELOW_PX                         # the window is big enough to see
    g, _ = lda.locate(q)
    real = lda.positions[g][~lda.key_padding[g]] * 4
    inside = ((real[:, 1] >= xr[0]) & (real[:, 1] + 4 <= xr[1]) & (real[:, 0] >= yr[1]) & (real[:, 0] + 4 <= yr[0]))
    assert inside.sum() >= 4                                           # LDA members next to the window
    if I is not None:
        assert inside.all()                                            # ++'s compact group: all of it
    small = sda_lda_figure(sample_image(224, 224), plan_layout("sda", (56, 56), G, I),
                           plan_layout("lda", (56, 56), G, I), 0, (20, 20))
    assert "zoomed" not in small.layout.title.subtitle.text            # at 224 the whole map is shown


def _numbers_fit(fig, display_scale: float) -> list[str]:
    """Member-number traces whose two-digit labels (≈ 0.6·font per digit) are wider than 80 % of their cell
    once the figure is shown at ``display_scale`` of its layout width (fonts do not scale)."""
    bad = []
    for t in fig.data:
        if t.type == "scatter" and t.mode == "markers+text" and t.text is not None:
            cell = float(t.marker.size) / 0.92 * display_scale
            digits = max(len(s) for s in t.text)
            if 0.6 * float(t.textfont.size) * digits > 0.8 * cell + 1e-9:
                bad.append(f"{t.name}: font {t.textfont.size} in a {cell:.1f}-px cell")
    return bad


@pytest.mark.parametrize("name", ["demo224", "pp", "s_v1"])
def test_member_numbers_do_not_run_together_at_224(name):
    """The pair figure is wider than any column (shown at ~0.8 of its width); the partition figure at ~0.95."""
    c = case(name)
    for i, blocks in enumerate(c.trace.blocks):
        sda, lda = blocks[0].layout, blocks[1].layout
        H, W = sda.feature_hw
        q = (H // 2, W // 2)
        assert not _numbers_fit(sda_lda_figure(c.image, sda, lda, i, q), 0.8), (name, i)
        for lay in (sda, lda):
            fig = group_partition_figure(c.image, lay, i, query=q)
            assert not _numbers_fit(fig, 0.95), (name, i, lay.kind)


def test_insets_sit_in_a_top_corner_of_an_image_pinned_top_left():
    """Tick labels are left of and below the image: the inset never takes a bottom corner, and the image
    is pinned to the top left of its plot area, so a narrower column cannot slide the ticks under it."""
    c = case("pp")
    H, W = c.trace.block(0, 0).layout.feature_hw
    for q in ((1, 1), (1, W - 2), (H - 2, 1), (H - 2, W - 2)):
        for fig in (query_attention_figure(c.image, c.trace.block(0, 0), q),
                    group_partition_figure(c.image, c.trace.block(0, 0).layout, 0, query=q)):
            assert inset.inset_view(fig) is not None
            assert list(fig.layout.yaxis2.domain) == [1 - inset.INSET_SIZE, 1.0]
            assert fig.layout.xaxis.constraintoward == "left" and fig.layout.yaxis.constraintoward == "top"
            left = fig.layout.xaxis2.domain[0] == 0.0
            assert left == (q[1] * 4 > W * 4 / 2)                      # the side away from the query


def test_schemes_panels_zoom_on_small_windows_like_the_groups_page():
    from crossformer import schemes
    from viz.schemes_figures import visible_keys_figure
    hw, q = (128, 192), (60, 90)
    specs = schemes.panel_specs(schemes.Settings.for_stage(0))
    masks = [schemes.visible_keys(s.scheme, hw, q, **s.params) for s in specs]
    fig = visible_keys_figure(sample_image(512, 768), masks, [s.label for s in specs], [s.scheme for s in specs],
                              4, q, cols=2)
    titles = [a.text for a in fig.layout.annotations]
    for i, (s, mask) in enumerate(zip(specs, masks)):
        ax = fig.layout["xaxis" + ("" if i == 0 else str(i + 1))]
        width = ax.range[1] - ax.range[0]
        local = s.scheme in ("sda", "swin", "swin_shifted") or (s.scheme == "lda" and bool(s.params.get("interval")))
        zoomed = any(t.startswith(s.label) and t.endswith("zoomed") for t in titles)
        assert zoomed == (width < 768) == local, (s.label, width)
        if local:                                                      # every visible key stays in view
            xs = np.argwhere(mask)[:, 1] * 4
            assert ax.range[0] <= xs.min() and xs.max() + 4 <= ax.range[1]
            ay = fig.layout["yaxis" + ("" if i == 0 else str(i + 1))]
            assert (ay.range[0] - ay.range[1]) / width == pytest.approx(512 / 768)   # the panels' shape


def test_image_panels_are_pinned_to_the_top_so_no_white_band_opens_above_them():
    """Issue 31, item 8: shown at a narrower column width with its layout height, a centred image sat under
    a tall white band; image axes now keep the spare room below and right of the image."""
    from viz.attribution_figures import attribution_overlay_figure
    c = case("pp")
    b = c.trace.block(0, 0)
    figs = [query_attention_figure(c.image, b, (5, 7)), group_partition_figure(c.image, b.layout, 0, query=(5, 7)),
            sda_lda_figure(c.image, b.layout, c.trace.block(0, 1).layout, 0, (5, 7)),
            attribution_overlay_figure(c.image, np.ones(c.image.shape[:2]), "IG")]
    for fig in figs:
        axes = [k for k in fig.layout.to_plotly_json() if k.startswith("yaxis") and k != "yaxis2"
                or (k == "yaxis2" and fig.layout.yaxis2.scaleanchor == "x2" and not inset.inset_traces(fig))]
        for k in axes:
            assert fig.layout[k].constraintoward == "top", (fig.layout.title.text, k)
            assert fig.layout["x" + k[1:]].constraintoward == "left"
