"""Attention: where a query token looks inside its SDA window or LDA group, per head and per block."""

import streamlit as st

from crossformer.analysis.findings import attention_pick
from pages.common import compare, figure_cache, findings, startup, state, texts, traces, widgets
from viz.attention_figures import (bias_content_split_figure, group_matrix_figure, head_grid_figure,
                                   query_attention_figure, trace_rollout_figure)

ctx = startup.page_context()
trace = ctx.trace
intro = widgets.page_header("attn")
block = widgets.block_picker(trace, "attn", default_block=1)
pick = attention_pick(block)
head = widgets.head_picker(block, "attn", default=pick.head)
widgets.informative_default_line(pick.why if head == pick.head else None, "attn",
                                 heads={"attn_head": pick.head})

left, right = st.columns([1, 2], gap="large")
with left:
    token = widgets.query_picker(ctx, stage=block.stage, prefix="attn")
    relative = st.toggle("Deviation from uniform (a − 1/N)", key="attn_relative",
                         help="Paint each weight minus 1/N (N = real keys of the query's group) on a blue–red "
                              "scale centred at 0: red = more than uniform, blue = less.")
group, member = block.layout.locate(token)
intro.markdown(texts.attention_intro(block, token, group, member, ctx.prepared.hw))
with right:
    fig = figure_cache.built_figure(query_attention_figure, ctx.pixels, block, token, head, relative=relative)
    widgets.show_figure(fig, key="attn_query",
                        filename=f"attention_{block.name}_q{token[0]}_{token[1]}")
    for note in findings.attention_notes(block, group, member, head):
        st.info(note, icon=":material/lightbulb:")

# ---- A/B compare: B beside A, same query point, block and head (pages/common/compare.py) ----
side_b = compare.choose(ctx, "attn")
if side_b is not None:
    compare.attention_section(ctx, side_b, block, token, head)

VIEWS = {
    "heads": "All heads",
    "matrix": "Group matrix",
    "split": "Content vs position",
    "diagnostics": "All blocks",
    "rollout": "Rollout (heuristic)",
}
view = state.choice("More views", VIEWS, "attn_view", default="heads", format_func=VIEWS.get, widget="radio",
                    horizontal=True)
if view == "heads":
    build = head_grid_figure, (ctx.pixels, block, token), {"relative": relative}
    caption = f"Each of the {block.heads} heads of {block.name} for the same query, on one colour scale."
elif view == "matrix":
    build = group_matrix_figure, (block, group, head), {}
    caption = (f"All {block.layout.group_tokens}×{block.layout.group_tokens} weights of group {group}: row = query "
               f"member (the query is row {member}), column = key member; padded keys get exactly 0.")
elif view == "split":
    build = bias_content_split_figure, (block, token, head), {}
    caption = ("Softmax of the content term alone, of the DPB bias alone, and the real attention: how much of "
               "where the query looks is decided by *what* the keys are versus *where* they are.")
elif view == "diagnostics":
    from viz.diagnostics_figures import diagnostics_figure
    build = diagnostics_figure, (traces.trace_head_stats(ctx.model_id, ctx.image_key, ctx.prep_key, _trace=trace),), {}
    caption = "Every block × head of this forward pass: attention entropy, mean attended distance, bias share."
else:
    build = trace_rollout_figure, (ctx.pixels, trace), {"stride": ctx.stride(0)}
    caption = ("A heuristic picture of attention flow through all blocks (ignores MLPs and values); "
               "use the Attributions page for what the prediction rests on.")
fig = figure_cache.built_figure(build[0], *build[1], **build[2])
widgets.show_figure(fig, key=f"attn_{view}", filename=f"attention_{view}_{block.name}", caption=caption)
if view in ("heads", "matrix", "split"):
    note = (findings.heads_note(block, group, member) if view == "heads"
            else " ".join(findings.attention_notes(block, group, member, head)))
    if note:
        st.info(note, icon=":material/lightbulb:")
if side_b is not None:
    compare.attention_view(ctx, side_b, view, block, head)
