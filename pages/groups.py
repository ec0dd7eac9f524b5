"""SDA & LDA groups: how each stage cuts its token map into short- and long-distance groups."""

import streamlit as st

from crossformer.analysis.cost import first_of_kind, stage_rows
from pages.common import figure_cache, startup, texts, widgets
from viz.geometry_figures import group_partition_figure, sda_lda_figure

ctx = startup.page_context()
trace = ctx.trace
intro = widgets.page_header("grp")
stage = widgets.stage_picker(trace, "grp")
sda = first_of_kind(trace, stage, "sda")
lda = first_of_kind(trace, stage, "lda")

blocks = trace.blocks[stage]
j = widgets.block_choice(blocks, "grp_block", default=1, widget="radio", horizontal=True)
layout = blocks[j].layout

left, right = st.columns([1, 2], gap="large")
with left:
    token = widgets.query_picker(ctx, stage=stage, prefix="grp")
group, member = layout.locate(token)
intro.markdown(texts.groups_intro(trace, stage, token))
with right:
    fig = figure_cache.built_figure(group_partition_figure, ctx.pixels, layout, stage, selected_group=group,
                                    query=token)
    widgets.show_figure(fig, key="grp_partition", filename=f"groups_{blocks[j].name}",
                        caption=f"{layout.describe()} · the query is member {member} of group {group} "
                                "(its members are numbered; ✕ = padding, masked in attention).")

st.subheader("The query's SDA window and its LDA group")
if sda is not None and lda is not None:
    fig = figure_cache.built_figure(sda_lda_figure, ctx.pixels, sda.layout, lda.layout, stage, query=token)
    widgets.show_figure(fig, key="grp_pair",
                        filename=f"sda_vs_lda_stage{stage}",
                        caption=f"Token ({token[0]}, {token[1]}): its SDA window (left, block {sda.name}) gathers "
                                f"neighbours; its LDA group (right, block {lda.name}) samples the whole map.")
else:
    st.info(f"Stage {stage} has only {len(blocks)} block(s), all SDA: no LDA block to compare.")

st.subheader("Token grids, padding and groups per stage")
st.dataframe(stage_rows(trace), hide_index=True, key="grp_table")
