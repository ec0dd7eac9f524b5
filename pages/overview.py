"""Overview: the image, the model, its top-5 prediction and the 4-stage pipeline on this image."""

import streamlit as st

from pages.common import analysis, startup, texts, widgets

ctx = startup.page_context()
trace, bundle = ctx.trace, ctx.bundle
widgets.front_door()
widgets.page_header("overview", texts.overview_intro(trace, bundle.label))

left, right = st.columns([2, 3], gap="large")
with left:
    st.image(ctx.pixels, caption=f"Model input {ctx.prepared.hw[0]}×{ctx.prepared.hw[1]} (H × W) · {ctx.image_name}",
             width="stretch")
    with st.expander("Preprocessing steps", expanded=False):
        st.markdown("\n".join(f"1. {s}" for s in ctx.prepared.steps))
        st.caption(f"Original image: {ctx.decoded.size_text} px, {ctx.decoded.format}, mode {ctx.decoded.mode}.")
with right:
    st.subheader("Prediction")
    if not bundle.trained:
        st.warning("Random weights: this prediction is meaningless (the mechanism views are still real).",
                   icon=":material/warning:")
    widgets.prediction_caveat(ctx)
    rows = analysis.top_k(trace.logits[0], bundle.class_names, k=5)
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
    names = [bundle.label] + ([bundle.family] if bundle.family not in bundle.label else [])
    st.caption(" · ".join(names) + f" · weights: {bundle.weights}")

st.subheader("The pipeline on this image")
st.dataframe(analysis.stage_rows(trace), hide_index=True, key="overview_stages")
st.caption("G: group side; I: LDA interval; groups and padding of the stage's SDA and LDA blocks (padded "
           "tokens are masked keys); 'pairs vs full': query–key pairs the stage's blocks score relative to full "
           "self-attention on the same map (over 100 % when padding costs more than it saves).")
widgets.download_trace(ctx, key="overview_npz")
