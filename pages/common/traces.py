"""The forward pass, once per model × image × preprocessing, and what is derived from a trace per input.

``forward_trace`` results live in a byte-bounded store shared by every session (:mod:`pages.common.bytecache`),
unpickled and read-only; the other per-input results (feature pyramid, DPB tables, head statistics) in
bounded ``st.cache_data``. Arguments with a leading underscore are not hashed: the ids before them
(``model_id`` names the weights, ``image_key`` is a SHA-256 of the image, ``prep_key`` the preprocessing)
identify the input fully, so large arrays, traces and models are never hashed on a rerun.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import numpy as np
import streamlit as st
import torch

import crossformer

from . import images
from .bytecache import ByteLRU, budget_bytes
from .models import ModelBundle

log = logging.getLogger(__name__)


def normalised(bundle: ModelBundle, pixels: np.ndarray, padding: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``(H, W, 3)`` uint8 → ``(3, H, W)`` float32 ``(x/255 − mean)/std``; the ``padding = (bottom, right)``
    pixels are exact zeros (mmdet pads after normalisation)."""
    x = images.normalise(pixels, bundle.cfg.mean, bundle.cfg.std)
    bottom, right = (int(v) for v in padding)
    if bottom:
        x[:, x.shape[1] - bottom:, :] = 0.0
    if right:
        x[:, :, x.shape[2] - right:] = 0.0
    return x


def model_input(bundle: ModelBundle, pixels: np.ndarray, padding: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """``(H, W, 3)`` uint8 → normalised ``(1, 3, H, W)`` float32 tensor on the model's device (:func:`normalised`)."""
    return torch.from_numpy(normalised(bundle, pixels, padding))[None].to(bundle.device)


@st.cache_resource(show_spinner=False)
def trace_store() -> ByteLRU:
    """The server's traces, bounded in bytes (``CROSSFORMER_TRACE_CACHE_MB``, default 768: two CrossFormer-B
    traces at 512 px; with 1024, eight such sessions peaked at 4.1 GB of server memory, with 768 at 3.9 GB)."""
    return ByteLRU(budget_bytes("CROSSFORMER_TRACE_CACHE_MB", 768), name="traces", keep_oversize=True)


def trace(model_id: str, image_key: str, prep_key: str, bundle: ModelBundle,
          pixels: np.ndarray, padding: tuple[int, int] = (0, 0)) -> crossformer.Trace:
    """``forward_trace`` of the model on the prepared image (everything the pages draw), computed once per
    (model, image, preprocessing) and shared read-only by every session (a byte-bounded store: a trace is
    never pickled, so a 400 MiB trace costs nothing to read back on a rerun)."""
    def run() -> crossformer.Trace:
        x = model_input(bundle, pixels, padding)
        t0 = time.perf_counter()
        with st.spinner("Running the model…"), bundle.lock:
            out = bundle.model.forward_trace(x)
        log.info("forward_trace %s %s %s: %.2f s", model_id, image_key[:8], prep_key, time.perf_counter() - t0)
        return out
    return trace_store().get_or_build((model_id, image_key, prep_key), run)


@st.cache_data(max_entries=16, show_spinner=False)
def pyramid(model_id: str, image_key: str, prep_key: str, real_hw: tuple[int, int], _trace: crossformer.Trace) -> list:
    """A backbone's feature pyramid on this input: one :class:`crossformer.analysis.pyramid.StageView` per stage
    (PCA→RGB, channel and token energy), fitted on the tokens of the ``real_hw`` unpadded pixels."""
    from crossformer.analysis.pyramid import pyramid_views
    n = len(_trace.stage_hw)
    return pyramid_views([_trace.stage_map(i)[0] for i in range(n)], [_trace.stage_stride(i) for i in range(n)],
                         real_hw=tuple(real_hw))


@st.cache_data(max_entries=32, show_spinner=False)
def dpb_tables(model_id: str, stage: int, block: int, sizes: tuple[int, ...],
               _bundle: ModelBundle) -> dict[int, np.ndarray]:
    """The block's DPB MLP evaluated at several group sizes: ``{G: ((2G−1)², heads)}``."""
    with _bundle.lock:
        return {G: _bundle.model.dpb_table(stage, block, G).detach().cpu().numpy() for G in sizes}


@st.cache_data(max_entries=16, show_spinner=False)
def trace_head_stats(model_id: str, image_key: str, prep_key: str, _trace: crossformer.Trace) -> dict:
    """:func:`crossformer.analysis.heads.trace_head_stats` of the trace of (model, image, preprocessing): entropy, mean
    distance and DPB share per block × head (``(blocks, max_heads)`` arrays), computed once per input."""
    from crossformer.analysis import heads
    return heads.trace_head_stats(_trace)


def trace_npz(trace_: crossformer.Trace, extra: dict[str, Any] | None = None) -> bytes:
    """The whole trace (``Trace.flat()``) as compressed ``.npz`` bytes."""
    buf = io.BytesIO()
    arrays = dict(trace_.flat())
    for k, v in (extra or {}).items():
        arrays[f"meta.{k}"] = np.asarray(v)
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()
