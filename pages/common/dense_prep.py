"""Preprocessing of detection / segmentation backbones: the detector's resize and mmdet's padding (no Streamlit).

mmdet 2.x test pipeline of the official CrossFormer detectors: ``Resize(img_scale=(1333, 800), keep_ratio=True)``
(the image scaled by ``min(1333 / long side, 800 / short side)``), ``Normalize`` (ImageNet mean/std) and
``Pad(size_divisor=32)`` (zeros, after normalisation, on the bottom and right). mmseg 0.x: the same with
``(2048, 512)``. The ``size`` of a :class:`~pages.common.images.Preprocessing` is the shorter side; the longer
side's cap keeps the published ratio (1333 / 800, 2048 / 512).

Padding is kept inside the pixels the app shows (the ImageNet mean colour, i.e. zero after normalisation) so
every page's token grid lines up with the picture; :func:`pages.common.traces.model_input` writes exact zeros
there, as mmdet does.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from crossformer.geometry import plan_input_padding

from . import images
from .images import ImageError, PreparedImage, Preprocessing

#: ``mode → (shorter side, longer side cap)`` of the official test pipelines.
DENSE_SCALES: dict[str, tuple[int, int]] = {"mmdet": (800, 1333), "mmseg": (512, 2048)}
#: Padding multiple of a four-stage backbone input (stride 4 · 2 · 2 · 2).
PAD_DIVISOR = 32
#: The colour of zero after ImageNet normalisation, shown in the padded pixels.
PAD_RGB = (124, 116, 104)


def long_side_cap(prep: Preprocessing) -> int:
    """The longer side's cap for ``prep`` (``round(size · 1333 / 800)`` for mmdet)."""
    short, long = DENSE_SCALES[prep.mode]
    return int(round(prep.size * long / short))


def dense_resize(rgb: np.ndarray, prep: Preprocessing) -> PreparedImage:
    """``(h, w, 3)`` uint8 → mmdet's ``Resize(keep_ratio=True)`` at ``(size, long_side_cap)``."""
    if prep.size < images.MIN_MODEL_SIDE:
        raise ImageError(f"the model needs at least {images.MIN_MODEL_SIDE} pixels per side, got {prep.size}")
    h, w = int(rgb.shape[0]), int(rgb.shape[1])
    cap = long_side_cap(prep)
    scale = min(cap / max(h, w), prep.size / min(h, w))
    oh, ow = max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))
    notes = []
    if min(oh, ow) < images.MIN_MODEL_SIDE:
        notes.append(f"extreme aspect ratio ({w}×{h}): the short side is only {min(oh, ow)} px after the resize; "
                     f"it is padded to {PAD_DIVISOR}.")
    out = np.asarray(Image.fromarray(rgb).resize((ow, oh), Image.Resampling.BILINEAR), dtype=np.uint8)
    steps = (f"resize {w}×{h} → {ow}×{oh} (scale {scale:.3f}: shorter side ≤ {prep.size}, longer ≤ {cap}, "
             "bilinear)", "to [0, 1], normalise with the model's mean/std")
    return PreparedImage(pixels=np.ascontiguousarray(out), source_hw=(h, w), steps=steps, notes=tuple(notes))


def pad_prepared(prepared: PreparedImage, divisor: int = PAD_DIVISOR) -> PreparedImage:
    """``prepared`` with its pixels padded bottom/right to a multiple of ``divisor`` (mmdet's ``Pad``)."""
    pad = plan_input_padding(prepared.hw, divisor)
    if not pad.is_padded:
        return replace(prepared, steps=prepared.steps + (f"{pad.describe()}",))
    H, W = pad.padded_hw
    out = np.empty((H, W, 3), np.uint8)
    out[:] = PAD_RGB
    out[: prepared.hw[0], : prepared.hw[1]] = prepared.pixels
    return replace(prepared, pixels=out, steps=prepared.steps + (pad.describe() + " (after normalisation)",),
                   padding=(pad.bottom, pad.right))


def preprocess(rgb: np.ndarray, prep: Preprocessing) -> PreparedImage:
    """Any :class:`Preprocessing` → the model's input pixels, padded when ``prep.pad > 1``."""
    if prep.mode in DENSE_SCALES:
        out = dense_resize(rgb, prep)
    else:
        out = images.preprocess(rgb, replace(prep, pad=1))
    return pad_prepared(out, prep.pad) if prep.pad > 1 else out


def padding_text(prepared: PreparedImage) -> str:
    """``"padded 800×1333 → 800×1344 (…)"`` or ``"800×1344: no padding needed …"`` for a prepared input."""
    H, W = prepared.hw
    b, r = prepared.padding
    return plan_input_padding((H - b, W - r), PAD_DIVISOR).describe()
