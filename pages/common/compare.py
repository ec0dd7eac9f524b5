"""A/B compare: a second input B — another image, another model, or the same model at another input size —
beside the run's input A, on the Attention and DPB pages (UI helpers; figures in :mod:`viz.compare_figures`).

B is an :class:`~pages.common.inputs.Input` chosen with the sidebar's own sections and built as A is
(:func:`~pages.common.inputs.build_input`: its trace is cached under B's own model id, image key and
preprocessing); nothing is stored on the model. The shared query is a pixel of A's model input
(:func:`~pages.common.context.query_pixel`); B looks at the same point of the picture, mapped
proportionally when B's input has another size (:func:`map_pixel`). Blocks and heads are matched by
position (``s1_b0``, head 2); when B has no such block or head the page says so.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import streamlit as st

from crossformer.analysis.compare import (difference_rows, difference_summary, dpb_difference, head_stat_difference,
                                           largest_dpb_difference)
from crossformer.analysis.tokens import token_of_pixel
from crossformer.trace import BlockTrace, Trace

from . import figure_cache, prep_policy, state, traces, widgets
from .context import AppContext, query_pixel
from .image_section import image_section
from .inputs import Input, Side, build_input
from .model_section import model_section
from .sidebar import SIZE_HELP, prep_section

log = logging.getLogger(__name__)

SOURCES = {"image": "Another image", "model": "Another model", "size": "Another input size"}
#: The models B offers (the official weights' download stays in the sidebar).
MODELS = ("architecture", "demo", "upload")
#: B's widgets: keys ``cmp_*``, the sidebar's sections worded for B; a Navon B differs from A's default one.
B = Side("cmp", source_label="visible", navon=("ring", "circle"), words=(
    ("Source", "B's image"), ("Sample image", "B's sample"), ("The sample", "B's sample"),
    ("Global shape", "B's global shape"), ("Local shape", "B's local shape"),
    ("Element size (px)", "B's element size (px)"), ("Seed (position, colours, texture)", "B's seed"),
    ("Upload an image", "Upload B's image"),
    ("Upload an image above; the default sample is shown meanwhile.",
     "Upload B's image above; until then B is A's image."),
    ("Could not use the uploaded file", "Could not use B's upload"),
    ("The default image is shown instead.", "B is A's image meanwhile."),
    ("Model", "B's model"), ("Variant", "B's variant"),
    ("Checkpoint (.pth, .safetensors, .npz)", "B's checkpoint (.pth, .safetensors, .npz)"),
    ("No checkpoint uploaded yet: the demo model is used.", "No checkpoint uploaded yet: B uses the demo model."),
    ("Could not load the checkpoint", "Could not load B's checkpoint"),
    ("Using the demo model.", "B uses the demo model."),
    ("Crop size (px)", "B's crop size (px)"), ("Shorter side (px)", "B's shorter side (px)"),
    (SIZE_HELP, "The same model and image at another input size: groups, padding and the number of tokens per "
                "stage change, the weights do not. B re-runs when you press Apply."),
))


# ---- geometry shared by A and B (pure) ------------------------------------------------------------------------
def map_pixel(pixel: tuple[int, int], hw_a: tuple[int, int], hw_b: tuple[int, int]) -> tuple[int, int]:
    """Pixel ``(y, x)`` of A's input → the pixel of B's input at the same relative position (pixel centre to
    pixel centre, clamped): the identity when the sizes agree."""
    out = []
    for v, a, b in zip(pixel, hw_a, hw_b):
        out.append(min(max(int((int(v) + 0.5) * b / a), 0), b - 1))
    return out[0], out[1]


def query_token_b(ctx: AppContext, b: Input, stage: int) -> tuple[int, int]:
    """The shared query as a token ``(h, w)`` of B's ``stage``."""
    pixel = map_pixel(query_pixel(ctx), ctx.prepared.hw, b.prepared.hw)
    return token_of_pixel(pixel, b.trace.stage_hw[stage], b.stride(stage))


def same_block(trace: Trace, stage: int, index: int) -> BlockTrace | None:
    """Block ``index`` of ``stage`` in ``trace``, or ``None`` when that model has no such block."""
    if stage < len(trace.blocks) and index < len(trace.blocks[stage]):
        return trace.blocks[stage][index]
    return None


def difference_note(diff: dict, block_name: str, head: int | None) -> str:
    """Teaching text with the numbers of :func:`crossformer.analysis.compare.difference_summary` for one block
    (``head=None``: the head of that block whose focus changes most) and over all blocks."""
    s = difference_summary(diff, block_name, head)
    c = s.chosen
    parts = []
    if not np.isfinite(c.d_entropy):
        parts.append(f"B has no head {c.head} in {block_name}: nothing to compare there.")
    else:
        d, d_px = c.d_entropy, c.d_distance
        who = ("A" if d < 0 else "B") if abs(d) >= 0.005 else None
        focus = (f"is {abs(d):.2f} ln N more focused on {who} than on {'B' if who == 'A' else 'A'}" if who else
                 "is about as focused on A as on B")
        parts.append(f"Head {c.head} of {block_name} {focus} (entropy {c.a_entropy:.2f} vs {c.b_entropy:.2f} of "
                     f"ln N) and looks {abs(d_px):.1f} px {'farther' if d_px >= 0 else 'nearer'} on A (mean distance "
                     f"{c.a_distance:.1f} vs {c.b_distance:.1f} px).")
    if s.largest is not None:
        parts.append(f"Over all blocks, the focus changes most for head {s.largest.head} of {s.largest.block} "
                     f"({s.largest.d_entropy:+.2f} ln N, A − B); the mean |Δ| over the {s.n_both} heads both have "
                     f"is {s.mean_abs_d_entropy:.3f} ln N.")
    if s.missing:
        parts.append(f"{s.missing} heads of A have no counterpart in B (× in the map).")
    return " ".join(parts)


# ---- choosing B -------------------------------------------------------------------------------------------------
def choose(ctx: AppContext, prefix: str) -> Input | None:
    """The "Compare with…" toggle and, when on, the choice of B with the sidebar's own sections (worded for B)
    → B, built as A is (:func:`~pages.common.inputs.build_input`); ``None`` when off or B cannot run."""
    if not st.toggle("Compare with…", key=f"{prefix}_cmp",
                     help="Put a second input B beside this one: another image, another model or another input "
                          "size, with the same query point, block and head, and the difference drawn."):
        return None
    errors: list[str] = []
    with st.container(border=True):
        what = state.choice("B is", list(SOURCES), "cmp_what", format_func=SOURCES.get, widget="radio",
                            horizontal=True)
        image, bundle, prep = ctx.image, ctx.bundle, ctx.prep
        if what == "image":
            image = image_section(B, errors, avoid=ctx.image.name) or image
        elif what == "model":
            bundle = model_section(B, errors, MODELS)
        else:                   # the same preprocessing mode as A, so the same framing of the picture
            hi = prep_policy.max_size(ctx.bundle.is_backbone)
            prep = prep_section(B, prep.mode, {prep.mode: prep.mode}, hi, default_size=min(hi, prep.size + 64),
                                official_crop=None)
        for msg in errors:
            st.warning(msg, icon=":material/warning:")
        try:
            b = build_input(image, bundle, prep)
        except Exception as err:  # noqa: BLE001 — shown, the page keeps running without B
            log.exception("B's forward pass failed")
            st.warning(f"B could not run ({type(err).__name__}: {err}); choose another B.", icon=":material/warning:")
            return None
        st.caption(f"**A**: {ctx.label}  \n**B**: {b.label}")
        if b.same_as(ctx):
            st.info("B is the same input as A, so every difference below is 0: choose another image, model or "
                    "size.", icon=":material/info:")
    return b


# ---- drawing ----------------------------------------------------------------------------------------------------
def _csv(rows: list[dict]) -> bytes:
    import pandas as pd
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    return buf.getvalue().encode()


def _b_block(b: Input, block: BlockTrace, head: int | None) -> tuple[BlockTrace | None, int | None]:
    """B's block at A's position and the head to show there; warns when B lacks either."""
    blk = same_block(b.trace, block.stage, block.index)
    if blk is None:
        n = len(b.trace.blocks[block.stage]) if block.stage < len(b.trace.blocks) else 0
        st.warning(f"B's model has no block {block.name}: its stage {block.stage} has {n} block(s).",
                   icon=":material/block:")
        return None, None
    if head is not None and head >= blk.heads:
        st.warning(f"B's {block.name} has {blk.heads} heads, so no head {head}: B shows the mean of its heads.",
                   icon=":material/info:")
        return blk, None
    return blk, head


def attention_section(ctx: AppContext, b: Input, block: BlockTrace, token: tuple[int, int],
                      head: int | None) -> None:
    """A's and B's attention for the shared query, side by side, then the per-head difference map."""
    from crossformer.analysis.attention import attention_scale_max
    from viz.attention_figures import query_attention_figure
    from viz.compare_figures import difference_figure

    token_b = query_token_b(ctx, b, block.stage)
    pa = query_pixel(ctx)
    pb = map_pixel(pa, ctx.prepared.hw, b.prepared.hw)
    st.caption(f"Shared query: pixel (y={pa[0]}, x={pa[1]}) of A's {ctx.prepared.hw[0]}×{ctx.prepared.hw[1]} input "
               f"→ pixel (y={pb[0]}, x={pb[1]}) of B's {b.prepared.hw[0]}×{b.prepared.hw[1]} input → B's token "
               f"(h={token_b[0]}, w={token_b[1]}) of stage {block.stage} (A's: (h={token[0]}, w={token[1]})).")
    blk_b, head_b = _b_block(b, block, head)
    maxima = {"A": attention_scale_max(block, token, head)}
    if blk_b is not None:
        maxima["B"] = attention_scale_max(blk_b, token_b, head_b)
    scale_max, scale_note = widgets.shared_scale("cmp", maxima)
    left, right = st.columns(2, gap="large")
    with left:
        fig = figure_cache.built_figure(query_attention_figure, ctx.pixels, block, token, head, panel=420,
                                        wrap_px=420, title=f"A · {block.name} · token ({token[0]}, {token[1]})",
                                        scale_max=scale_max)
        widgets.show_figure(fig, key="cmp_attn_a", filename=f"compare_A_attention_{block.name}")
    with right:
        if blk_b is not None:
            fig = figure_cache.built_figure(query_attention_figure, b.pixels, blk_b, token_b, head_b, panel=420,
                                            wrap_px=420, scale_max=scale_max,
                                            title=f"B · {blk_b.name} · token ({token_b[0]}, {token_b[1]})")
            widgets.show_figure(fig, key="cmp_attn_b", filename=f"compare_B_attention_{block.name}")
    st.caption(scale_note)
    sa = traces.trace_head_stats(ctx.model_id, ctx.image_key, ctx.prep_key, _trace=ctx.trace)
    sb = traces.trace_head_stats(b.model_id, b.image_key, b.prep_key, _trace=b.trace)
    diff = head_stat_difference(sa, sb)
    fig = figure_cache.built_figure(difference_figure, diff)
    widgets.show_figure(fig, key="cmp_diff", filename=f"compare_heads_{ctx.image_key[:8]}_{b.image_key[:8]}",
                        caption="Per block × head, averaged over the real query tokens of each input: attention "
                                "entropy divided by ln N (N = members of a full group, so inputs whose G differs "
                                "compare) and mean attended distance in each input's pixels.")
    st.download_button("Difference table (CSV)", _csv(difference_rows(diff)), "compare_heads.csv", "text/csv",
                       key="cmp_diff_csv", on_click="ignore", icon=":material/download:")
    st.info(difference_note(diff, block.name, head), icon=":material/lightbulb:")


def attention_view(ctx: AppContext, b: Input, view: str, block: BlockTrace, head: int | None) -> None:
    """B's version of the Attention page's "More views" figure (same block, head and shared query)."""
    from viz.attention_figures import (bias_content_split_figure, group_matrix_figure, head_grid_figure,
                                       trace_rollout_figure)
    from viz.diagnostics_figures import diagnostics_figure

    st.markdown(f"**B** · {b.label}")
    if view == "diagnostics":
        sb = traces.trace_head_stats(b.model_id, b.image_key, b.prep_key, _trace=b.trace)
        build = diagnostics_figure, (sb,), {"title": "B · attention diagnostics: every block and head"}
    elif view == "rollout":
        build = trace_rollout_figure, (b.pixels, b.trace), {"stride": b.stride(0)}
    else:
        blk_b, head_b = _b_block(b, block, head)
        if blk_b is None:
            return
        token_b = query_token_b(ctx, b, block.stage)
        if view == "heads":
            build = head_grid_figure, (b.pixels, blk_b, token_b), {}
        elif view == "matrix":
            group_b = blk_b.layout.locate(token_b)[0]
            build = group_matrix_figure, (blk_b, group_b, head_b), {}
        else:
            build = bias_content_split_figure, (blk_b, token_b, head_b), {}
    fig = figure_cache.built_figure(build[0], *build[1], **build[2])
    widgets.show_figure(fig, key=f"cmp_{view}_b", filename=f"compare_B_{view}_{block.name}")


def dpb_section(ctx: AppContext, b: Input, block: BlockTrace, head: int) -> None:
    """B's DPB for the same block beside the difference A − B of the two tables at A's group size."""
    from viz.compare_figures import dpb_difference_figure
    from viz.dpb_figures import dpb_heatmap_figure, offsets

    blk_b, _ = _b_block(b, block, None)
    if blk_b is None:
        return
    G = block.group_size
    table_b = traces.dpb_tables(b.model_id, block.stage, block.index, (G,), _bundle=b.bundle)[G]
    diff = dpb_difference(block.dpb_table, table_b, centred=True)
    left, right = st.columns(2, gap="large")
    with left:
        fig = figure_cache.built_figure(dpb_heatmap_figure, blk_b.dpb_table, blk_b.group_size, centred=True,
                                        title=f"B · {blk_b.name} · its own G={blk_b.group_size}")
        widgets.show_figure(fig, key="cmp_dpb_b", filename=f"compare_B_dpb_{block.name}",
                            caption="B's DPB per head minus its mean, at the G B's input gives this block.")
    with right:
        fig = figure_cache.built_figure(dpb_difference_figure, diff, G, title=f"A − B · {block.name} · G={G}")
        widgets.show_figure(fig, key="cmp_dpb_diff", filename=f"compare_dpb_diff_{block.name}",
                            caption=f"A's table minus B's, both evaluated at A's G={G} and each centred on its "
                                    "mean (a constant bias moves no attention); one symmetric scale.")
    d = offsets(G)
    rows = [{"dy": int(d[r // (2 * G - 1)]), "dx": int(d[r % (2 * G - 1)]), "head": h, "a_minus_b": float(diff[r, h])}
            for r in range(diff.shape[0]) for h in range(diff.shape[1])]
    st.download_button("DPB difference (CSV)", _csv(rows), f"compare_dpb_{block.name}.csv", "text/csv",
                       key="cmp_dpb_csv", on_click="ignore", icon=":material/download:")
    notes = []
    if b.model_id == ctx.model_id:
        notes.append("A and B share the model, and the DPB depends only on the weights and the offset — not on "
                     "the image — so A − B is 0 at the same G.")
        if blk_b.group_size != G:
            notes.append(f"At B's input size, though, {block.name} groups G={blk_b.group_size} tokens instead of "
                         f"{G}: the same MLP read at other offsets (left).")
    else:
        h = head if head < diff.shape[1] else 0
        r, value, largest = largest_dpb_difference(diff, h)
        notes.append(f"Head {h} of {block.name}: the centred biases differ most at offset (Δy, Δx) = "
                     f"({int(d[r // (2 * G - 1)])}, {int(d[r % (2 * G - 1)])}), by {value:+.3f} (A − B); "
                     f"over all offsets and heads the largest |A − B| is {largest:.3f}.")
    if blk_b.heads != block.heads:
        notes.append(f"B's block has {blk_b.heads} heads and A's {block.heads}: the difference covers the "
                     f"first {diff.shape[1]}.")
    st.info(" ".join(notes), icon=":material/lightbulb:")
