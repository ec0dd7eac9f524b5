"""Image helpers of the app: decoding and preprocessing come from :mod:`crossformer.images` (the loader the
statistics CLI uses too, so an image gives the same numbers in both); the query picker's box drawing lives here.

Everything a class of students may upload ends in :func:`decode_image`: it either returns an RGB ``uint8``
array with notes on what was changed or raises :class:`ImageError` with a message a user can act on.
:func:`preprocess` then produces the exact pixels the model sees, and :func:`normalise` the ``(3, H, W)``
float input.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from crossformer.images import (EXACT_RESIZE_PIXELS, IMAGE_TYPES, MAX_ASPECT, MAX_IMAGE_BYTES,  # noqa: F401
                                MAX_PIXELS, MIN_MODEL_SIDE, DecodedImage, ImageError, PreparedImage,
                                Preprocessing, PrepMode, decode_image, normalise, preprocess, resize_side)


# ---- small helpers for the query picker -----------------------------------------------------------
def token_box(token: tuple[int, int], stride: int, hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` (exclusive end) of token ``(h, w)`` of a stage with ``stride``."""
    th, tw = token
    H, W = hw
    return tw * stride, th * stride, min(W, (tw + 1) * stride), min(H, (th + 1) * stride)


def draw_box(pixels: np.ndarray, box: tuple[int, int, int, int], scale: int = 1,
             color: tuple[int, int, int] = (255, 0, 102)) -> np.ndarray:
    """Copy of ``pixels`` (``(H, W, 3)`` uint8) upscaled ``scale``× (nearest) with ``box`` outlined."""
    img = Image.fromarray(pixels)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    x0, y0, x1, y1 = (v * scale for v in box)
    draw = ImageDraw.Draw(img)
    width = max(2, scale)
    draw.rectangle((x0 - width, y0 - width, x1 + width - 1, y1 + width - 1), outline=(255, 255, 255), width=1)
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=color, width=width)
    return np.asarray(img)


def display_scale(hw: tuple[int, int], target: int = 448) -> int:
    """Integer upscale so the longer side of a small model input is about ``target`` pixels."""
    return max(1, min(4, int(math.floor(target / max(hw)))))
