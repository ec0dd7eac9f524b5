"""Why cross-scale attention? ViT, Swin, PVT, CrossFormer and CrossFormer++ side by side on this image."""

import streamlit as st

from crossformer import schemes
from pages.common import figure_cache, schemes_text, startup, state, widgets
from viz.schemes_figures import cost_figure, reach_figure, visible_keys_figure

DEPTHS = (1, 2, 4)                            # reach after this many blocks
SIZES_PX = tuple(range(64, 1025, 32))         # cost plot: square images, 64…1024 px

ctx = startup.page_context()
trace = ctx.trace
intro = widgets.page_header("sch")
stage = widgets.stage_picker(trace, "sch")
hw = trace.stage_hw[stage]
paper = schemes.Settings.for_stage(stage)

with st.expander("Parameters of each scheme"):
    c1, c2, c3 = st.columns(3)
    with c1:
        window = state.number("Swin window M", 2, 14, "sch_swin_m", default=paper.swin_window)
    with c2:
        reduction = state.choice("PVT reduction R", (1, 2, 4, 8, 16), f"sch_pvt_r{stage}",
                                 default=paper.pvt_reduction, format_func=lambda r: f"R = {r}")
    with c3:
        group = state.number("CrossFormer group size G", 2, 14, "sch_cf_g", default=paper.crossformer_group)
    st.caption(f"Papers' defaults: Swin M = 7; PVT R = 8/4/2/1 per stage; CrossFormer G = 7 with the v1 LDA "
               f"interval I = ⌈H/G⌉; CrossFormer++ G = 4/4/14/7 and I = 4/2/1/1 per stage (here stage {stage}: "
               f"G = {paper.pp_group}, I = {paper.pp_interval}).")
settings = schemes.Settings.for_stage(stage, swin_window=window, pvt_reduction=reduction, crossformer_group=group)
specs = schemes.panel_specs(settings)
archs = schemes.architectures(settings)

left, right = st.columns([1, 2], gap="large")
with left:
    token = widgets.query_picker(ctx, stage=stage, prefix="sch")
reached = schemes.reach_grid(archs, DEPTHS, hw, token)
pairs = {s.short: schemes.pair_count(s.scheme, hw, **s.params) for s in specs}
intro.markdown(schemes_text.schemes_intro(
    trace.input_hw, stage, hw, pairs["ViT"], pairs["CrossFormer SDA"] + pairs["CrossFormer LDA"],
    reached.count("CrossFormer", 2), reached.count("Swin", 2)))

with right:
    fig = figure_cache.built_figure(
        visible_keys_figure, ctx.pixels, [schemes.visible_keys(s.scheme, hw, token, **s.params) for s in specs],
        [f"{s.label}<br>{pairs[s.short]:,} pairs" for s in specs], [s.scheme for s in specs],
        ctx.stride(stage), token,
        grid_every=[s.params.get("reduction") if s.scheme == "pvt" else None for s in specs], cols=2)
    widgets.show_figure(fig, key="sch_visible", filename=f"visible_keys_stage{stage}",
                        caption="One block of each scheme: coloured tokens are the keys the query scores "
                                "(PVT: every region, through R×R-pooled keys — grid lines show the pooled cells).")

st.subheader("Reach after 1, 2 and 4 blocks")
fig = figure_cache.built_figure(reach_figure, reached.masks, reached.counts, reached.architectures, reached.depths,
                                token)
widgets.show_figure(fig, key="sch_reach", filename=f"reach_stage{stage}",
                    caption=f"Stage {stage}, {hw[0]}×{hw[1]} tokens: blocks repeat the architecture's cycle "
                            "(Swin W, SW, W, SW; CrossFormer SDA, LDA, SDA, LDA). Attention only. Where G·I is "
                            "smaller than the map (CrossFormer++'s early stages), SDA and LDA together stay inside "
                            "tiles of G·I tokens per side; later stages and its convolutional ACL layers mix "
                            "further.")

st.subheader("Cost against image size")
cost_settings = schemes.Settings.for_stage(0, swin_window=window, crossformer_group=group)
fig = figure_cache.built_figure(cost_figure, SIZES_PX,
                                schemes.cost_curves(SIZES_PX, cost_settings, ctx.bundle.cfg.stride),
                                {s.label: s.scheme for s in schemes.panel_specs(cost_settings)},
                                marker_px=schemes.equal_area_side(trace.input_hw))
widgets.show_figure(fig, key="sch_cost", filename="cost_vs_image_size",
                    caption="One block, one head, stage 0 (PVT R = 8, CrossFormer++ G = 4, I = 4). With M = G = 7 "
                            "the Swin, SDA and LDA lines coincide (each scores 49 keys per padded token). "
                            "The dotted line marks this image's equal-area side.")

st.subheader("Pair counts per stage on this image")
table = schemes.pair_table(trace.stage_hw, swin_window=window, crossformer_group=group)
st.dataframe(table, hide_index=True, key="sch_table",
             column_config={c: st.column_config.NumberColumn(c, format="localized")     # 9,834,496
                            for c in (table[0] if table else {}) if c not in ("stage", "tokens")})
st.caption("Query–key pairs per head of one block, padding included (padded keys are computed, then masked); "
           "each stage with its papers' parameters (PVT R = 8/4/2/1, CrossFormer++ G and I per stage).")
