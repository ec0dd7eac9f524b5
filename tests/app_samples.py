"""Bytes of the awkward files a class may upload, made in memory (shared by the app tests)."""

from __future__ import annotations

import io
import pickle
import struct
import zlib

import numpy as np
from PIL import Image


def png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG") if mode else Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def gradient(h: int = 96, w: int = 128) -> np.ndarray:
    """A smooth RGB test picture ``(h, w, 3)`` uint8 with a distinct top-left corner."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], axis=-1).astype(np.uint8)
    img[: h // 4, : w // 4] = (255, 0, 0)
    return img


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims ``w × h`` pixels (a decompression bomb as far as the header goes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    data = encode(Image.fromarray(gradient(128, 128)), "JPEG", quality=90)
    return data[: len(data) // 2]


def not_an_image() -> bytes:
    return b"This is a text file that somebody renamed to picture.png.\n" * 20


def rgba() -> bytes:
    a = np.zeros((64, 64, 4), np.uint8)
    a[..., 0] = 200
    a[16:48, 16:48, 3] = 255          # opaque red square on a transparent background
    return png(a)


def palette_with_transparency() -> bytes:
    img = Image.fromarray(gradient(64, 64)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(img, "PNG", transparency=0)


def la() -> bytes:
    a = np.zeros((48, 48, 2), np.uint8)
    a[..., 0] = 120
    a[..., 1] = 128
    return encode(Image.fromarray(a, mode="LA"), "PNG")


def cmyk_jpeg() -> bytes:
    return encode(Image.fromarray(gradient(64, 80)).convert("CMYK"), "JPEG", quality=95)


def gray16(value: int = 65535) -> bytes:
    a = np.full((40, 50), value, dtype=np.uint16)
    a[:10] = 0
    return encode(Image.fromarray(a), "PNG")


def exif_rotated(orientation: int = 6, h: int = 40, w: int = 80) -> bytes:
    """A JPEG stored ``w × h`` with an EXIF orientation tag (6 = rotate 90° clockwise to view)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(gradient(h, w)), "JPEG", exif=exif.tobytes(), quality=95)


def animated_gif(frames: int = 3) -> bytes:
    imgs = [Image.fromarray(np.full((32, 48, 3), 60 * i, np.uint8)) for i in range(frames)]
    return encode(imgs[0], "GIF", save_all=True, append_images=imgs[1:], duration=100, loop=0)


def tiny() -> bytes:
    return png(np.array([[[10, 200, 30]]], dtype=np.uint8))


def very_wide(h: int = 20, w: int = 20000) -> bytes:
    return png(np.tile(gradient(h, 200), (1, w // 200, 1)))


class _RunsCode:
    """Unpickling this calls ``os.system`` — what a hostile checkpoint does."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def hostile_checkpoint(marker: str) -> bytes:
    """A ``.pth``-looking pickle that would create ``marker`` if unpickled naively."""
    return pickle.dumps({"model": _RunsCode(marker)}, protocol=2)


def foreign_checkpoint() -> bytes:
    """A real PyTorch checkpoint of another model (a small conv net)."""
    import torch
    sd = {"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8), "fc.bias": torch.zeros(10)}
    buf = io.BytesIO()
    torch.save({"model": sd, "epoch": 3}, buf)
    return buf.getvalue()


# ---- AppTest harness --------------------------------------------------------------------------------
APP = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "app.py")


def run_like_the_server(monkeypatch) -> None:
    """Make AppTest run ``app.py`` on every run, as the real server does.

    AppTest (1.67) resets ``PagesManager.uses_pages_directory`` before each run; because the pages live in
    ``pages/``, every run after the first would then take Streamlit's legacy pages-folder path and execute
    the page script alone. A running server sets the flag once (``st.navigation`` clears it) and keeps it.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    class _NavigationPagesManager(PagesManager):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    monkeypatch.setattr(app_test, "PagesManager", _NavigationPagesManager)


def new_app(size: int | None = 96, **state):
    """An AppTest of the app with sidebar state preset (keep-aspect preprocessing at ``size`` px: fast)."""
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(APP, default_timeout=180)
    if size is not None:
        at.session_state["sb_prep"] = "aspect"
        at.session_state["sb_size"] = size
    for k, v in state.items():
        at.session_state[k] = v
    return at


def widget(widgets, key: str):
    """The AppTest widget behind the choice ``key`` (``widget(at.selectbox, "attn_block")``).

    Pickers keep their value under the logical key and draw the widget under ``f"{key}::<digest>"``
    (pages/common/state.py); plain widgets keep their own key.
    """
    found = [w for w in widgets if w.key == key or (w.key or "").startswith(f"{key}::")]
    if not found:
        raise KeyError(f"no widget for {key!r} among {[w.key for w in widgets]}")
    return found[-1]


def plotly_specs(at) -> list[dict]:
    """The plotly figures an AppTest run drew, as JSON specs."""
    import json
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def plotly_array(v) -> np.ndarray:
    """A plotly array from a spec (plotly ≥ 6 ships typed arrays as base64)."""
    import base64
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        shape = v.get("shape")
        if isinstance(shape, str):
            shape = [int(n) for n in shape.split(",")]
        return a.reshape(shape) if shape is not None else a
    return np.asarray(v)


def no_errors(at) -> None:
    """No exception and no st.error in an AppTest run."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    # a stray expression statement in a page is drawn by Streamlit's "magic" (e.g. a `None` box)
    assert not any(m.value in ("`None`", "None") for m in at.markdown), "a page draws a stray `None`"
