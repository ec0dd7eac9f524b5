"""Dataset statistics: per-head attention numbers over many images, from a CSV of the CLI or the samples."""

import streamlit as st

from crossformer.analysis.dataset import summary_sentences, total_heads
from pages.common import figure_cache, image_loaders, startup, stats_loaders, widgets
from viz.stats_figures import stats_summary_figure

MAX_CSV_MB = 64                  # about 500,000 rows: 2,000+ images of CrossFormer-S
MAX_ROWS = 2_000_000
SAMPLE_SIZE = 224

ctx = startup.page_context()
widgets.page_header(
    "stats",
    "The other pages show one image. Here the same diagnostics — attention **entropy**, mean attention "
    "**distance** in pixels, the attention mass the **DPB** moves, each block's **output RMS** — are averaged "
    "over many images, per block and head (the ViT paper's mean-attention-distance plot; CrossFormer++'s "
    "amplitude curve that motivated its cooling layers). Make a CSV with `python -m crossformer.stats "
    "--checkpoint CKPT --images DIR --out stats.csv` and open it here, or compute it for the shipped samples.")


def _use_samples() -> None:
    st.session_state["stats_source"] = "samples"


c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
with c1:
    upload = st.file_uploader(f"Statistics CSV (from python -m crossformer.stats, ≤ {MAX_CSV_MB} MB)", type=["csv"],
                              key="stats_upload", max_upload_size=MAX_CSV_MB)   # the limit Streamlit shows too
with c2:
    st.button(f"Compute for the bundled samples ({ctx.bundle.label})", key="stats_compute",
              icon=":material/play_arrow:", on_click=_use_samples,
              help=f"Runs head_stats on the shipped sample images at {SAMPLE_SIZE}×{SAMPLE_SIZE} with the current model.")

if upload is not None:
    data = upload.getvalue()
    key = image_loaders.digest(data)
    if st.session_state.get("stats_upload_seen") != key:       # a new file wins over the samples
        st.session_state["stats_upload_seen"] = key
        st.session_state["stats_source"] = "upload"
source = st.session_state.get("stats_source")

result = None
if source == "upload" and upload is not None:
    if len(data) > MAX_CSV_MB * 2**20:
        st.error(f"{upload.name} is {len(data) / 2**20:.0f} MB; this page opens statistics CSVs up to {MAX_CSV_MB} MB "
                 "(summarise a subset of the images, or use the CLI's --summary).", icon=":material/error:")
    else:
        with st.spinner("Reading the CSV…"):
            result = stats_loaders.stats_from_csv(key, upload.name, data, MAX_ROWS)
elif source == "samples":
    with st.spinner("Running head_stats on the samples…"):
        result = stats_loaders.stats_for_samples(ctx.model_id, SAMPLE_SIZE, ctx.bundle)

if result is None:
    st.info("Open a CSV or press the button to see the summary.", icon=":material/info:")
elif result.error:
    st.error(result.error, icon=":material/error:")
else:
    s = result.summary
    st.caption(f"Source: {result.source} · {s.n_images} images · {len(s.blocks)} blocks · {total_heads(s)} heads"
               + (f" · computed in {result.seconds:.1f} s" if source == "samples" else ""))
    for line in summary_sentences(s):
        st.markdown(f"- {line}")
    if source == "samples" and not ctx.bundle.trained:
        st.warning("Random weights: these statistics describe an untrained model.", icon=":material/warning:")
    fig = figure_cache.built_figure(stats_summary_figure, s)
    widgets.show_figure(fig, key="stats_summary", filename="attention_statistics",
                        caption="Each dot is one head, its bar the standard deviation over the images; heads of a "
                                "block are spread left to right. A head whose entropy sits on the grey mark attends "
                                "uniformly. The same figure as `python -m crossformer.stats … --summary s.html`.")
