"""NumPy reference: an independent forward pass, its parity with PyTorch, and one weight explained."""

import logging
from functools import partial

import streamlit as st

from crossformer.analysis import explain, facts
from crossformer.analysis.predictions import top_k
from pages.common import context, estimates, figure_cache, heavy, heavy_runs, startup, state, texts, widgets
from viz.parity_figures import group_errors, parity_figure

log = logging.getLogger(__name__)
TOL = 1e-4

ctx = startup.page_context()
trace, bundle = ctx.trace, ctx.bundle
n_blocks = sum(len(s) for s in trace.blocks)
widgets.page_header("ref", texts.reference_intro(n_blocks, TOL))

request = ("ref", ctx.model_id, ctx.image_key, ctx.prep_key)


def _index(label: str, n: int, key: str, default: int, value: int | None = None, on_change=None) -> int:
    """A slider over ``0…n−1`` (a caption when there is only one choice); ``value`` forces it."""
    if n <= 1:
        st.caption(f"{label}: 0 (only one)")
        return 0
    return state.number(label, 0, n - 1, key, default=min(default, n - 1), value=value, on_change=on_change)


def _query_from_sliders(layout, stride: int) -> None:
    """Group / query-member sliders moved → the shared query token follows (in image coordinates), so the
    choice survives a block change; a padded slot has no image position and is not taken."""
    g = int(state.chosen("ref_group", 0))
    m = int(state.chosen("ref_query", 0))
    if g < layout.num_groups and m < layout.group_tokens:
        t = int(layout.members[g, m])
        if t >= 0:
            W = layout.feature_hw[1]
            context.set_query_token((t // W, t % W), stride)


calib = heavy_runs.calibration(ctx.model_id, "numpy", _bundle=bundle)       # None while being measured
est = estimates.estimate(estimates.reference_cost(n_blocks), estimates.forward_flops(bundle.cfg, ctx.pixels.shape[:2]),
                         calib)
run, _ = heavy.action("ref_run", "Run the NumPy reference on this image", request, est,
                      lambda progress: heavy_runs.reference_run(ctx.model_id, bundle, ctx.pixels, trace, progress,
                                                                ctx.prepared.padding),
                      heavy_runs.heavy_store(), progress_label="NumPy reference (plain NumPy, fp32)")
if run is None:
    st.info("Press the button to run the reference; the result is kept for every session.",
            icon=":material/hourglass_empty:")

if run is not None:
    field, err = explain.worst(run.errors)
    ok = err <= TOL
    if bundle.is_backbone:      # no classes: the four stage maps are the output compared
        outcome = "output: the four stage maps (backbone, no classes)."
    else:
        top_t = top_k(trace.logits[0], bundle.class_names, k=1)[0][1]       # (index, name, probability)
        top_n = top_k(run.logits[0], bundle.class_names, k=1)[0][1]
        outcome = f"top-1: PyTorch “{top_t}”, NumPy “{top_n}”."
    st.badge(f"{'PASS' if ok else 'FAIL'}: max |PyTorch − NumPy| = {err:.2e} ({field}) "
             f"{'≤' if ok else '>'} {TOL:g}", icon=":material/check_circle:" if ok else ":material/cancel:",
             color="green" if ok else "red")
    st.caption(f"{len(run.errors)} fields compared · NumPy forward took {run.seconds:.2f} s · {outcome}")
    fig = figure_cache.built_figure(parity_figure, group_errors(run.errors), tol=TOL)
    widgets.show_figure(fig, key="ref_parity",
                        filename=f"parity_{ctx.image_key[:8]}")

    st.subheader("Explain this number")
    st.markdown("Pick one attention weight: it is recomputed from its parts — the content term scale·q·k, the DPB "
                "bias at the two members' offset, the padding mask, and the softmax over the query's row — "
                "once from the PyTorch trace and once from the NumPy reference.")
    block = widgets.block_picker(trace, "ref", default_block=1)
    L = block.layout
    token = ctx.query_token(block.stage)
    g0, m0 = L.locate(token)
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        head = _index("Head", block.heads, "ref_head", 0)
    follow = partial(_query_from_sliders, L, ctx.stride(block.stage))
    with c2:
        group = _index("Group", L.num_groups, "ref_group", g0, value=g0, on_change=follow)
    with c3:
        q = _index("Query member", L.group_tokens, "ref_query", m0, value=m0, on_change=follow)
    with c4:
        k = _index("Key member", L.group_tokens, "ref_key", 0)
    ex = explain.explain_attention(block, run.flat, head, group, q, k)
    st.markdown(f"Query member {q} sits at token {ex.query_pos}, key member {k} at token {ex.key_pos} "
                f"(padded grid{'; the key is padding' if ex.key_is_padding else ''}); their offset in member "
                f"units is {ex.offset}, row {ex.table_row} of the DPB table.")
    st.dataframe([{"step": s.what, "formula": s.formula, "PyTorch": s.pytorch, "NumPy": s.numpy,
                   "|difference|": s.diff} for s in ex.steps], hide_index=True, key="ref_explain",
                 column_config={c: st.column_config.NumberColumn(c, format=facts.NUMBER_COLUMN_FORMAT)
                                for c in ("PyTorch", "NumPy", "|difference|")})
