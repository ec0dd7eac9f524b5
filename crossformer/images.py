"""Image decoding and preprocessing shared by the app and the statistics CLI (PIL + NumPy, torch-free).

Every image that reaches a model ends here, uploaded or read from a folder: :func:`decode_image` either
returns an RGB ``uint8`` array with notes on what was changed (alpha flattened, 16 bits reduced, EXIF
rotation applied, first GIF frame taken …) or raises :class:`ImageError` with a message a user can act on
(and a short ``reason`` for counting skipped files). :func:`read_image_file` reads a regular file only
(never a FIFO or device), within :data:`MAX_IMAGE_BYTES`. :func:`preprocess` produces the exact pixels the
model sees (the official eval transform, the aspect ratio kept at a chosen size, or a square resize), and
:func:`normalise` the ``(3, H, W)`` float input. PIL is imported inside the functions: ``import crossformer``
needs only torch and NumPy.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .config import MIN_INPUT_SIDE

#: Largest image accepted, in pixels (PIL's own bomb guard warns at 89 MP; we stop earlier).
MAX_PIXELS = 40_000_000
#: Largest image file accepted, in bytes (the app's uploader cap is in .streamlit/config.toml).
MAX_IMAGE_BYTES = 60 * 1024 * 1024
#: Smallest side the model accepts (four stages of stride 4·2·2·2).
MIN_MODEL_SIDE = MIN_INPUT_SIDE
#: Keep-aspect mode crops the long side to at most this multiple of the short side.
MAX_ASPECT = 3.0
#: Above this many pixels the official transform resamples only the crop box (see :func:`preprocess`).
EXACT_RESIZE_PIXELS = 16_000_000
#: Accepted upload extensions (PIL decides the real format from the bytes, not from the name).
IMAGE_TYPES = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")

#: ``official``: resize + centre crop (SPEC §9); ``aspect``: shorter side to ``size``; ``square``: ``size × size``.
PrepMode = Literal["official", "aspect", "square", "mmdet", "mmseg"]     # mmdet/mmseg: the app's pages/common/dense_prep.py


class ImageError(ValueError):
    """An image that cannot be used; the message says why in words a user can act on.

    ``reason`` is a short category for counting skipped files: ``"empty file"``, ``"too large"``,
    ``"not an image"``, ``"corrupt or truncated"``, ``"not a regular file"``, ``"unreadable"``.
    """

    def __init__(self, message: str, reason: str = "unusable image") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded upload or sample.

    Attributes:
        rgb: ``(H, W, 3)`` uint8, EXIF orientation applied, alpha flattened onto white.
        format: PIL's name of the file format (``"PNG"``, ``"JPEG"`` …).
        mode: the file's pixel mode before conversion (``"RGBA"``, ``"I;16"``, ``"CMYK"`` …).
        notes: what was changed to make it a plain RGB image (shown to the user).
    """

    rgb: np.ndarray
    format: str
    mode: str
    notes: tuple[str, ...] = ()

    @property
    def size_text(self) -> str:
        h, w = self.rgb.shape[:2]
        return f"{h}×{w}"             # H × W, like every size in the app


@dataclass(frozen=True)
class Preprocessing:
    """How the decoded image becomes the model input.

    ``mode="official"``: the official evaluation transform (SPEC §9): resize the shorter side to
    ``int(256/224·size)`` with bicubic, centre-crop ``size × size``. ``mode="aspect"``: resize the shorter
    side to ``size`` keeping the aspect ratio (the long side cropped to ``MAX_ASPECT·size``).
    ``mode="square"``: resize to ``size × size`` (bicubic; the statistics CLI's ``--size``).
    """

    mode: PrepMode = "official"
    size: int = 224
    pad: int = 1            # pad bottom/right to a multiple of this (32 for backbones: pages/common/dense_prep.py)

    @property
    def key(self) -> str:
        return f"{self.mode}:{self.size}" + (f":pad{self.pad}" if self.pad > 1 else "")

    def describe(self) -> str:
        pad = f", padded to a multiple of {self.pad}" if self.pad > 1 else ""
        if self.mode in ("mmdet", "mmseg"):
            return f"{self.mode} test resize: shorter side → {self.size}, longer capped (aspect kept, bilinear){pad}"
        if self.mode == "official":
            return (f"official eval transform: shorter side → {resize_side(self.size)} (bicubic), "
                    f"centre crop {self.size}×{self.size}{pad}")
        if self.mode == "square":
            return f"resized to {self.size}×{self.size} (bicubic){pad}"
        return f"aspect ratio kept: shorter side → {self.size} (bicubic){pad}"


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """The pixels the model sees, before normalisation.

    Attributes:
        pixels: ``(H, W, 3)`` uint8 model input (``H, W ≥ 32``).
        source_hw: ``(h, w)`` of the decoded image it came from.
        steps: the transform, one human-readable line per step.
        notes: warnings about the input (tiny image upscaled, extreme aspect ratio cropped …).
    """

    pixels: np.ndarray
    source_hw: tuple[int, int]
    steps: tuple[str, ...]
    notes: tuple[str, ...] = ()
    padding: tuple[int, int] = (0, 0)     # (bottom, right) pixels of input padding inside ``pixels``

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


# ---- reading and decoding -------------------------------------------------------------------------
def read_image_file(path: str | Path, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a regular file (symlinks followed), at most ``max_bytes``.

    Opened non-blocking and checked with ``fstat`` before reading: a FIFO, device or socket raises
    :class:`ImageError` (reason ``"not a regular file"``) instead of blocking; ``OSError`` on open/read
    becomes reason ``"unreadable"``, a bigger file ``"too large"``.
    """
    label = Path(path).name
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise ImageError(f"{label} cannot be opened ({err.strerror or err}).", "unreadable") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{label} is not a regular file (a FIFO, device or socket).", "not a regular file")
        if st.st_size > max_bytes:
            raise ImageError(f"{label} is {st.st_size / 2**20:.0f} MB; images up to "
                             f"{max_bytes / 2**20:.0f} MB are accepted.", "too large")
        with open(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError as err:
        raise ImageError(f"{label} cannot be read ({err.strerror or err}).", "unreadable") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ImageError(f"{label} grew past {max_bytes / 2**20:.0f} MB while being read.", "too large")
    return data


def decode_image(data: bytes, name: str = "the file", max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Bytes of any common image file → :class:`DecodedImage`; raises :class:`ImageError` otherwise."""
    from PIL import Image, UnidentifiedImageError

    label = name or "the file"
    if not data:
        raise ImageError(f"{label} is empty (0 bytes): nothing to show.", "empty file")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"{label} is {len(data) / 2**20:.0f} MB; images up to "
                         f"{MAX_IMAGE_BYTES / 2**20:.0f} MB are accepted.", "too large")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w < 1 or h < 1:
                raise ImageError(f"{label} has no pixels ({w}×{h}).", "corrupt or truncated")
            if w * h > max_pixels:
                raise ImageError(f"{label} is {w}×{h} = {w * h / 1e6:.0f} megapixels, above the "
                                 f"{max_pixels / 1e6:.0f} MP limit (a possible decompression bomb); "
                                 "please downscale it first.", "too large")
            frames = int(getattr(img, "n_frames", 1) or 1)
            if frames > 1:
                img.seek(0)
                kind = "animated GIF" if img.format == "GIF" else f"multi-frame {img.format}"
                notes.append(f"{kind} with {frames} frames: using the first frame.")
            img.load()
            fmt, mode = img.format or "unknown", img.mode
            img = _apply_exif(img, notes)
            rgb = _to_rgb(img, notes)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label} is larger than the pixel limit (a possible decompression bomb); "
                         "please downscale it first.", "too large") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label} is not an image this app can read (PNG, JPEG, WebP, BMP, GIF or TIFF "
                         "expected); maybe it was renamed from another file type.", "not an image") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, MemoryError) as err:
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise ImageError(f"{label} could not be decoded — it looks truncated or corrupt ({reason}).",
                         "corrupt or truncated") from None
    return DecodedImage(rgb=rgb, format=fmt, mode=mode, notes=tuple(notes))


def _apply_exif(img, notes: list[str]):
    """Rotate/flip a PIL image as the camera's EXIF orientation tag says (broken EXIF is ignored with a note)."""
    from PIL import ImageOps

    try:
        orientation = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 — malformed EXIF must not break decoding
        notes.append("EXIF data unreadable: orientation left as stored.")
        return img
    if orientation == 1:
        return img
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001
        notes.append("EXIF orientation could not be applied: image left as stored.")
        return img
    notes.append(f"EXIF orientation {orientation} applied (the photo is shown upright).")
    return out


def _to_rgb(img, notes: list[str]) -> np.ndarray:
    """Any PIL mode → ``(H, W, 3)`` uint8 (alpha on white, high bit depths scaled, CMYK converted)."""
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            a8 = a / 257.0
            notes.append("16-bit image reduced to 8 bits per channel.")
        else:
            lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
            if 0.0 <= lo and hi <= 1.0 and mode == "F":
                a8 = a * 255.0
            elif 0.0 <= lo and hi <= 255.0:
                a8 = a
            else:
                a8 = (a - lo) / (hi - lo or 1.0) * 255.0
                notes.append(f"{mode}-mode image (values {lo:g}…{hi:g}) stretched to 0…255.")
        grey = np.clip(np.nan_to_num(a8), 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        if alpha.min() < 255:
            notes.append(f"{mode} image: transparent areas flattened onto white.")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB")
    else:
        if mode == "CMYK":
            notes.append("CMYK image converted to RGB.")
        rgb = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


# ---- preprocessing --------------------------------------------------------------------------------
def resize_side(crop: int) -> int:
    """Shorter side before the centre crop of the official transform: ``int(256/224 · crop)``."""
    return int(256 / 224 * crop)


def preprocess(rgb: np.ndarray, prep: Preprocessing) -> PreparedImage:
    """``(h, w, 3)`` uint8 → the model's input pixels, with every step described.

    The official transform is torchvision's ``Resize(256)`` then ``CenterCrop(224)`` on the PIL image
    (bit-identical); for extreme aspect ratios, whose resized image would be huge, only the crop box is
    resampled (PIL ``resize(box=…)``: same sampling positions and filter width, ±2 grey levels).
    """
    from PIL import Image

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    h, w = int(rgb.shape[0]), int(rgb.shape[1])
    size = int(prep.size)
    if size < MIN_MODEL_SIDE:
        raise ImageError(f"the model needs at least {MIN_MODEL_SIDE} pixels per side, got {size}")
    img = Image.fromarray(rgb)
    notes: list[str] = []
    steps: list[str] = []
    if min(h, w) < MIN_MODEL_SIDE:
        notes.append(f"the image is {w}×{h} pixels, its short side below {MIN_MODEL_SIDE}: it is "
                     f"upscaled {size / min(h, w):.0f}× and shows little detail.")
    if prep.mode == "official":
        R = resize_side(size)
        if w <= h:
            ow, oh = R, int(R * h / w)
        else:
            oh, ow = R, int(R * w / h)
        top, left = int(round((oh - size) / 2.0)), int(round((ow - size) / 2.0))
        sx, sy = ow / w, oh / h
        if ow * oh <= EXACT_RESIZE_PIXELS:   # exactly torchvision: resize, then crop
            out = img.resize((ow, oh), Image.Resampling.BICUBIC).crop((left, top, left + size, top + size))
        else:                                # extreme aspect ratio: resample only the crop box
            box = (left / sx, top / sy, (left + size) / sx, (top + size) / sy)
            out = img.resize((size, size), Image.Resampling.BICUBIC, box=box)
        steps.append(f"resize {w}×{h} → {ow}×{oh} (shorter side {R}, bicubic)")
        steps.append(f"centre crop {size}×{size} (offset x={left}, y={top})")
        kept = (size * size) / (ow * oh)
        if kept < 0.25:
            notes.append(f"extreme aspect ratio ({w}×{h}): the centre crop keeps only {kept:.1%} of the image.")
    elif prep.mode == "aspect":
        crop_box = (0.0, 0.0, float(w), float(h))
        long_max = MAX_ASPECT * min(h, w)
        if max(h, w) > long_max:
            if w > h:
                x0 = (w - long_max) / 2.0
                crop_box = (x0, 0.0, x0 + long_max, float(h))
            else:
                y0 = (h - long_max) / 2.0
                crop_box = (0.0, y0, float(w), y0 + long_max)
            notes.append(f"extreme aspect ratio ({w}×{h}): the long side is centre-cropped to "
                         f"{MAX_ASPECT:g}× the short side.")
            steps.append(f"centre crop the long side to {MAX_ASPECT:g}:1")
        cw, ch = crop_box[2] - crop_box[0], crop_box[3] - crop_box[1]
        scale = size / min(cw, ch)
        ow, oh = max(size, int(round(cw * scale))), max(size, int(round(ch * scale)))
        out = img.resize((ow, oh), Image.Resampling.BICUBIC, box=crop_box)
        steps.append(f"resize {round(cw)}×{round(ch)} → {ow}×{oh} (shorter side {size}, bicubic, aspect kept)")
    elif prep.mode == "square":
        out = img.resize((size, size), Image.Resampling.BICUBIC)
        steps.append(f"resize {w}×{h} → {size}×{size} (bicubic, aspect not kept)")
    else:
        raise ImageError(f"unknown preprocessing mode {prep.mode!r}")
    pixels = np.ascontiguousarray(np.asarray(out, dtype=np.uint8))
    steps.append("to [0, 1], normalise with the model's mean/std")
    return PreparedImage(pixels=pixels, source_hw=(h, w), steps=tuple(steps), notes=tuple(notes))


def normalise(pixels: np.ndarray, mean: tuple[float, float, float],
              std: tuple[float, float, float]) -> np.ndarray:
    """``(..., H, W, 3)`` uint8 → ``(..., 3, H, W)`` float32 ``(x/255 − mean)/std`` (ToTensor + Normalize), one
    image or a batch: the project's one mean/std normalisation (the app, the statistics CLI, the training and
    benchmark scripts)."""
    if pixels.ndim < 3 or pixels.shape[-1] != 3:
        raise ImageError(f"expected (..., H, W, 3) pixels, got shape {pixels.shape}")
    x = np.moveaxis(pixels.astype(np.float32), -1, -3) / np.float32(255.0)
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((x - m) / s)


def load_model_input(path: str | Path, prep: Preprocessing, mean: tuple[float, float, float],
                     std: tuple[float, float, float]) -> np.ndarray:
    """A file on disk → the normalised ``(3, S, S)`` float32 model input, exactly as the app prepares an
    upload (:func:`read_image_file`, :func:`decode_image`, :func:`preprocess`, :func:`normalise`).
    Raises :class:`ImageError` (with its ``reason``) for anything unusable."""
    rgb = decode_image(read_image_file(path), Path(path).name).rgb
    return normalise(preprocess(rgb, prep).pixels, mean, std)
