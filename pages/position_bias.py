"""Dynamic position bias: the MLP from a relative offset to a per-head bias, at any group size."""

import streamlit as st

from crossformer.analysis import facts
from crossformer.analysis.findings import bias_ranges, dpb_pick

from pages.common import compare, figure_cache, findings, startup, state, texts, traces, widgets
from viz.dpb_figures import bias_matrix_figure, dpb_heatmap_figure, dpb_sizes_figure, dpb_surface_figure

ctx = startup.page_context()
trace = ctx.trace
intro = widgets.page_header("dpb")
pick = dpb_pick(trace)
block = widgets.block_picker(trace, "dpb", default_block=pick.block, default_stage=pick.stage)
intro.markdown(texts.dpb_intro(block))
G = block.group_size
head = widgets.head_picker(block, "dpb", allow_mean=False,
                           default=pick.head if block.name == f"s{pick.stage}_b{pick.block}" else 0)
widgets.informative_default_line(pick.why if (block.stage, block.index, head) == (pick.stage, pick.block, pick.head)
                                 else None, "dpb",
                                 heads={"dpb_stage": pick.stage, "dpb_block": pick.block, "dpb_head": pick.head})
for note in findings.bias_notes(block, head):
    st.info(note, icon=":material/lightbulb:")
ranges = bias_ranges(block)

left, right = st.columns(2, gap="large")
with left:
    fig = figure_cache.built_figure(dpb_heatmap_figure, block.dpb_table, G, centred=True)
    widgets.show_figure(fig, key="dpb_heads",
                        filename=f"dpb_{block.name}_heads",
                        caption=f"Bias of every head over the (2G−1)² = {(2 * G - 1) ** 2} offsets (Δh, Δw) = "
                                "query − key, in member units, minus the head's mean: only differences between "
                                "offsets change attention. Red raises attention, blue lowers it. Absolute range "
                                "per head: " + ", ".join(f"{h}: {r:.3g}" for h, r in enumerate(ranges)) + ".")
with right:
    # WebGL: the slowest thing a browser draws in this app (seconds on a laptop without a GPU), so on request
    if st.toggle("Show the selected head as a 3-D surface", key="dpb_show_surface",
                 help="Drawn with WebGL, which is slow in a browser without a GPU. The heat maps on the left "
                      "hold the same numbers."):
        fig = figure_cache.built_figure(dpb_surface_figure, block.dpb_table, G, head)
        widgets.show_figure(fig, key="dpb_surface",
                            filename=f"dpb_{block.name}_head{head}_surface")
    else:
        st.caption(f"Head {head}'s bias as a height over the (Δh, Δw) plane is one switch away; it draws with "
                   "WebGL, which is slow without a GPU.")

# ---- A/B compare: B's DPB for the same block and A − B at the same G (pages/common/compare.py) ----
side_b = compare.choose(ctx, "dpb")
if side_b is not None:
    compare.dpb_section(ctx, side_b, block, head)

st.subheader("The bias each group adds")
fig = figure_cache.built_figure(bias_matrix_figure, block.dpb_bias, head, G)
widgets.show_figure(fig, key="dpb_matrix",
                    filename=f"dpb_{block.name}_head{head}_matrix",
                    caption=f"The table expanded to all {G * G}×{G * G} (query member, key member) pairs of a "
                            f"group: the same for " + ("the block's one group." if block.layout.num_groups == 1 else
                                                     f"every one of the block's {facts.count(block.layout.num_groups)} "
                                                     "groups."))

st.subheader("The same MLP at other group sizes")
other = state.number("Evaluate the DPB at group size G", 2, 16, "dpb_g", default=min(16, G + 4),
                  help="A learned table would only exist for the G it was trained with; the MLP gives a bias "
                       "for any offset, so the same block can run on any group size.")
sizes = tuple(sorted({max(2, G - 2), G, int(other)}))
tables = traces.dpb_tables(ctx.model_id, block.stage, block.index, sizes, _bundle=ctx.bundle)
fig = figure_cache.built_figure(dpb_sizes_figure, tables, head, trained_group_size=G)
widgets.show_figure(fig, key="dpb_sizes",
                    filename=f"dpb_{block.name}_head{head}_sizes")
