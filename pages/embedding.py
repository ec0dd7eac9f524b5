"""Cross-scale embedding: what the CEL's (and the merges') kernels see and how strongly they respond."""

import streamlit as st

from pages.common import figure_cache, startup, state, texts, widgets
from viz.embedding_figures import kernel_energy_figure, kernel_footprints_figure, top_channels_figure

ctx = startup.page_context()
trace = ctx.trace
n_merges = len(trace.merges)


def _layer_name(i: int) -> str:
    return ("Cross-scale embedding (image → stage 0)" if i == 0
            else f"Cross-scale merge after stage {i - 1} (stage {i - 1} → stage {i})")


intro = widgets.page_header("emb")
layer = state.choice("Layer", range(1 + n_merges), "emb_layer", format_func=_layer_name)
emb = trace.embedding if layer == 0 else trace.merges[layer - 1]
px_in = emb.input_stride                                   # image pixels per position the layer reads
intro.markdown(texts.embedding_intro(emb, "cross-scale embedding layer (CEL)" if layer == 0 else "cross-scale merge",
                                     px_in))

left, right = st.columns([1, 2], gap="large")
with left:
    token = widgets.query_picker(ctx, stage=layer, prefix="emb")
with right:
    fig = figure_cache.built_figure(
        kernel_footprints_figure, ctx.pixels, emb.kernels, emb.stride, emb.paddings, patch=token, scale=px_in,
        input_hw=ctx.prepared.hw, title=f"What each kernel reads for token ({token[0]}, {token[1]})")
    widgets.show_figure(fig, key="emb_footprints", filename=f"footprints_layer{layer}",
                        caption=f"Token ({token[0]}, {token[1]}) of the {emb.output_hw[0]}×{emb.output_hw[1]} "
                                f"output: the squares are the input each kernel reads for it.")

st.subheader("Response of each kernel")
fig = figure_cache.built_figure(kernel_energy_figure, emb, ctx.pixels, input_stride=px_in)
widgets.show_figure(fig, key="emb_energy", filename=f"kernel_energy_layer{layer}")

st.subheader("Most active channels of one kernel")
k = state.choice("Kernel", range(len(emb.kernels)), "emb_kernel", widget="radio", horizontal=True,
                 format_func=lambda i: f"{emb.kernels[i]}×{emb.kernels[i]} ({emb.channels[i]} ch)")
fig = figure_cache.built_figure(top_channels_figure, emb, k, k=8)
widgets.show_figure(fig, key="emb_channels", filename=f"top_channels_layer{layer}_k{k}",
                    caption=f"“ch c (#n)”: channel c of the {emb.kernels[k]}×{emb.kernels[k]} kernel's own "
                            f"{emb.channels[k]} channels, which is channel n of the token's {sum(emb.channels)} "
                            "concatenated channels; rms = its root-mean-square activation over the map.")
