"""The model section, A's (sidebar) and B's (A/B compare) alike: the demo model, a checkpoint named at start-up,
an uploaded checkpoint, the official weights (downloaded once, on a click) or an official architecture with
random weights → a :class:`~pages.common.models.ModelBundle`. Every failure becomes a message in ``errors`` and
the demo model; widget keys and wording come from the :class:`~pages.common.inputs.Side`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import streamlit as st

from . import model_loaders, settings, state
from .image_section import upload_digest
from .inputs import Side
from .models import ARCHITECTURES, ModelBundle, ModelFailure

MODEL_LABELS = {
    "demo": "Demo model (Navon figures)",
    "startup": "Checkpoint from the command line",
    "upload": "Upload a checkpoint…",
    "official": "Official ImageNet weights (download once)",
    "architecture": "Official architecture, random weights",
}


def demo_bundle() -> ModelBundle:
    from .models import demo_model_id
    return model_loaders.demo_model(demo_model_id())


def sentence(text: str) -> str:
    """``text`` ending in a full stop, so that the next sentence can follow it ("… not known. Using …")."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _fallback(side: Side, errors: list[str], what: str, why: str) -> ModelBundle:
    """Note why a model could not be used → the demo model."""
    errors.append(f"{side.says(what)} — {sentence(why)} {side.says('Using the demo model.')}")
    return demo_bundle()


def _file_model(side: Side, errors: list[str], path: Path, what: str, open_what: str | None = None) -> ModelBundle:
    """The checkpoint file ``path`` (cached per path, size and mtime), else the demo model and why (``what``:
    the load failed; ``open_what``: the file could not be opened)."""
    try:
        stat = path.stat()
    except OSError as err:
        return _fallback(side, errors, open_what or what, f"{path}: {err.strerror or err}")
    got = model_loaders.checkpoint_file_model(f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}",
                                              str(path.resolve()))
    if isinstance(got, ModelFailure):
        return _fallback(side, errors, what, got.message)
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


def _official_model(side: Side, errors: list[str]) -> ModelBundle:
    """The official ImageNet-1k weights of CrossFormer-T/S/B/L: a cached file that passes the cache check
    is used at once; otherwise (missing, or bad: an HTML page, a cut-off file) a button downloads it — the
    only network access of the app, and only when clicked."""
    from crossformer import CheckpointError, FetchError, fetch_cache
    from crossformer.variants import variant_label
    names = [n for n in fetch_cache.OFFICIAL_WEIGHTS if not n.startswith("crossformer_demo")]
    report = fetch_cache.cache_report()
    cached = {n: e.path for n, e in report.items() if e.ok}
    name = state.choice(side.says("Official weights"), names, side.key("official"),
                        default=lambda: next(iter(cached), "crossformer_t"),
                        format_func=lambda n: variant_label(n) + (" · cached" if n in cached else ""))
    if name not in cached:
        entry = report.get(name)
        if entry is not None and not entry.missing:
            st.warning(f"The cached file `{entry.path}` is bad: {sentence(entry.problem or '')} "
                       "Download it again below.", icon=":material/warning:")
        st.caption(f"Not downloaded yet. The file comes from the authors' Google Drive into "
                   f"`{fetch_cache.cache_root()}`, once; or run `python -m crossformer fetch {name}` in a terminal. "
                   "CrossFormer++ weights are on Baidu only: see the About page.")
        if not st.button(f"Download {name}", key=side.key("fetch"), icon=":material/download:"):
            st.caption("Until then: the demo model.")
            return demo_bundle()
        try:
            _download(name)
        except (FetchError, CheckpointError) as err:
            return _fallback(side, errors, f"Could not download the official {name} weights", str(err))
    path = fetch_cache.cache_root() / fetch_cache.OFFICIAL_WEIGHTS[name].filename
    return _file_model(side, errors, path, f"Could not load the cached {name} weights",
                       f"Could not open the cached {name} weights")


def _uploaded_model(side: Side, errors: list[str]) -> ModelBundle:
    up = st.file_uploader(side.says("Checkpoint (.pth, .safetensors, .npz)"), type=list(settings.CHECKPOINT_TYPES),
                          key=side.key("ckpt"), help="An official CrossFormer / CrossFormer++ classification "
                          "checkpoint, or a detection / segmentation one (mmdet, mmseg: opened as its backbone). "
                          "Pickles are opened with a restricted unpickler: no code runs. "
                          "Files above the upload limit: start the app with -- --checkpoint PATH.")
    if up is None:
        st.caption(side.says("No checkpoint uploaded yet: the demo model is used."))
        return demo_bundle()
    got = model_loaders.uploaded_model(f"upload:{upload_digest(up)}", up.name, _data=up.getvalue())
    if isinstance(got, ModelFailure):
        return _fallback(side, errors, "Could not load the checkpoint", got.message)
    return got


def model_options() -> tuple[list[str], dict[str, str]]:
    """A's model choices and their labels (a checkpoint named at start-up comes first)."""
    startup = settings.startup_checkpoint()
    options = ["demo", "upload", "official", "architecture"]
    labels = dict(MODEL_LABELS)
    if startup is not None:
        options.insert(0, "startup")
        labels["startup"] = f"Checkpoint: {startup.name}"
    return options, labels


def model_section(side: Side, errors: list[str], options: Sequence[str], labels: dict[str, str] = MODEL_LABELS
                  ) -> ModelBundle:
    """Widgets for the model (one of ``options``) → the bundle to use (the demo model whenever a load fails)."""
    choice = state.choice(side.says("Model"), list(options), side.key("model"), format_func=labels.get)
    if choice == "startup":
        startup = settings.startup_checkpoint()
        if startup is None or not startup.exists():      # removed since start-up
            errors.append(f"The checkpoint {startup} does not exist; using the demo model.")
            bundle = demo_bundle()
        else:
            bundle = _file_model(side, errors, startup, "Could not load the checkpoint")
    elif choice == "upload":
        bundle = _uploaded_model(side, errors)
    elif choice == "official":
        bundle = _official_model(side, errors)
    elif choice == "architecture":
        from crossformer.variants import variant_label
        variant = state.choice(side.says("Variant"), ARCHITECTURES, side.key("arch"), format_func=variant_label)
        bundle = model_loaders.architecture_model(variant)
    else:
        bundle = demo_bundle()
    family = "" if bundle.family in bundle.label else f" · {bundle.family}"     # never the variant twice
    st.caption(f"**{bundle.label}**{family} · {bundle.num_params / 1e6:.2f} M parameters · "
               f"{bundle.cfg.num_classes or 'backbone, no'} classes · weights: {bundle.weights}")
    if bundle.notes:
        st.warning("\n\n".join(bundle.notes), icon=":material/warning:")
    return bundle
