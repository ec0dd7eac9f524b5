"""Images, cached per input (``st.cache_data``, bounded): decoded uploads and samples, the shipped sample
files, generated Navon figures and the pixels the model sees.

``image_key`` is a SHA-256 of the bytes (:func:`digest`) or the generator's parameters, so the arrays and
bytes passed with a leading underscore are never hashed on a rerun.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from . import images
from .images import DecodedImage, ImageError, PreparedImage, Preprocessing
from .settings import SAMPLE_SUFFIXES, SAMPLES_DIR


def digest(data: bytes) -> str:
    """Short SHA-256 hex digest used as a cache key for bytes."""
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True, eq=False)
class Decoded:
    """Result of decoding: the image, or the message saying why not (errors are cached too)."""

    image: DecodedImage | None
    error: str | None = None


@st.cache_data(max_entries=64, show_spinner=False)
def decode(image_key: str, name: str, _data: bytes) -> Decoded:
    """Bytes of an upload or sample → :class:`Decoded` (keyed by the bytes' digest)."""
    try:
        return Decoded(images.decode_image(_data, name))
    except ImageError as err:
        return Decoded(None, str(err))


@st.cache_data(ttl=300, show_spinner=False)
def sample_files() -> dict[str, str]:
    """Shipped sample images: display name → path (``assets/samples``)."""
    if not SAMPLES_DIR.is_dir():
        return {}
    files = sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES and p.is_file())
    return {p.stem.replace("_", " "): str(p) for p in files}


@st.cache_data(max_entries=16, show_spinner=False)
def sample_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


@st.cache_data(max_entries=32, show_spinner=False)
def navon_image(global_shape: str, local_shape: str, size: int, element_size: float, seed: int) -> np.ndarray:
    """A Navon figure from the demo model's generator: ``(size, size, 3)`` uint8."""
    from crossformer.navon import render_navon
    return render_navon(global_shape, local_shape, (size, size), element_size=element_size, seed=seed)


@st.cache_data(max_entries=64, show_spinner=False)
def prepared(image_key: str, mode: str, size: int, _rgb: np.ndarray, pad: int = 1) -> PreparedImage:
    """Decoded image → the pixels the model sees (see :class:`~pages.common.images.Preprocessing`; ``pad``:
    padded to a multiple of it for a backbone, :mod:`pages.common.dense_prep`)."""
    from . import dense_prep
    return dense_prep.preprocess(_rgb, Preprocessing(mode, int(size), int(pad)))
