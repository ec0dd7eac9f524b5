"""The shared sidebar: image source, preprocessing, model, lesson mode → one :class:`AppContext`.

Rendered by ``app.py`` on every run before the page, so its widgets keep their values across pages.
Every failure (unreadable upload, bad checkpoint) becomes a message and a fallback (the default image,
the demo model); the app keeps working.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from . import loaders, prep_policy, settings, state
from .context import AppContext
from .images import IMAGE_TYPES, MAX_IMAGE_BYTES, DecodedImage, Preprocessing
from .models import ARCHITECTURES, DEMO, ModelBundle, ModelFailure
from .prep_policy import PREP_LABELS

log = logging.getLogger(__name__)

SOURCES = ("Sample", "Navon generator", "Uploaded image")
NAVON_SIZE = 224
MODEL_LABELS = {
    "demo": "Demo model (Navon figures)",
    "startup": "Checkpoint from the command line",
    "upload": "Upload a checkpoint…",
    "official": "Official ImageNet weights (download once)",
    "architecture": "Official architecture, random weights",
}
_DIGESTS = "_upload_digests"


# ---- image -----------------------------------------------------------------------------------------
def _on_upload() -> None:
    """A new upload switches the source to it."""
    if st.session_state.get("sb_upload") is not None:
        state.set_choice("sb_source", "Uploaded image")


def upload_digest(upload) -> str:
    """SHA-256 of an upload, computed once per file (keyed by Streamlit's file id)."""
    seen: dict[str, str] = st.session_state.setdefault(_DIGESTS, {})
    fid = getattr(upload, "file_id", None) or upload.name
    if fid not in seen:
        if len(seen) > 8:
            seen.clear()
        seen[fid] = loaders.digest(upload.getvalue())
    return seen[fid]


def _navon_expected(global_shape: str, local_shape: str) -> str:
    from crossformer.navon import CLASS_NAMES, label_of
    return CLASS_NAMES[label_of(global_shape, local_shape)]


def _expected_from_name(name: str) -> str | None:
    """Navon samples named like ``navon_triangle_of_squares`` carry their class."""
    try:
        from crossformer.navon import CLASS_NAMES
    except ImportError:
        return None
    flat = name.lower().replace("_", " ").replace("-", " ")
    hits = [c for c in CLASS_NAMES if c in flat]
    return max(hits, key=len) if hits else None


def navon_figure(global_shape: str, local_shape: str, element: float,
                 seed: int) -> tuple[str, str, DecodedImage, str]:
    rgb = loaders.navon_image(global_shape, local_shape, NAVON_SIZE, float(element), int(seed))
    key = f"navon:{global_shape}:{local_shape}:{NAVON_SIZE}:{element}:{seed}"
    name = f"Navon figure: {_navon_expected(global_shape, local_shape)} (element {element} px, seed {seed})"
    return key, name, DecodedImage(rgb=rgb, format="generated", mode="RGB"), _navon_expected(global_shape,
                                                                                            local_shape)


def sample_image(name: str, path: str) -> tuple[str, str, DecodedImage | None, str | None, str | None]:
    data = loaders.sample_bytes(path)
    key = loaders.digest(data)
    dec = loaders.decode(key, Path(path).name, _data=data)
    return key, f"sample: {name}", dec.image, dec.error, _expected_from_name(name)


def default_sample(samples: dict[str, str]) -> str | None:
    """The sample shown first: a Navon figure if one ships (the demo model's task), else the first."""
    for name in samples:
        if "navon" in name.lower():
            return name
    return next(iter(samples), None)


def _default_image() -> tuple[str, str, DecodedImage, str | None]:
    """The fallback image: the default sample, else a generated Navon figure."""
    samples = loaders.sample_files()
    name = default_sample(samples)
    if name is not None:
        key, label, img, err, expected = sample_image(name, samples[name])
        if img is not None:
            return key, label, img, expected
        log.warning("default sample unreadable: %s", err)
    key, label, img, expected = navon_figure("triangle", "square", 10.0, 0)
    return key, label, img, expected


def image_section(errors: list[str]) -> tuple[str, str, DecodedImage, str | None]:
    """Widgets for the image → ``(image_key, caption, decoded image, expected class or None)``."""
    samples = loaders.sample_files()
    source = state.choice("Source", SOURCES, "sb_source", default="Sample" if samples else "Navon generator",
                          widget="radio", horizontal=True, label_visibility="collapsed")
    result: tuple[str, str, DecodedImage, str | None] | None = None
    if source == "Sample":
        if samples:
            name = state.choice("Sample image", list(samples), "sb_sample", default=lambda: default_sample(samples))
            key, label, img, err, expected = sample_image(name, samples[name])
            if img is None:
                errors.append(f"The sample {name} could not be read: {err}")
            else:
                result = (key, label, img, expected)
        else:
            st.info("No sample images found in assets/samples.")
    elif source == "Navon generator":
        from crossformer.navon import SHAPES
        c1, c2 = st.columns(2)
        with c1:
            g = state.choice("Global shape", SHAPES, "sb_navon_global", default="triangle")
        with c2:
            l = state.choice("Local shape", SHAPES, "sb_navon_local", default="square")
        element = state.number("Element size (px)", 5, 24, "sb_navon_element", default=10,
                               help="Diameter of each small local shape, in pixels of the 224×224 figure.")
        seed = st.number_input("Seed (position, colours, texture)", 0, 9999, 0, key="sb_navon_seed")
        result = navon_figure(g, l, float(element), int(seed))
    upload = st.file_uploader("Upload an image", type=list(IMAGE_TYPES), key="sb_upload", on_change=_on_upload,
                              max_upload_size=MAX_IMAGE_BYTES // 2**20,
                              help="PNG, JPEG, WebP, BMP, GIF (first frame) or TIFF.")
    if source == "Uploaded image":
        if upload is None:
            st.info("Upload an image above; the default sample is shown meanwhile.")
        else:
            data = upload.getvalue()
            key = upload_digest(upload)
            dec = loaders.decode(key, upload.name, _data=data)
            if dec.image is None:
                errors.append(f"Could not use the uploaded file — {dec.error} The default image is shown instead.")
            else:
                result = (key, f"upload: {upload.name}", dec.image, _expected_from_name(upload.name))
    return result if result is not None else _default_image()


def prep_section(default_mode: str, labels: dict[str, str] = PREP_LABELS, max_size: int = 512) -> Preprocessing:
    """Widgets for the preprocessing (``labels``: the modes offered, :func:`prep_policy.labels`)."""
    mode = state.choice("Preprocessing", labels, "sb_prep", default=default_mode, format_func=labels.get,
                        widget="radio", help="The official transform is what the ImageNet models were evaluated with. "
                         "Keeping the aspect ratio shows the padding of groups on non-square token maps: "
                         "the model runs at any size ≥ 32 pixels.")
    if mode != "official":
        _size_control(max_size, prep_policy.default_size(mode))
        return Preprocessing(mode, int(state.chosen("sb_size", prep_policy.default_size(mode))))
    return Preprocessing("official", 224)


@st.fragment
def _size_control(max_size: int = 512, default: int = 224) -> None:
    """The "Shorter side" slider and its Apply button, in a fragment: moving the slider (mouse or arrow
    keys) reruns only this fragment, so the model runs once, on Apply, not per step. The applied size is
    the choice ``sb_size``; the slider's own choice is ``sb_size_draft``."""
    applied = int(state.chosen("sb_size", default))
    if st.session_state.get("sb_size_draft::follows") != applied:      # first run, or set from code / a test
        st.session_state["sb_size_draft::follows"] = applied
        state.set_choice("sb_size_draft", applied)
    draft = state.number("Shorter side (px)", 32, max_size, "sb_size_draft", default=applied, step=16,
                         help="The long side follows the image's aspect ratio (cropped to at most 3:1). The model "
                              "re-runs when you press Apply.")
    st.button(f"Apply {draft} px" if draft != applied else f"Applied: {applied} px", key="sb_size_apply",
              disabled=draft == applied, icon=":material/check:", on_click=_apply_size, args=(int(draft),))
    if st.session_state.pop("sb_size::applied_now", False):
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        run = get_script_run_ctx()
        if run is not None and run.fragment_ids_this_run:   # only this fragment ran: now run the whole page
            st.rerun()


def _apply_size(size: int) -> None:
    st.session_state["sb_size"] = size
    st.session_state["sb_size::applied_now"] = True


# ---- model -----------------------------------------------------------------------------------------
def demo_bundle() -> ModelBundle:
    from .models import demo_model_id
    return loaders.demo_model(demo_model_id())


def sentence(text: str) -> str:
    """``text`` ending in a full stop, so that the next sentence can follow it ("… not known. Using …")."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _fallback(errors: list[str], what: str, why: str) -> ModelBundle:
    """Note why a model could not be used → the demo model."""
    errors.append(f"{what} — {sentence(why)} Using the demo model.")
    return demo_bundle()


def _startup_model(path: Path, errors: list[str]) -> ModelBundle:
    try:
        stat = path.stat()
        model_id = f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        errors.append(f"The checkpoint {path} does not exist; using the demo model.")
        return demo_bundle()
    got = loaders.checkpoint_file_model(model_id, str(path.resolve()))
    if isinstance(got, ModelFailure):
        return _fallback(errors, "Could not load the checkpoint", got.message)
    return got


def _download(name: str) -> None:
    """Download ``name`` with a progress bar that is removed again whatever happens; raises FetchError."""
    from crossformer import fetch
    bar = st.progress(0.0, text="Connecting…")

    def show(done: int, total: int | None) -> None:
        frac = min(done / total, 1.0) if total else 0.0
        bar.progress(frac, text=f"{done / 1e6:.0f} / {total / 1e6:.0f} MB" if total else f"{done / 1e6:.0f} MB")
    try:
        fetch.fetch_official(name, progress=show)
    finally:
        bar.empty()


def _official_model(errors: list[str]) -> ModelBundle:
    """The official ImageNet-1k weights of CrossFormer-T/S/B/L: a cached file that passes the cache check
    is used at once; otherwise (missing, or bad: an HTML page, a cut-off file) a button downloads it — the
    only network access of the app, and only when clicked."""
    from crossformer import CheckpointError, fetch
    from crossformer.variants import variant_label
    names = [n for n in fetch.OFFICIAL_WEIGHTS if not n.startswith("crossformer_demo")]
    report = fetch.cache_report()
    cached = {n: e.path for n, e in report.items() if e.ok}
    name = state.choice("Official weights", names, "sb_official",
                        default=lambda: next(iter(cached), "crossformer_t"),
                        format_func=lambda n: variant_label(n) + (" · cached" if n in cached else ""))
    if name not in cached:
        entry = report.get(name)
        if entry is not None and not entry.missing:
            st.warning(f"The cached file `{entry.path}` is bad: {sentence(entry.problem or '')} "
                       "Download it again below.", icon=":material/warning:")
        st.caption(f"Not downloaded yet. The file comes from the authors' Google Drive into "
                   f"`{fetch.cache_root()}`, once; or run `python -m crossformer fetch {name}` in a terminal. "
                   "CrossFormer++ weights are on Baidu only: see the About page.")
        if not st.button(f"Download {name}", key="sb_fetch", icon=":material/download:"):
            st.caption("Until then: the demo model.")
            return demo_bundle()
        try:
            _download(name)
        except (fetch.FetchError, CheckpointError) as err:
            return _fallback(errors, f"Could not download the official {name} weights", str(err))
    path = fetch.cache_root() / fetch.OFFICIAL_WEIGHTS[name].filename
    try:
        stat = path.stat()
    except OSError as err:
        return _fallback(errors, f"Could not open the cached {name} weights", f"{path}: {err.strerror or err}")
    got = loaders.checkpoint_file_model(f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}", str(path))
    if isinstance(got, ModelFailure):
        return _fallback(errors, f"Could not load the cached {name} weights", got.message)
    return got


def _uploaded_model(errors: list[str]) -> ModelBundle:
    up = st.file_uploader("Checkpoint (.pth, .safetensors, .npz)", type=list(settings.CHECKPOINT_TYPES),
                          key="sb_ckpt", help="An official CrossFormer / CrossFormer++ classification "
                          "checkpoint, or a detection / segmentation one (mmdet, mmseg: opened as its backbone). Pickles are opened with a restricted unpickler: no code runs. "
                          "Files above the upload limit: start the app with -- --checkpoint PATH.")
    if up is None:
        st.caption("No checkpoint uploaded yet: the demo model is used.")
        return demo_bundle()
    key = upload_digest(up)
    got = loaders.uploaded_model(f"upload:{key}", up.name, _data=up.getvalue())
    if isinstance(got, ModelFailure):
        return _fallback(errors, "Could not load the checkpoint", got.message)
    return got


def model_section(errors: list[str]) -> ModelBundle:
    """Widgets for the model → the bundle to use (the demo model whenever a load fails)."""
    startup = settings.startup_checkpoint()
    options = ["demo", "upload", "official", "architecture"]
    if startup is not None:
        options.insert(0, "startup")
    labels = dict(MODEL_LABELS)
    if startup is not None:
        labels["startup"] = f"Checkpoint: {startup.name}"
    choice = state.choice("Model", options, "sb_model", format_func=labels.get)   # keeps the preprocessing
    if choice == "startup" and startup is not None:
        bundle = _startup_model(startup, errors)
    elif choice == "upload":
        bundle = _uploaded_model(errors)
    elif choice == "official":
        bundle = _official_model(errors)
    elif choice == "architecture":
        from crossformer.variants import variant_label
        variant = state.choice("Variant", ARCHITECTURES, "sb_arch", format_func=lambda v: variant_label(v))
        bundle = loaders.architecture_model(variant)
    else:
        bundle = demo_bundle()
    family = "" if bundle.family in bundle.label else f" · {bundle.family}"     # never the variant twice
    st.caption(f"**{bundle.label}**{family} · {bundle.num_params / 1e6:.2f} M parameters · "
               f"{bundle.cfg.num_classes or 'backbone, no'} classes · weights: {bundle.weights}")
    if bundle.notes:
        st.warning("\n\n".join(bundle.notes), icon=":material/warning:")
    return bundle


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
        key, name, decoded, expected = image_section(errors)
        notes_box = st.container()
        st.markdown("#### Model")
        bundle = model_section(errors)
        st.caption(device_caption(bundle))
        st.markdown("#### Preprocessing")
        bb = bundle.is_backbone
        prep = prep_section(prep_policy.default_mode(bb, bundle.dense_task, bundle.is_demo or bundle.variant == DEMO),
                            prep_policy.labels(bb), prep_policy.max_size(bb))
        prep, why = prep_policy.usable_preprocessing(prep, bundle.cfg.min_input_side, bb)
        for line in (why, prep_policy.evaluation_hint(prep, bundle.cfg.num_classes)):
            if line:
                st.caption(line)
        st.divider()
        st.toggle("Lesson mode", key="sb_lesson", help="One instruction per page, in order.")
    prepared = loaders.prepared(key, prep.mode, prep.size, _rgb=decoded.rgb, pad=prep.pad)
    with notes_box:
        st.caption(f"{name} · {decoded.size_text} px → model input {prepared.hw[0]}×{prepared.hw[1]} "
                   "(sizes are height × width)")
        notes = list(decoded.notes) + list(prepared.notes)
        if notes:
            st.warning("\n".join(f"- {n}" for n in notes), icon=":material/info:")
    try:
        trace = loaders.trace(bundle.model_id, key, prep.key, bundle, prepared.pixels, prepared.padding)
    except Exception as err:  # noqa: BLE001 — shown, never raised into the page
        log.exception("forward pass failed")
        st.error(f"The model could not run on this input ({type(err).__name__}: {err}). "
                 "Try a smaller size or another image.")
        st.stop()
    return AppContext(bundle=bundle, image_key=key, image_name=name, decoded=decoded, prep=prep,
                      prepared=prepared, trace=trace, expected=expected if bundle.is_demo else None,
                      errors=tuple(errors))
