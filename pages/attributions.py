"""Attributions: which pixels the prediction rests on (integrated gradients, Grad-CAM, occlusion); for a
backbone, which pixels a chosen feature rests on (the feature norm of one stage, over its map or a region)."""

import logging
import time

import streamlit as st

from crossformer import attribution, precision
from crossformer.analysis.predictions import top_k
from crossformer.feature_score import FeatureScore
from pages.common import estimates, figure_cache, heavy, heavy_runs, startup, state, texts, traces, widgets
from viz.attribution_figures import attribution_overlay_figure

log = logging.getLogger(__name__)
METHODS = {"ig": "Integrated gradients", "gradcam": "Grad-CAM", "occlusion": "Occlusion"}

ctx = startup.page_context()
trace, bundle = ctx.trace, ctx.bundle
intro = widgets.page_header("attr")
method = state.choice("Method", METHODS, "attr_method", default="ig", format_func=METHODS.get, widget="radio",
                      horizontal=True)
intro.markdown(texts.attributions_intro(method))
backbone = bundle.is_backbone
if not bundle.trained:
    st.warning("Random weights: attributions explain a meaningless " + ("feature." if backbone else "prediction."),
               icon=":material/warning:")

widgets.prediction_caveat(ctx)
x_hw = tuple(ctx.pixels.shape[:2])
engine = precision.resolve("auto", bundle.device)
flops = estimates.forward_flops(bundle.cfg, x_hw)
calib = heavy_runs.calibration(ctx.model_id, engine, _bundle=bundle)        # None while being measured
store = heavy_runs.heavy_store()
IG_TARGET_S = 20.0     # the default step count keeps integrated gradients under this (estimated)


def default_ig_steps() -> int:
    """The most steps (of 32, 24, 16, 12, 8) whose estimate stays under ``IG_TARGET_S``, else 4."""
    batch = attribution.batch_for(x_hw)
    for n in (32, 24, 16, 12, 8):
        if estimates.estimate(estimates.ig_cost(n, min(n, batch)), flops, calib).seconds <= IG_TARGET_S:
            return n
    return 4


REGIONS = {"whole": "the whole map (real tokens)", "query": "3×3 tokens around the shared query"}


def feature_choice() -> FeatureScore:
    """A backbone has no class: the scalar explained is a stage's feature norm over a region of its map."""
    n = len(trace.stage_hw)
    stage = state.choice("Feature of stage", range(n), "attr_feat_stage", default=n - 1,
                         format_func=lambda i: f"Stage {i} ({trace.stage_hw[i][0]}×{trace.stage_hw[i][1]} tokens)")
    region = state.choice("Summed over", list(REGIONS), "attr_feat_region", default="whole",
                          format_func=REGIONS.get, widget="radio", horizontal=True,
                          help="The shared query is picked on the Attention page (click the image).")
    (H, W), s = trace.stage_hw[stage], ctx.stride(stage)
    (Hp, Wp), (b, r) = ctx.prepared.hw, ctx.prepared.padding
    real = (min(H, -(-(Hp - b) // s)), min(W, -(-(Wp - r) // s)))        # tokens that see real pixels
    if region == "query":
        qh, qw = ctx.query_token(stage)
        box = (max(0, qh - 1), max(0, qw - 1), min(H, qh + 2), min(W, qw + 2))
    else:
        box = (0, 0, *real)
    return FeatureScore(int(stage), box)


top = top_k(trace.logits[0], bundle.class_names, k=5) if not backbone else []
probs = {i: p for i, _, p in top}
c1, c2 = st.columns(2)
with c1:
    if backbone:
        feature = feature_choice()
        target = 0
    else:
        feature = None
        target = state.choice("Class to explain", [i for i, _, _ in top], "attr_target",
                              format_func=lambda i: f"{bundle.class_names[i]} ({probs[i]:.1%})")
with c2:
    if method == "ig":
        param = state.number("Steps along the path", 4, 64, "attr_steps", default=default_ig_steps, step=4,
                             help="Fewer steps are faster (the default keeps the estimate under 20 s); the "
                                  "convergence delta under the map says how good the approximation is.")
    elif method == "gradcam":
        n_stages = len(trace.stage_hw)
        param = state.choice("Stage", range(n_stages), "attr_stage", default=n_stages - 1,
                             format_func=lambda i: f"Stage {i} ({trace.stage_hw[i][0]}×{trace.stage_hw[i][1]} "
                                                   "tokens)")
    else:
        param = state.choice("Occluding square (px)", [16, 32, 56], "attr_window", default=32,
                             widget="select_slider",
                             help="Squares tile the image without overlap: one forward pass per square.")



def map_cost(m: str, p: int) -> estimates.Cost:
    """What computing method ``m`` with parameter ``p`` runs on this input (nothing if already stored)."""
    if heavy_runs.attribution_key(m, ctx.model_id, ctx.image_key, ctx.prep_key, int(target), p, feature) in store:
        return estimates.Cost(0.0, 0, 0)
    if m == "ig":
        return estimates.ig_cost(p, min(p, attribution.batch_for(x_hw)))
    if m == "gradcam":
        return estimates.gradcam_cost()
    return estimates.occlusion_cost(attribution.occlusion_total(x_hw, p, p), attribution.batch_for(x_hw))


def attribution_stride(m: str, p: int) -> int:
    """Input pixels per cell of the map: Grad-CAM maps are stage ``p`` token maps, the others per pixel."""
    return ctx.stride(p) if m == "gradcam" else 1


if backbone:
    st.info(f"This model is a backbone (no classes), so the attribution explains one number of its output: "
            f"{feature.describe()} (‖f‖: the L2 norm of a token's {trace.stage_map(feature.stage).shape[1]}-channel "
            "feature vector). Positive: pixels that make that feature stronger.", icon=":material/info:")
request = heavy_runs.attribution_key(method, ctx.model_id, ctx.image_key, ctx.prep_key, int(target), int(param),
                                     feature)
button_name = METHODS[method] if method == "gradcam" else METHODS[method].lower()      # "Compute Grad-CAM"
res, _ = heavy.action(
    "attr_run", f"Compute {button_name}", request, estimates.estimate(map_cost(method, int(param)), flops, calib),
    lambda progress: heavy_runs.attribution(method, bundle, ctx.pixels, int(target), int(param), progress=progress,
                                            padding=ctx.prepared.padding, feature=feature),
    store, progress_label=METHODS[method])
if res is not None:
    name = f"stage-{feature.stage} feature norm" if backbone else bundle.class_names[int(target)]
    fig = figure_cache.built_figure(
        attribution_overlay_figure, ctx.pixels, res.values, title=f"{METHODS[method]} for “{name}”",
        signed=res.signed, colorbar_title="attribution" if res.signed else "relevance", side_by_side=True,
        clip_percentile=99.5 if method == "ig" else None, stride=attribution_stride(method, int(param)))
    widgets.show_figure(fig, key=f"attr_fig_{method}", filename=f"{method}_{ctx.image_key[:8]}_class{target}",
                        caption=f"Computed in {res.seconds:.2f} s. {res.note}")
else:
    st.info("Press the button to compute; results are kept for every session, so coming back to this class "
            "and method is instant.", icon=":material/hourglass_empty:")

# ---- faithfulness: deletion / insertion --------------------------------------------------------------
def faithfulness_section() -> None:
    """Deletion / insertion curves of the three maps (a classifier's: they follow a class probability)."""
    st.subheader("Is the attribution faithful?")
    st.markdown("A map is faithful when the patches it ranks highest really carry the prediction. **Deletion** "
                "replaces the image's patches with a blurred copy, most attributed first: the probability of the "
                "class should fall fast (low area under the curve). **Insertion** starts from the blurred image and "
                "puts the patches back in the same order: it should rise fast (high area). A random patch order is "
                "the reference to beat.")
    FAITH_PARAMS = {"ig": default_ig_steps(), "gradcam": len(trace.stage_hw) - 1, "occlusion": 32}
    FAITH_STEPS = 32
    faith_patch = state.choice("Patch size (px)", [16, 32], "attr_faith_patch", default=16, widget="select_slider",
                               help="Side of the squares removed / inserted one at a time.")
    faith_key = ("faith", ctx.model_id, ctx.image_key, ctx.prep_key, int(target), int(faith_patch))
    gh, gw = -(-x_hw[0] // faith_patch), -(-x_hw[1] // faith_patch)
    faith_steps = min(gh * gw, FAITH_STEPS)
    curve_images = 2 + 4 * (faith_steps - 1)
    faith_cost = estimates.add(*(map_cost(m, p) for m, p in FAITH_PARAMS.items()),
                               estimates.forward_cost(len(FAITH_PARAMS) * curve_images, 16), unit="images")


    def compare_methods(progress: heavy.Progress) -> tuple[dict, float]:
        """The three maps (stored ones reused) and their deletion / insertion curves; ``progress`` counts
        every image run."""
        from crossformer.faithfulness import deletion_insertion

        t0, offset, results = time.perf_counter(), 0, {}
        for m, p in FAITH_PARAMS.items():
            key = heavy_runs.attribution_key(m, ctx.model_id, ctx.image_key, ctx.prep_key, int(target), int(p))
            amap = store.get(key)
            if amap is None:
                n = map_cost(m, p).steps

                def tick_map(done: int, total: int, base: int = offset) -> None:
                    progress(base + done)

                amap = store.put(key, heavy_runs.attribution(m, bundle, ctx.pixels, int(target), int(p),
                                                             progress=tick_map))
                offset += n

            def tick(done: int, total: int, base: int = offset) -> None:
                progress(base + done)

            x_in = traces.model_input(bundle, ctx.pixels)
            with bundle.lock:
                results[METHODS[m]] = deletion_insertion(bundle.model, x_in, amap.values, int(target),
                                                         patch=int(faith_patch), steps=faith_steps, progress=tick)
            offset += curve_images
        return results, time.perf_counter() - t0


    faith, _ = heavy.action("attr_faith_run", "Compare methods (deletion / insertion)", faith_key,
                            estimates.estimate(faith_cost, flops, calib), compare_methods, store, primary=False,
                            progress_label="Maps and deletion / insertion curves")
    if faith is not None:
        from crossformer.faithfulness import faithfulness_summary
        from viz.faithfulness_figures import faithfulness_figure

        results, seconds = faith
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
        st.caption("Press the button to compute the three maps and their deletion / insertion curves "
                   f"({curve_images} images per method).")


st.divider()
if backbone:
    st.caption("Deletion / insertion curves follow a class probability; a backbone has none, so they are left "
               "out here.")
else:
    faithfulness_section()
