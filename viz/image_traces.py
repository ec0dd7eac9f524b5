"""Images inside plotly figures: as uint8 RGB, as a compact PNG data URI (remembered up to a byte budget), as a trace
whose pixel ``(i, j)`` covers ``[j, j+1) × [i, i+1)`` in axis units.

Arrays in, a trace out; nothing here changes plotly's or matplotlib's global state.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from typing import Sequence

import numpy as np
import plotly.graph_objects as go


def as_uint8(image: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` image (uint8, or float in [0, 1]) → ``(H, W, 3)`` uint8."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) image, got shape {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float64)
    if np.nanmax(a) > 1.5:      # float already in 0…255
        a = a / 255.0
    return (np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def image_data_uri(image: np.ndarray, *, dim: float = 0.0) -> str:
    """PNG data URI of an image (compact in the figure JSON, unlike ``go.Image(z=…)``).

    ``dim`` ∈ [0, 1) blends the image towards white so overlays stand out. Encodings are remembered by
    content (:data:`URI_MEMO_BYTES` at most), so the several figures of one image encode it once.
    """
    a = np.ascontiguousarray(as_uint8(image))
    key = (a.shape, round(float(dim), 4), hashlib.blake2b(a.tobytes(), digest_size=16).hexdigest())
    hit = _URIS.get(key)
    if hit is not None:
        return hit
    from PIL import Image  # local: only figures with an image need it

    if dim > 0:
        a = (a.astype(np.float32) * (1 - dim) + 255.0 * dim).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=1)   # 4× faster than the default 6, +15 % size
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    _URIS.put(key, uri)
    return uri


#: Most characters of data URIs :func:`image_data_uri` remembers (a 480 × 640 photo is ~0.6 MB).
URI_MEMO_BYTES = 32 << 20


class _UriMemo:
    """Data URIs by image key, oldest out first once their total length passes ``budget``; thread-safe.

    Not the app's ``pages.common.bytecache.ByteLRU``: ``viz`` does not import the app (the app imports it)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: dict[tuple, str] = {}
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> str | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple, uri: str) -> None:
        with self._lock:
            if key in self._items or len(uri) > self.budget:
                return
            self._items[key] = uri
            self._size += len(uri)
            while self._size > self.budget:
                self._size -= len(self._items.pop(next(iter(self._items))))


_URIS = _UriMemo(URI_MEMO_BYTES)


def image_trace(image: np.ndarray, *, dim: float = 0.0, name: str = "image",
                crop: Sequence[float] | None = None) -> go.Image:
    """The image as a trace whose pixel ``(i, j)`` covers ``[j, j+1) × [i, i+1)`` in axis units.

    ``crop = (y0, y1, x0, x1)`` in pixels embeds only that part (smaller figures for zoomed panels).
    """
    a = as_uint8(image)
    oy = ox = 0
    if crop is not None:
        H, W = a.shape[:2]
        y0, y1 = int(max(0, np.floor(crop[0]))), int(min(H, np.ceil(crop[1])))
        x0, x1 = int(max(0, np.floor(crop[2]))), int(min(W, np.ceil(crop[3])))
        if y1 > y0 and x1 > x0:
            a, oy, ox = a[y0:y1, x0:x1], y0, x0
    return go.Image(source=image_data_uri(a, dim=dim), x0=ox + 0.5, y0=oy + 0.5, dx=1, dy=1, name=name,
                    hoverinfo="skip")
