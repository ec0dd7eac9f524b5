"""Attributions: which pixels the prediction rests on (integrated gradients, Grad-CAM, occlusion)."""

import logging
import time

import streamlit as st

from pages.common import analysis, loaders, startup, state, texts, widgets
from viz.attribution_figures import attribution_overlay_figure

log = logging.getLogger(__name__)
METHODS = {"ig": "Integrated gradients", "gradcam": "Grad-CAM", "occlusion": "Occlusion"}

ctx = startup.page_context()
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

# ---- faithfulness: deletion / insertion --------------------------------------------------------------
st.divider()
st.subheader("Is the attribution faithful?")
st.markdown("A map is faithful when the patches it ranks highest really carry the prediction. **Deletion** "
            "replaces the image's patches with a blurred copy, most attributed first: the probability of the "
            "class should fall fast (low area under the curve). **Insertion** starts from the blurred image and "
            "puts the patches back in the same order: it should rise fast (high area). A random patch order is "
            "the reference to beat.")
FAITH_PARAMS = {"ig": 32, "gradcam": len(trace.stage_hw) - 1, "occlusion": 32}
FAITH_STEPS = 32
faith_patch = state.choice("Patch size (px)", [16, 32], "attr_faith_patch", default=16, widget="select_slider",
                           help="Side of the squares removed / inserted one at a time.")
faith_key = (ctx.model_id, ctx.image_key, ctx.prep_key, int(target), int(faith_patch))
faith_store: dict = st.session_state.setdefault("attr_faith_results", {})
if st.button("Compare methods (deletion / insertion)", key="attr_faith_run", icon=":material/balance:"):
    from crossformer.faithfulness import deletion_insertion

    bar = st.progress(0.0, text="Computing the attribution maps…")
    try:
        t0 = time.perf_counter()
        results = {}
        for i, (m, p) in enumerate(FAITH_PARAMS.items()):
            bar.progress(i / len(FAITH_PARAMS), text=f"{METHODS[m]}: map…")
            amap = loaders.attribution(m, ctx.model_id, ctx.image_key, ctx.prep_key, int(target), int(p),
                                       _bundle=bundle, _pixels=ctx.pixels)

            def tick(done: int, total: int, i: int = i, m: str = m) -> None:
                bar.progress(min(1.0, (i + done / max(total, 1)) / len(FAITH_PARAMS)),
                             text=f"{METHODS[m]}: deletion / insertion, {done}/{total} images")

            x_in = loaders.model_input(bundle, ctx.pixels)
            with bundle.lock:
                gh, gw = -(-x_in.shape[-2] // faith_patch), -(-x_in.shape[-1] // faith_patch)
                results[METHODS[m]] = deletion_insertion(bundle.model, x_in, amap.values, int(target),
                                                         patch=int(faith_patch), steps=min(gh * gw, FAITH_STEPS),
                                                         progress=tick)
        faith_store[faith_key] = (results, time.perf_counter() - t0)
    except Exception as err:  # noqa: BLE001 — shown, the app keeps working
        log.exception("faithfulness failed")
        st.error(f"Deletion / insertion failed: {type(err).__name__}: {err}")
    finally:
        bar.empty()

if faith_key in faith_store:
    from crossformer.faithfulness import faithfulness_summary
    from viz.faithfulness_figures import faithfulness_figure

    results, seconds = faith_store[faith_key]
    first = next(iter(results.values()))
    name = bundle.class_names[int(target)]
    fig = faithfulness_figure(results, title=f"Deletion and insertion for “{name}”")
    widgets.show_figure(fig, key="attr_faith", filename=f"faithfulness_{ctx.image_key[:8]}_class{target}",
                        caption=f"Baseline: {first['baseline']} (Gaussian blur of the input), patch {first['patch']} "
                                f"px ({first['n_patches']} patches, {first['steps']} steps), precision "
                                f"{first['precision']}; maps: integrated gradients {FAITH_PARAMS['ig']} steps, "
                                f"Grad-CAM stage {FAITH_PARAMS['gradcam']}, occlusion {FAITH_PARAMS['occlusion']} px "
                                f"squares. Computed in {seconds:.1f} s.")
    st.markdown(faithfulness_summary(results)[1])
else:
    st.caption("Press the button to compute the three maps and their deletion / insertion curves (about "
               f"{4 * FAITH_STEPS} forward passes per method).")
