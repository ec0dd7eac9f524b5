"""Widgets and display helpers the pages share: header + lesson, figure with downloads, pickers.

Widget keys are always prefixed by the page id (``attn_stage``, ``grp_qrow`` …). The query picker shows
the model input with the shared query token outlined: clicking it (``streamlit-image-coordinates``) or
moving the row/column sliders (keyboard) sets the query for every page.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import streamlit as st

from crossformer.trace import BlockTrace, Trace

from . import figure_cache, images, navigation, state, texts, traces
from .context import AppContext, default_query_reason, reset_query, set_query_pixel, set_query_token

PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


# ---- page frame ---------------------------------------------------------------------------------------
def _start_lesson() -> None:
    st.session_state["sb_lesson"] = True


def front_door() -> None:
    """The app's name, what it is in one sentence, and the way into the lesson (first page only)."""
    c1, c2 = st.columns([5, 1], vertical_alignment="center")
    with c1:
        st.markdown("**CrossFormer Explorer** — see what a windowed, cross-scale vision transformer computes: "
                    "every picture here is drawn from the numbers the model really used on this image.")
    with c2:
        if not st.session_state.get("sb_lesson"):
            st.button("Start the lesson", key="overview_lesson", type="primary", icon=":material/school:",
                      on_click=_start_lesson, help="One instruction per page, in order, with a link to the next.")


def page_header(page_id: str, intro: str | None = None) -> Any:
    """Title, the lesson-mode instruction (when on), then the teaching text.

    Returns a placeholder right below the title for the teaching text when it depends on widgets drawn
    later (``box.markdown(text)``); ``intro`` fills it at once.
    """
    spec = navigation.page(page_id)
    st.title(spec.title)
    if st.session_state.get("sb_lesson"):
        ids = [p.id for p in navigation.PAGES]
        step = ids.index(page_id) + 1
        with st.container(border=True):
            st.markdown(texts.lesson_text(step, len(ids), spec.lesson))
            nxt = navigation.next_page(page_id)
            if nxt is not None:
                st.page_link(nxt.path, label=f"Next: {nxt.title}", icon=":material/arrow_forward:")
            else:
                st.markdown(texts.lesson_recap())
    box = st.empty()
    if intro:
        box.markdown(intro)
    return box


def prediction_caveat(ctx: AppContext) -> None:
    """``st.warning`` when the model's classes cannot describe this image (the demo model on a photo)."""
    from crossformer.analysis.predictions import confidence

    from .findings import prediction_caveat as caveat
    if ctx.bundle.is_backbone:        # no classes, no prediction to doubt
        return
    c = confidence(ctx.trace.logits[0])
    text = caveat(ctx.bundle.is_demo, ctx.bundle.trained, ctx.expected, c)
    if text:
        st.warning(text, icon=":material/report:")


def notices(ctx: AppContext) -> None:
    """Errors from this run (bad upload, checkpoint that failed) above every page."""
    for msg in ctx.errors:
        st.error(msg, icon=":material/error:")


# ---- figures ----------------------------------------------------------------------------------------------
def _is_matplotlib(fig: Any) -> bool:
    from matplotlib.figure import Figure
    return isinstance(fig, Figure)


def _safe(fn: Callable[[], bytes]) -> Callable[[], bytes]:
    """A deferred download that never raises into Streamlit (a failed export downloads a short note)."""
    def run() -> bytes:
        try:
            return fn()
        except Exception as err:  # noqa: BLE001
            return f"Export failed: {type(err).__name__}: {err}".encode()
    return run


def download_buttons(fig: Any, key: str, filename: str) -> None:
    """PNG + SVG (when a static exporter is available) and HTML buttons; bytes are made only on click."""
    from viz import export

    with st.container(horizontal=True, gap="small"):
        static = _is_matplotlib(fig) or export.png_available()
        if static:
            st.download_button("PNG", _safe(partial(export.figure_to_png, fig)), f"{filename}.png", "image/png",
                               key=f"{key}_png", on_click="ignore", icon=":material/download:")
            st.download_button("SVG", _safe(partial(export.figure_to_svg, fig)), f"{filename}.svg",
                               "image/svg+xml", key=f"{key}_svg", on_click="ignore", icon=":material/download:")
        st.download_button("HTML", _safe(partial(export.figure_to_html, fig)), f"{filename}.html", "text/html",
                           key=f"{key}_html", on_click="ignore", icon=":material/download:",
                           help="Interactive figure that opens offline in any browser.")


def show_figure(fig: Any, key: str, filename: str, caption: str | None = None) -> None:
    """Display a plotly or matplotlib figure with its download buttons."""
    if _is_matplotlib(fig):
        st.pyplot(fig, clear_figure=False)
    else:
        st.plotly_chart(figure_cache.display_figure(fig), key=key, theme=None, config=PLOTLY_CONFIG)
    if caption:
        st.caption(caption)
    download_buttons(fig, key, filename)


def download_trace(ctx: AppContext, key: str) -> None:
    """The whole trace as ``.npz`` (arrays named as ``Trace.flat()``), built on click."""
    meta = {"input_pixels": ctx.pixels, "model_id": ctx.model_id, "image": ctx.image.name,
            "preprocessing": ctx.prep.describe()}
    st.download_button("Trace (.npz)", _safe(partial(traces.trace_npz, ctx.trace, meta)),
                       f"crossformer_trace_{ctx.image_key[:8]}.npz", "application/octet-stream", key=key,
                       on_click="ignore", icon=":material/download:",
                       help="Every array of the forward pass under the names of Trace.flat(), plus the input.")


def shared_scale(prefix: str, maxima: dict[str, float], what: str = "attention weight"
                 ) -> tuple[float | None, str]:
    """Maps meant to be compared share one colour scale unless the user asks for independent ones.

    Draws the toggle ``{prefix}_own_scales`` (off by default). ``maxima``: each map's own scale top (name →
    value, e.g. ``{"before": 0.18, "after": 0.2}``). Returns the shared top (``None`` when independent) and
    the caption sentence that states the scale(s).
    """
    from crossformer.analysis.facts import number

    own = st.toggle("Independent colour scales", key=f"{prefix}_own_scales",
                    help="Off: the maps share one scale, so equal colours mean equal values. On: each map uses "
                         "its own range (finer detail, but colours no longer compare).")
    if own or not maxima:
        return None, ("Each map on its own colour scale (colours do not compare): " +
                      "; ".join(f"{name} 0 – {number(v)}" for name, v in maxima.items()) + f" ({what}).")
    top = max(maxima.values())
    return top, f"Both maps on one colour scale, 0 – {number(top)} ({what}): equal colours mean equal values."


# ---- pickers -------------------------------------------------------------------------------------------
# Every picker goes through pages.common.state.choice / number: the value lives under its logical key
# (``attn_stage``), the widget under a key derived from its option labels (see pages/common/state.py).
def stage_picker(trace: Trace, prefix: str, label: str = "Stage", default: int | Callable[[], int] = 0) -> int:
    fmt = lambda i: f"Stage {i} · {trace.stage_hw[i][0]}×{trace.stage_hw[i][1]} tokens"  # noqa: E731
    return state.choice(label, range(len(trace.blocks)), f"{prefix}_stage", default=default, format_func=fmt)


def block_label(b: BlockTrace) -> str:
    L = b.layout
    kind = L.kind.upper() + (" (global)" if L.is_global else "")
    extra = f" I={L.interval_text}" if L.kind == "lda" else ""
    return f"{b.name} · {kind} G={L.group_size}{extra}"


def block_choice(blocks: tuple[BlockTrace, ...] | list[BlockTrace], key: str, default: int = 0,
                 widget: str = "selectbox", **kwargs: Any) -> int:
    """Index of a block among ``blocks`` (one stage's), kept when the new stage has that block."""
    return state.choice("Block", range(len(blocks)), key, default=min(default, len(blocks) - 1),
                        format_func=lambda j: block_label(blocks[j]), widget=widget, **kwargs)


def block_picker(trace: Trace, prefix: str, default_block: int = 0, default_stage: int = 0) -> BlockTrace:
    """Stage then block selectors → the chosen :class:`BlockTrace`."""
    c1, c2 = st.columns(2)
    with c1:
        stage = stage_picker(trace, prefix, default=default_stage)
    blocks = trace.blocks[stage]
    with c2:
        j = block_choice(blocks, f"{prefix}_block", default_block)
    return blocks[j]


def head_picker(block: BlockTrace, prefix: str, allow_mean: bool = True,
                default: int | None | Callable[[], int | None] = None) -> int | None:
    """Head selector; ``None`` = mean over heads."""
    options: list[int | None] = ([None] if allow_mean else []) + list(range(block.heads))
    return state.choice("Head", options, f"{prefix}_head", default=default,
                        format_func=lambda h: "mean of heads" if h is None else f"head {h}")


def informative_default_line(why: str | None, prefix: str, heads: dict[str, Any]) -> None:
    """One line saying why this view was chosen (``why``; ``None`` when the user chose another), and a
    button that resets the page's pickers (``heads``: logical key → value) and the query token to the
    most informative ones."""
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    with c1:
        if why:
            st.caption(f":material/auto_awesome: {why}")
        else:
            st.caption("Your own choice is shown; the button picks the most informative view again.")
    with c2:
        if st.button("Most informative", key=f"{prefix}_reset", icon=":material/restart_alt:",
                     help="Reset block, head and query token to the ones this image's numbers point to."):
            for key, value in heads.items():
                state.set_choice(key, value)
            reset_query()
            st.rerun()


def _on_click(prefix: str, hw: tuple[int, int]) -> None:
    """Click on the picker image → shared query pixel (display coordinates scaled to the model input)."""
    v = st.session_state.get(f"{prefix}_click")
    if not v or "x" not in v:
        return
    H, W = hw
    y = float(v["y"]) * H / max(float(v.get("height") or H), 1.0)
    x = float(v["x"]) * W / max(float(v.get("width") or W), 1.0)
    set_query_pixel(min(max(y, 0), H - 1), min(max(x, 0), W - 1))


def _on_slider(prefix: str, stride: int) -> None:
    row = st.session_state.get(f"{prefix}_qrow", 0)
    col = st.session_state.get(f"{prefix}_qcol", 0)
    set_query_token((int(row), int(col)), stride)


def query_picker(ctx: AppContext, stage: int, prefix: str, caption: str | None = None) -> tuple[int, int]:
    """Clickable model input with the query token of ``stage`` outlined, plus row/column sliders.

    Returns the query token ``(h, w)`` of ``stage`` (shared across pages as a pixel of the input).
    """
    from streamlit_image_coordinates import streamlit_image_coordinates

    stride = ctx.stride(stage)
    hw = ctx.trace.stage_hw[stage]
    token = ctx.query_token(stage)
    scale = images.display_scale(ctx.prepared.hw, target=480)
    shown = images.draw_box(ctx.pixels, images.token_box(token, stride, ctx.prepared.hw), scale=scale)
    streamlit_image_coordinates(shown, key=f"{prefix}_click", cursor="crosshair", width="stretch",
                                image_format="JPEG", jpeg_quality=90,   # 4 ms and ~¼ of a raw PNG's bytes
                                on_click=partial(_on_click, prefix, ctx.prepared.hw))
    st.caption(caption or f"Click the image to pick the query token (stage {stage}: {stride}×{stride} px "
                          f"per token), or use the sliders.")
    why = default_query_reason(ctx)
    if why:
        st.caption(why)
    c1, c2 = st.columns(2)
    for col, axis, n, value in ((c1, "row", hw[0], token[0]), (c2, "col", hw[1], token[1])):
        key = f"{prefix}_q{axis}"
        with col:
            if n > 1:
                state.number(f"Query {'row' if axis == 'row' else 'column'} (token)", 0, n - 1, key, value=value,
                             on_change=partial(_on_slider, prefix, stride))
            else:
                st.session_state.pop(key, None)
                st.caption(f"Query {axis}: 0 (the map has one {axis})")
    return token
