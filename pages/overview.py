"""Overview: the image, the model, its top-5 prediction (a backbone: its feature pyramid) and the 4-stage
pipeline on this image."""

import streamlit as st

from crossformer.analysis.cost import stage_rows
from crossformer.analysis.predictions import top_k
from pages.common import dense_prep, figure_cache, startup, texts, traces, widgets
from viz.pyramid_figures import pyramid_figure

ctx = startup.page_context()
trace, bundle = ctx.trace, ctx.bundle
widgets.front_door()
widgets.page_header("overview", texts.overview_intro(trace, bundle.label))


def prediction() -> None:
    """A classifier's top-5 and what it is worth."""
    st.subheader("Prediction")
    if not bundle.trained:
        st.warning("Random weights: this prediction is meaningless (the mechanism views are still real).",
                   icon=":material/warning:")
    widgets.prediction_caveat(ctx)
    rows = top_k(trace.logits[0], bundle.class_names, k=5)
    st.dataframe([{"rank": r + 1, "class": name, "index": i, "probability": p}
                  for r, (i, name, p) in enumerate(rows)], hide_index=True, key="overview_top5",
                 column_config={"probability": st.column_config.ProgressColumn(
                     "probability", min_value=0.0, max_value=1.0, format="%.3f")})
    if ctx.expected is not None:
        st.caption("A *Navon figure*: a large **global** shape drawn with many small **local** shapes. The class "
                   "names both (\"triangle of squares\"): the model needs fine detail for the small shapes (small "
                   "kernels of the cross-scale embedding layer, CEL; SDA windows) and the whole layout for the large "
                   "one (large kernels, LDA groups).")
        hit = rows[0][1] == ctx.expected
        st.markdown(f"True class of this Navon figure: **{ctx.expected}** — "
                    + ("top-1 is correct." if hit else "top-1 differs."))


def real_hw() -> tuple[int, int]:
    """The model input without its padding ``(H, W)``."""
    (H, W), (b, r) = ctx.prepared.hw, ctx.prepared.padding
    return H - b, W - r


def pyramid_summary() -> list:
    """A backbone's output in words and a table: the four stage maps a detector's neck reads."""
    st.subheader("Output: the feature pyramid")
    task = {"mmdet": "a detector's neck (FPN) and heads", "mmseg": "a segmentor's decode head"}.get(
        bundle.dense_task, "a dense-prediction head")
    st.markdown(f"A detection/segmentation **backbone** has no classes: its output is the four stage maps that "
                f"{task} read, one per stride. Input: {dense_prep.padding_text(ctx.prepared)}.")
    if not bundle.trained:
        st.warning("Random weights: the features are meaningless (the mechanism views are still real).",
                   icon=":material/warning:")
    views = traces.pyramid(ctx.model_id, ctx.image_key, ctx.prep_key, real_hw(), _trace=trace)
    st.dataframe([{"stage": v.stage, "map (C × H × W)": f"{len(v.channel_energy)}×{v.hw[0]}×{v.hw[1]}",
                   "stride (px)": v.stride, "real tokens": f"{v.real_hw[0]}×{v.real_hw[1]}",
                   "PC1–3 variance": ", ".join(f"{s:.0%}" for s in v.pca.explained),
                   "mean energy": v.mean_energy} for v in views],
                 hide_index=True, key="overview_pyramid_table",
                 column_config={"mean energy": st.column_config.NumberColumn(format="%.3g")})
    return views


left, right = st.columns([2, 3], gap="large")
with left:
    st.image(ctx.pixels, caption=f"Model input {ctx.prepared.hw[0]}×{ctx.prepared.hw[1]} (H × W) · {ctx.image.name}",
             width="stretch")
    with st.expander("Preprocessing steps", expanded=False):
        st.markdown("\n".join(f"1. {s}" for s in ctx.prepared.steps))
        st.caption(f"Original image: {ctx.image.decoded.size_text} px, {ctx.image.decoded.format}, mode {ctx.image.decoded.mode}.")
with right:
    views = pyramid_summary() if bundle.is_backbone else prediction()
    names = [bundle.label] + ([bundle.family] if bundle.family not in bundle.label else [])
    st.caption(" · ".join(names) + f" · weights: {bundle.weights}")

if views:
    fig = figure_cache.built_figure(pyramid_figure, views, real_hw(),
                                    title=f"Feature pyramid of {bundle.label} on this image")
    widgets.show_figure(fig, key="overview_pyramid", filename=f"pyramid_{ctx.image_key[:8]}",
                        caption="PCA→RGB: the three directions in which a stage's features vary most, over its "
                                "real (unpadded) tokens, shown as red, green and blue; regions of one colour "
                                "have similar features. Grey: tokens that see only the input padding. Channel "
                                "energy: how much each channel carries on this image (log scale).")

st.subheader("The pipeline on this image")
st.dataframe(stage_rows(trace), hide_index=True, key="overview_stages")
st.caption("G: group side; I: LDA interval; groups and padding of the stage's SDA and LDA blocks (padded "
           "tokens are masked keys); 'pairs vs full': query–key pairs the stage's blocks score relative to full "
           "self-attention on the same map (over 100 % when padding costs more than it saves).")
widgets.download_trace(ctx, key="overview_npz")
