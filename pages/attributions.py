"""Attributions: which pixels the prediction rests on (integrated gradients, Grad-CAM, occlusion)."""

import logging

import streamlit as st

from pages.common import analysis, context, loaders, state, texts, widgets
from viz.attribution_figures import attribution_overlay_figure

log = logging.getLogger(__name__)
METHODS = {"ig": "Integrated gradients", "gradcam": "Grad-CAM", "occlusion": "Occlusion"}

ctx = context.get()
trace, bundle = ctx.trace, ctx.bundle
intro = widgets.page_header("attr")
method = state.choice("Method", METHODS, "attr_method", default="ig", format_func=METHODS.get, widget="radio",
                      horizontal=True)
intro.markdown(texts.attributions_intro(method))
if not bundle.trained:
    st.warning("Random weights: attributions explain a meaningless prediction.", icon=":material/warning:")

widgets.prediction_caveat(ctx)
top = analysis.top_k(trace.logits[0], bundle.class_names, k=5)
probs = {i: p for i, _, p in top}
c1, c2 = st.columns(2)
with c1:
    target = state.choice("Class to explain", [i for i, _, _ in top], "attr_target",
                          format_func=lambda i: f"{bundle.class_names[i]} ({probs[i]:.1%})")
with c2:
    if method == "ig":
        param = state.number("Steps along the path", 8, 64, "attr_steps", default=32, step=8)
    elif method == "gradcam":
        n_stages = len(trace.stage_hw)
        param = state.choice("Stage", range(n_stages), "attr_stage", default=n_stages - 1,
                             format_func=lambda i: f"Stage {i} ({trace.stage_hw[i][0]}×{trace.stage_hw[i][1]} "
                                                   "tokens)")
    else:
        param = state.choice("Occluding square (px)", [16, 32, 56], "attr_window", default=32,
                             widget="select_slider",
                             help="Squares tile the image without overlap: one forward pass per square.")

request = (method, ctx.model_id, ctx.image_key, ctx.prep_key, int(target), int(param))
done: set = st.session_state.setdefault("attr_done", set())
if st.button(f"Compute {METHODS[method].lower()}", key="attr_run", type="primary", icon=":material/play_arrow:"):
    done.add(request)

if request in done:
    try:
        with st.spinner(f"Computing {METHODS[method].lower()}…"):
            res = loaders.attribution(method, ctx.model_id, ctx.image_key, ctx.prep_key, int(target), int(param),
                                      _bundle=bundle, _pixels=ctx.pixels)
    except Exception as err:  # noqa: BLE001 — shown, the app keeps working
        log.exception("attribution failed")
        done.discard(request)
        st.error(f"{METHODS[method]} failed: {type(err).__name__}: {err}")
    else:
        name = bundle.class_names[int(target)]
        fig = widgets.cached_figure(ctx, "attr", request[:1] + request[4:], lambda: attribution_overlay_figure(
            ctx.pixels, res.values, title=f"{METHODS[method]} for “{name}”", signed=res.signed,
            colorbar_title="attribution" if res.signed else "relevance", side_by_side=True,
            clip_percentile=99.5 if method == "ig" else None))
        widgets.show_figure(fig, key=f"attr_fig_{method}", filename=f"{method}_{ctx.image_key[:8]}_class{target}",
                            caption=f"Computed in {res.seconds:.2f} s. {res.note}")
else:
    st.info("Press the button to compute (a few seconds on a CPU for the demo model); results are cached, so "
            "coming back to this class and method is instant.", icon=":material/hourglass_empty:")
