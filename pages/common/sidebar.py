"""The shared sidebar: input A's image, model and preprocessing, and lesson mode → one :class:`AppContext`.

Rendered by ``app.py`` on every run before the page, so its widgets keep their values across pages. The image
and model sections (:mod:`pages.common.image_section`, :mod:`pages.common.model_section`) and
:func:`prep_section` serve B of the A/B compare too (:mod:`pages.common.compare`);
:func:`~pages.common.inputs.build_input` makes A as it makes B. Every failure (unreadable upload, bad
checkpoint) becomes a message and a fallback (the default image, the demo model); the app keeps working.
"""

from __future__ import annotations

import logging

import streamlit as st

from . import prep_policy, state
from .context import AppContext
from .image_section import default_image, image_section
from .images import Preprocessing
from .inputs import Side, build_input
from .model_section import model_options, model_section
from .models import DEMO, ModelBundle
from .prep_policy import PREP_LABELS

log = logging.getLogger(__name__)

#: A's widgets: keys ``sb_*``.
A = Side("sb")
SIZE_HELP = ("The long side follows the image's aspect ratio (cropped to at most 3:1). The model re-runs when you "
             "press Apply.")


# ---- preprocessing --------------------------------------------------------------------------------
def prep_section(side: Side, default_mode: str, labels: dict[str, str] = PREP_LABELS, max_size: int = 512,
                 default_size: int | None = None, official_crop: int | None = 224) -> Preprocessing:
    """Widgets for the preprocessing (``labels``: the modes offered, :func:`prep_policy.labels`; a radio when
    there are several) → the one chosen. ``official_crop``: the official transform's fixed crop (A), or
    ``None`` for a crop size chosen like a shorter side (B: the same model at another input size)."""
    mode = next(iter(labels))
    if len(labels) > 1:
        mode = state.choice(side.says("Preprocessing"), labels, side.key("prep"), default=default_mode,
                            format_func=labels.get, widget="radio",
                            help="The official transform is what the ImageNet models were evaluated with. "
                            "Keeping the aspect ratio shows the padding of groups on non-square token maps: "
                            "the model runs at any size ≥ 32 pixels.")
    if mode == "official" and official_crop is not None:
        return Preprocessing("official", official_crop)
    default = prep_policy.default_size(mode) if default_size is None else default_size
    label = "Crop size (px)" if mode == "official" else "Shorter side (px)"
    _size_control(side, side.says(label), max_size, default)
    return Preprocessing(mode, int(state.chosen(side.key("size"), default)))


@st.fragment
def _size_control(side: Side, label: str, max_size: int = 512, default: int = 224) -> None:
    """The size slider and its Apply button, in a fragment: moving the slider (mouse or arrow keys) reruns
    only this fragment, so the model runs once, on Apply, not per step. The applied size is the choice
    ``{prefix}_size``; the slider's own choice is ``{prefix}_size_draft``."""
    key = side.key("size")
    applied = int(state.chosen(key, default))
    if st.session_state.get(f"{key}_draft::follows") != applied:      # first run, or set from code / a test
        st.session_state[f"{key}_draft::follows"] = applied
        state.set_choice(f"{key}_draft", applied)
    draft = state.number(label, 32, max_size, f"{key}_draft", default=applied, step=16, help=side.says(SIZE_HELP))
    st.button(f"Apply {draft} px" if draft != applied else f"Applied: {applied} px", key=f"{key}_apply",
              disabled=draft == applied, icon=":material/check:", on_click=_apply_size, args=(key, int(draft)))
    if st.session_state.pop(f"{key}::applied_now", False):
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        run = get_script_run_ctx()
        if run is not None and run.fragment_ids_this_run:   # only this fragment ran: now run the whole page
            st.rerun()


def _apply_size(key: str, size: int) -> None:
    st.session_state[key] = size
    st.session_state[f"{key}::applied_now"] = True


def device_caption(bundle: ModelBundle) -> str:
    import torch
    dev = bundle.device
    if dev.startswith("cuda") and torch.cuda.is_available():
        return f"Device: **GPU** ({torch.cuda.get_device_name(0)})"
    if dev == "mps":
        return "Device: **Apple GPU** (MPS)"
    return f"Device: **CPU** ({torch.get_num_threads()} threads)"


# ---- everything ---------------------------------------------------------------------------------------
def render() -> AppContext:
    """Draw the sidebar, load what it selects, run (or reuse) the forward pass → the run's context."""
    errors: list[str] = []
    with st.sidebar:
        st.markdown("#### Image")
        image = image_section(A, errors) or default_image()
        notes_box = st.container()
        st.markdown("#### Model")
        bundle = model_section(A, errors, *model_options())
        st.caption(device_caption(bundle))
        st.markdown("#### Preprocessing")
        bb = bundle.is_backbone
        default_mode = prep_policy.default_mode(bb, bundle.dense_task, bundle.is_demo or bundle.variant == DEMO)
        prep = prep_section(A, default_mode, prep_policy.labels(bb), prep_policy.max_size(bb))
        prep_box = st.container()
        st.divider()
        st.toggle("Lesson mode", key="sb_lesson", help="One instruction per page, in order.")
    try:
        a = build_input(image, bundle, prep)
    except Exception as err:  # noqa: BLE001 — shown, never raised into the page
        log.exception("forward pass failed")
        st.error(f"The model could not run on this input ({type(err).__name__}: {err}). "
                 "Try a smaller size or another image.")
        st.stop()
    with prep_box:
        for line in (a.prep_note, prep_policy.evaluation_hint(a.prep, bundle.cfg.num_classes)):
            if line:
                st.caption(line)
    with notes_box:
        st.caption(f"{a.image.name} · {a.image.decoded.size_text} px → model input {a.prepared.hw[0]}×{a.prepared.hw[1]} "
                   "(sizes are height × width)")
        notes = list(a.image.decoded.notes) + list(a.prepared.notes)
        if notes:
            st.warning("\n".join(f"- {n}" for n in notes), icon=":material/info:")
    return AppContext.of(a, errors)
