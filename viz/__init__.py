"""Figure builders for every CrossFormer mechanism, drawn from the model's own ``Trace``.

Pure functions: arrays and scalars in (from a :class:`crossformer.trace.Trace`), a
``plotly.graph_objects.Figure`` out; no pyplot, no display, no Streamlit. Usable in the app, a notebook or
a script (``viz.export`` turns any figure into PNG/SVG/HTML bytes).

    import viz
    fig = viz.group_partition_figure(image, trace.block(0, 1).layout, stage=0, selected_group=3)
    png = viz.figure_to_png(fig)

Names are loaded lazily: ``import viz`` is cheap and does not import torch; only the captum functions
(``integrated_gradients``, ``grad_cam``, ``occlusion``) pull torch in.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    # geometry_figures
    "group_partition_figure": "geometry_figures", "sda_lda_figure": "geometry_figures",
    # embedding_figures
    "kernel_energy_figure": "embedding_figures", "top_channels_figure": "embedding_figures",
    "kernel_footprints_figure": "embedding_figures",
    # dpb_figures
    "dpb_surface_figure": "dpb_figures", "dpb_heatmap_figure": "dpb_figures",
    "bias_matrix_figure": "dpb_figures", "dpb_sizes_figure": "dpb_figures",
    # attention_figures
    "query_attention_figure": "attention_figures", "head_grid_figure": "attention_figures",
    "group_matrix_figure": "attention_figures", "bias_content_split_figure": "attention_figures",
    "rollout_figure": "attention_figures", "trace_rollout_figure": "attention_figures",
    # attribution (torch + captum) and its figures
    "integrated_gradients": "attribution", "grad_cam": "attribution", "occlusion": "attribution",
    "attribution_overlay_figure": "attribution_figures",
    # diagnostics
    "diagnostics_figure": "diagnostics_figures",
    # parity
    "parity_figure": "parity_figures",
    # export
    "figure_to_png": "export", "figure_to_svg": "export", "figure_to_html": "export",
    "export_figure": "export", "png_available": "export", "ExportUnavailable": "export",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'viz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
