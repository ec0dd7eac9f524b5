"""The heavy extras, on demand: attribution maps, the NumPy reference run, the cost model's calibration and
the store their finished results live in (shared by every session, bounded in bytes).

Not cached here: :func:`pages.common.heavy.action` runs them (with an estimate, progress and cancel) and puts
only complete results in :func:`heavy_store`, so a cancelled run leaves nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import streamlit as st

import crossformer

from .bytecache import ByteLRU, budget_bytes
from .model_loaders import numpy_weights
from .models import ModelBundle
from .traces import model_input, normalised


@dataclass(frozen=True, eq=False)
class Attribution:
    """An attribution map and what to say about it."""

    values: np.ndarray        # (H, W) or (H_i, W_i) for Grad-CAM
    signed: bool
    seconds: float
    note: str = ""


@st.cache_resource(show_spinner=False)
def heavy_store() -> ByteLRU:
    """Finished heavy results (attributions, faithfulness curves, NumPy reference runs, head scans), shared by
    every session and bounded in bytes (``CROSSFORMER_HEAVY_CACHE_MB``, default 256). Only complete
    results are put here (:func:`pages.common.heavy.action`): a cancelled run leaves nothing."""
    return ByteLRU(budget_bytes("CROSSFORMER_HEAVY_CACHE_MB", 256), name="heavy results")


def calibration(model_id: str, engine: str, _bundle: ModelBundle) -> Any:
    """The cost model's :class:`~pages.common.estimates.Timings` for this model and ``engine`` (``"fp32"``,
    ``"bf16"`` or ``"numpy"``), or ``None`` while they are still being measured: measured once per server in a
    background thread (:func:`pages.common.calibrate.calibrations`), so no script run waits for them."""
    from . import calibrate
    weights = numpy_weights(model_id, _bundle=_bundle) if engine == "numpy" else None   # the page's cached copy
    return calibrate.calibrations().get((model_id, engine),
                                        lambda: calibrate.measure(_bundle, engine, weights=weights))


def attribution_key(method: str, model_id: str, image_key: str, prep_key: str, target: int, param: int,
                    feature: Any = None) -> tuple:
    """The :func:`heavy_store` key of one attribution map (``feature``: a backbone's
    :class:`crossformer.feature_score.FeatureScore`, explained instead of a class)."""
    return ("attr", method, model_id, image_key, prep_key, int(target), int(param)) + (
        () if feature is None else (feature,))


def attribution(method: str, bundle: ModelBundle, pixels: np.ndarray, target: int, param: int,
                progress: Callable[[int, int], None] | None = None, padding: tuple[int, int] = (0, 0),
                feature: Any = None) -> Attribution:
    """Integrated gradients (``param`` = steps), Grad-CAM (``param`` = stage) or occlusion (``param`` =
    window in pixels) for class ``target`` (a backbone: ``feature``, a
    :class:`~crossformer.feature_score.FeatureScore`, with ``target`` 0), batched and in bf16 where native (:mod:`crossformer.precision`).
    Runs under the model's lock (captum attaches hooks); not cached here: callers store finished maps in
    :func:`heavy_store` under :func:`attribution_key`."""
    from crossformer.precision import resolve
    from crossformer import attribution as attr

    x = model_input(bundle, pixels, padding)
    used = resolve("auto", bundle.device)
    t0 = time.perf_counter()
    note = ""
    model = bundle.model if feature is None else feature.module(bundle.model)    # a backbone: one feature's score
    with bundle.lock:
        if method == "ig":
            values, delta = attr.integrated_gradients(model, x, target, steps=param, precision=used,
                                                      progress=progress)
            signed = True
            note = (f"{param} steps in {used}; convergence delta {delta:.3g} "
                    f"({attr.delta_share(values, delta):.1%} of "
                    "the attributions' total: how far their sum is from the output's change — more steps lower it)")
        elif method == "gradcam":
            values, signed = attr.grad_cam(model, x, target, stage=param), False
            if progress is not None:
                progress(1, 1)
        elif method == "occlusion":
            values = attr.occlusion(model, x, target, window=param, stride=param, precision=used,
                                    progress=progress)
            signed = True
            note = f"Precision {used}."
        else:
            raise ValueError(f"unknown attribution method {method!r}")
    return Attribution(np.asarray(values, dtype=np.float32), signed, time.perf_counter() - t0, note)


@dataclass(frozen=True, eq=False)
class ReferenceRun:
    """The NumPy reference on one input, compared field by field with the PyTorch trace."""

    logits: np.ndarray                  # (1, classes)
    flat: dict[str, np.ndarray]         # same names as Trace.flat()
    errors: dict[str, float]            # max |torch − numpy| per field
    seconds: float


def reference_run(model_id: str, bundle: ModelBundle, pixels: np.ndarray, trace_: crossformer.Trace,
                  progress: Callable[[int, int], None] | None = None,
                  padding: tuple[int, int] = (0, 0)) -> ReferenceRun:
    """Run :func:`crossformer.reference.forward` (fp32) on the same input and compare with the trace; not
    cached here: the page stores finished runs in :func:`heavy_store`."""
    from crossformer import reference

    x = normalised(bundle, pixels, padding)[None]                          # (1, 3, H, W)
    weights = numpy_weights(model_id, bundle)
    t0 = time.perf_counter()
    logits, flat = reference.forward(weights, x, bundle.cfg, progress=progress)
    seconds = time.perf_counter() - t0
    errors = reference.compare(trace_.flat(), flat)
    return ReferenceRun(np.asarray(logits), {k: np.asarray(v) for k, v in flat.items()}, errors, seconds)
