"""The image section, A's (sidebar) and B's (A/B compare) alike: a sample, a generated Navon figure or an upload
→ an :class:`~pages.common.inputs.ImageChoice` (``None`` when the chosen one is unusable: the caller falls back,
A to :func:`default_image`, B to A's image). Widget keys and wording come from the :class:`~pages.common.inputs.Side`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from . import image_loaders, state
from .images import IMAGE_TYPES, MAX_IMAGE_BYTES, DecodedImage
from .inputs import ImageChoice, Side

log = logging.getLogger(__name__)

SOURCES = ("Sample", "Navon generator", "Uploaded image")
NAVON_SIZE = 224
_DIGESTS = "_upload_digests"


def upload_digest(upload) -> str:
    """SHA-256 of an upload, computed once per file (keyed by Streamlit's file id)."""
    seen: dict[str, str] = st.session_state.setdefault(_DIGESTS, {})
    fid = getattr(upload, "file_id", None) or upload.name
    if fid not in seen:
        if len(seen) > 8:
            seen.clear()
        seen[fid] = image_loaders.digest(upload.getvalue())
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


def navon_figure(global_shape: str, local_shape: str, element: float, seed: int) -> ImageChoice:
    """A generated Navon figure (``NAVON_SIZE`` square) and its class."""
    rgb = image_loaders.navon_image(global_shape, local_shape, NAVON_SIZE, float(element), int(seed))
    key = f"navon:{global_shape}:{local_shape}:{NAVON_SIZE}:{element}:{seed}"
    expected = _navon_expected(global_shape, local_shape)
    name = f"Navon figure: {expected} (element {element} px, seed {seed})"
    return ImageChoice(key, name, DecodedImage(rgb=rgb, format="generated", mode="RGB"), expected)


def sample_image(name: str, path: str) -> tuple[ImageChoice | None, str | None]:
    """A shipped sample → ``(image, None)``, or ``(None, why not)`` when it cannot be read."""
    data = image_loaders.sample_bytes(path)
    key = image_loaders.digest(data)
    dec = image_loaders.decode(key, Path(path).name, _data=data)
    if dec.image is None:
        return None, dec.error
    return ImageChoice(key, f"sample: {name}", dec.image, _expected_from_name(name)), None


def default_sample(samples: dict[str, str], avoid: str | None = None) -> str | None:
    """The sample shown first: a Navon figure if one ships (the demo model's task), else the first; with
    ``avoid`` (another input's caption), the first sample that is not that one."""
    if avoid is not None:
        return next((n for n in samples if f"sample: {n}" != avoid), next(iter(samples), None))
    for name in samples:
        if "navon" in name.lower():
            return name
    return next(iter(samples), None)


def default_image() -> ImageChoice:
    """The fallback image: the default sample, else a generated Navon figure."""
    samples = image_loaders.sample_files()
    name = default_sample(samples)
    if name is not None:
        image, err = sample_image(name, samples[name])
        if image is not None:
            return image
        log.warning("default sample unreadable: %s", err)
    return navon_figure("triangle", "square", 10.0, 0)


def image_section(side: Side, errors: list[str], avoid: str | None = None) -> ImageChoice | None:
    """Widgets for the image → the image chosen, or ``None`` (said in ``errors`` or on the page) when it is
    unusable or not there yet. ``avoid``: another input's caption, not the default sample here."""
    samples = image_loaders.sample_files()
    source = state.choice(side.says("Source"), SOURCES, side.key("source"),
                          default="Sample" if samples else "Navon generator", widget="radio", horizontal=True,
                          label_visibility=side.source_label)
    result: ImageChoice | None = None
    if source == "Sample":
        if samples:
            name = state.choice(side.says("Sample image"), list(samples), side.key("sample"),
                                default=lambda: default_sample(samples, avoid))
            result, err = sample_image(name, samples[name])
            if result is None:
                errors.append(f"{side.says('The sample')} {name} could not be read: {err}")
        else:
            st.info("No sample images found in assets/samples.")
    elif source == "Navon generator":
        result = _navon_section(side)
    upload = st.file_uploader(side.says("Upload an image"), type=list(IMAGE_TYPES), key=side.key("upload"),
                              on_change=_on_upload, args=(side,), max_upload_size=MAX_IMAGE_BYTES // 2**20,
                              help="PNG, JPEG, WebP, BMP, GIF (first frame) or TIFF.")
    if source == "Uploaded image":
        if upload is None:
            st.info(side.says("Upload an image above; the default sample is shown meanwhile."))
        else:
            key = upload_digest(upload)
            dec = image_loaders.decode(key, upload.name, _data=upload.getvalue())
            if dec.image is None:
                errors.append(f"{side.says('Could not use the uploaded file')} — {dec.error} "
                              f"{side.says('The default image is shown instead.')}")
            else:
                result = ImageChoice(key, f"upload: {upload.name}", dec.image,
                                     _expected_from_name(upload.name))
    return result


def _on_upload(side: Side) -> None:
    """A new upload switches the source to it."""
    if st.session_state.get(side.key("upload")) is not None:
        state.set_choice(side.key("source"), "Uploaded image")


def _navon_section(side: Side) -> ImageChoice:
    """The Navon generator's widgets → its figure."""
    from crossformer.navon import SHAPES
    c1, c2 = st.columns(2)
    with c1:
        g = state.choice(side.says("Global shape"), SHAPES, side.key("navon_global"), default=side.navon[0])
    with c2:
        loc = state.choice(side.says("Local shape"), SHAPES, side.key("navon_local"), default=side.navon[1])
    element = state.number(side.says("Element size (px)"), 5, 24, side.key("navon_element"), default=10,
                           help="Diameter of each small local shape, in pixels of the 224×224 figure.")
    seed = st.number_input(side.says("Seed (position, colours, texture)"), 0, 9999, 0, key=side.key("navon_seed"))
    return navon_figure(g, loc, float(element), int(seed))
