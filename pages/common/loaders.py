"""Every cached computation of the app, in one module that is not a page.

* ``st.cache_resource`` holds models (shared by all sessions, never mutated after creation) and their
  NumPy weights.
* Byte-bounded shared stores (:mod:`pages.common.bytecache`) hold one ``forward_trace`` per (model id,
  image digest, preprocessing) and the built figures, unpickled and read-only.
* ``st.cache_data`` (bounded) holds the other per-input results: decoded images, model inputs, DPB
  tables, attributions and NumPy-reference runs. Every page reads these; widgets never re-run the model.

Arguments with a leading underscore are not hashed: the id arguments before them identify the input
fully (``model_id`` names the weights, ``image_key`` is a SHA-256 of the image, ``prep_key`` the
preprocessing), so large arrays and models are never hashed on a rerun.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

import crossformer
from crossformer.geometry import GroupLayout
from viz import export

from . import images, models
from .bytecache import ByteLRU, budget_bytes
from .images import DecodedImage, ImageError, PreparedImage, Preprocessing
from .models import ModelBundle, ModelFailure
from .settings import SAMPLE_SUFFIXES, SAMPLES_DIR

log = logging.getLogger(__name__)


def digest(data: bytes) -> str:
    """Short SHA-256 hex digest used as a cache key for bytes."""
    return hashlib.sha256(data).hexdigest()[:32]


# ---- models (shared resources) ----------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def device() -> torch.device:
    """The device every model runs on: CUDA, then MPS, then CPU."""
    return crossformer.pick_device()


@st.cache_resource(max_entries=2, show_spinner="Loading the demo model…")
def demo_model(model_id: str) -> ModelBundle:
    """The shipped demo model (random weights with a warning when its file is missing)."""
    return models.build_demo(model_id, device())


@st.cache_resource(max_entries=2, show_spinner="Loading the checkpoint…")
def checkpoint_file_model(model_id: str, path: str) -> ModelBundle | ModelFailure:
    """A checkpoint named at start-up (``model_id`` carries its size and mtime)."""
    p = Path(path)
    if not p.is_file():
        return ModelFailure(p.name, f"checkpoint file not found: {p}")
    return models.build_from_checkpoint(model_id, p, p.name, device())


@st.cache_resource(max_entries=2, show_spinner="Loading the uploaded checkpoint…")
def uploaded_model(model_id: str, name: str, _data: bytes) -> ModelBundle | ModelFailure:
    """An uploaded checkpoint (``model_id`` carries the SHA-256 of the bytes)."""
    return models.build_from_checkpoint(model_id, _data, name, device())


@st.cache_resource(max_entries=2, show_spinner="Building the architecture…")
def architecture_model(variant: str) -> ModelBundle:
    """An official variant with random weights (geometry only)."""
    return models.build_architecture(f"random:{variant}", variant, device())


@st.cache_resource(max_entries=2, show_spinner=False)
def numpy_weights(model_id: str, _bundle: ModelBundle) -> dict[str, np.ndarray]:
    """The model's weights as float32 NumPy arrays under the official names (for the NumPy reference)."""
    return {k: v.detach().to("cpu", torch.float32).numpy() for k, v in _bundle.model.state_dict().items()}


# ---- images -----------------------------------------------------------------------------------------
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


# ---- the forward pass (one per model × image × preprocessing) ------------------------------------------------
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


@st.cache_resource(show_spinner=False)
def figure_store() -> ByteLRU:
    """The server's built figures, bounded in bytes (``CROSSFORMER_FIGURE_CACHE_MB``, default 256)."""
    return ByteLRU(budget_bytes("CROSSFORMER_FIGURE_CACHE_MB", 256), name="figures")


class _Trimmed:
    """How many evicted bytes of the stores had been handed back at the last :func:`release_memory`."""

    def __init__(self) -> None:
        self.evicted = 0
        self.lock = threading.Lock()


@st.cache_resource(show_spinner=False)
def memory_policy() -> _Trimmed:
    """Once per server: malloc arenas shared by the script threads (:func:`pages.common.malloc.limit_arenas`)."""
    from . import malloc
    malloc.limit_arenas(2)
    return _Trimmed()


def release_memory() -> None:
    """At the end of a run: when the trace or figure store evicted a MiB or more since the last time, return
    the freed pages to the OS (:func:`pages.common.malloc.trim`; the run's own references are gone by now)."""
    from . import malloc
    state = memory_policy()
    evicted = trace_store().evicted_bytes + figure_store().evicted_bytes + heavy_store().evicted_bytes
    with state.lock:
        if evicted - state.evicted < 2**20:
            return
        state.evicted = evicted
    t0 = time.perf_counter()
    released = malloc.trim()
    log.info("malloc_trim after %.0f MiB evicted: %s (%.1f ms)", evicted / 2**20,
             "memory returned" if released else "nothing to return", (time.perf_counter() - t0) * 1e3)


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


# ---- figures ------------------------------------------------------------------------------------------------
_ARRAY_HASH_LIMIT = 64 << 20     # larger arrays are not hashed for a figure key (pass their block instead)


def _trace_part(obj: Any) -> tuple | None:
    """``(trace key, where)`` of a trace, or of one of its blocks / embeddings, held by the trace store."""
    def holds(t: crossformer.Trace) -> bool:
        return obj is t or obj is t.embedding or any(obj is m for m in t.merges) or any(
            obj is b for b in t.all_blocks())
    key = trace_store().find_key(holds)
    if key is None:
        return None
    if isinstance(obj, crossformer.BlockTrace):
        return key, ("block", obj.stage, obj.index)
    if isinstance(obj, crossformer.EmbeddingTrace):
        return key, ("embedding", obj.input_stride)
    return key, ("trace",)


def figure_key(value: Any) -> Hashable:
    """A hashable fingerprint of a figure builder's argument, or ``None`` when it cannot have one.

    Numbers, strings, ``None`` and tuples, lists, dicts and dataclasses of them stand for themselves; a NumPy
    array for its shape, dtype and a hash of its bytes; a :class:`~crossformer.geometry.GroupLayout` for what defines it (kind, map
    size, G, I); a trace, block or embedding for the trace-store key of the trace it belongs to (so the
    same block of two different images never shares a figure).
    """
    if value is None or isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        return value
    if isinstance(value, (tuple, list)):
        parts = tuple(figure_key(v) for v in value)
        return None if any(p is None and v is not None for p, v in zip(parts, value)) else ("seq", parts)
    if isinstance(value, np.ndarray):
        if value.nbytes > _ARRAY_HASH_LIMIT:
            return None
        digest = hashlib.blake2b(np.ascontiguousarray(value).view(np.uint8).data, digest_size=16).hexdigest()
        return ("array", value.shape, value.dtype.str, digest)
    if isinstance(value, GroupLayout):
        return ("layout", value.kind, value.feature_hw, value.group_size, value.interval)
    if isinstance(value, (crossformer.Trace, crossformer.BlockTrace, crossformer.EmbeddingTrace)):
        return _trace_part(value)
    if isinstance(value, dict):
        items = sorted(((figure_key(k), figure_key(v)) for k, v in value.items()), key=repr)
        return None if any(kk is None or vk is None for kk, vk in items) else ("dict", tuple(items))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = tuple((f.name, figure_key(getattr(value, f.name))) for f in dataclasses.fields(value))
        return None if any(k is None and getattr(value, n) is not None for n, k in fields) else (
            type(value).__qualname__, fields)
    return None


def built_figure(builder: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``builder(*args, **kwargs)``, built once per builder and arguments and shared read-only by every
    session; the cache key comes from the arguments themselves (:func:`figure_key`). Arguments without a
    fingerprint (a trace that is no longer cached, a huge array) make the figure build uncached."""
    parts = [figure_key(a) for a in args] + [(k, figure_key(v)) for k, v in sorted(kwargs.items())]
    unkeyed = [a for a, p in zip(args, parts) if p is None and a is not None] + [
        k for k, v in kwargs.items() if v is not None and figure_key(v) is None]
    if unkeyed:
        log.debug("figure %s built uncached (no key for %d argument(s))", builder.__qualname__, len(unkeyed))
        return export.responsive(builder(*args, **kwargs))
    key = (f"{builder.__module__}.{builder.__qualname__}", *parts)
    return figure_store().get_or_build(key, lambda: export.responsive(builder(*args, **kwargs)))


def display_figure(fig: Any) -> Any:
    """The plotly figure that ``st.plotly_chart`` is given: one without a layout pixel width, so the chart
    always takes its column's width (with it, the browser sometimes kept the figure's own width: a 1210-px
    SDA-vs-LDA figure overflowed its 940-px column on 2 of 4 loads).

    Figures from :func:`built_figure` are already so (:func:`viz.export.responsive`, applied once when
    built; the exports still find the width) and are shown as they are. Any other figure with a width is
    shown through a width-less copy, made once per figure (unvalidated) and kept in the figure store."""
    if getattr(getattr(fig, "layout", None), "width", None) is None:
        return fig

    def copy() -> tuple[Any, Any]:
        return fig, export.responsive(go.Figure(fig.to_dict(), _validate=False))

    key = ("display", id(fig))
    store = figure_store()
    kept = store.get_or_build(key, copy)
    if kept[0] is not fig:          # the id of an evicted figure, reused by this one
        kept = store.put(key, copy())
    return kept[1]


# ---- heavy extras, on demand ------------------------------------------------------------------------------
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
    """The cost model's :class:`~pages.common.heavy.Timings` for this model and ``engine`` (``"fp32"``, ``"bf16"``
    or ``"numpy"``), or ``None`` while they are still being measured: measured once per server in a background
    thread (:func:`heavy.calibrations`), so no script run waits for them."""
    from . import heavy
    weights = numpy_weights(model_id, _bundle=_bundle) if engine == "numpy" else None   # the page's cached copy
    return heavy.calibrations().get((model_id, engine), lambda: heavy.measure(_bundle, engine, weights=weights))


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
    from viz import attribution as attr

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
            total = float(np.abs(values.sum()))
            note = (f"{param} steps in {used}; convergence delta {delta:.3g} ({delta / max(total, 1e-12):.1%} of "
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


# ---- exports -----------------------------------------------------------------------------------------------
def trace_npz(trace_: crossformer.Trace, extra: dict[str, Any] | None = None) -> bytes:
    """The whole trace (``Trace.flat()``) as compressed ``.npz`` bytes."""
    import io
    buf = io.BytesIO()
    arrays = dict(trace_.flat())
    for k, v in (extra or {}).items():
        arrays[f"meta.{k}"] = np.asarray(v)
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


# ---- A/B compare (pages/common/compare.py) -------------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner=False)
def head_stats(model_id: str, image_key: str, prep_key: str, _trace: crossformer.Trace) -> dict:
    """:func:`viz.diagnostics.block_head_stats` of the trace of (model, image, preprocessing): entropy, mean
    distance and DPB share per block × head (``(blocks, max_heads)`` arrays), computed once per input."""
    from viz.diagnostics import block_head_stats
    return block_head_stats(_trace)


# ---- dataset statistics (the Dataset statistics page) -------------------------------------------------------
@dataclass(frozen=True, eq=False)
class StatsResult:
    """A :class:`viz.stats_figures.StatsSummary` with what to say about its source, or why there is none."""

    summary: Any | None
    source: str
    error: str | None = None
    seconds: float = 0.0


@st.cache_data(max_entries=8, show_spinner=False)
def stats_from_csv(csv_key: str, name: str, _data: bytes, max_rows: int) -> StatsResult:
    """A statistics CSV (``csv_key``: digest of the bytes) → its summary, or the reason it is not one.
    Only the small summary is cached, never the parsed rows."""
    from crossformer.stats import StatsFormatError, read_csv
    from viz.stats_figures import summarise

    t0 = time.perf_counter()
    try:
        text = _data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return StatsResult(None, name, f"{name} is not a text (UTF-8) CSV file.")
    try:
        summary = summarise(read_csv(text, max_rows=max_rows))
    except StatsFormatError as err:
        return StatsResult(None, name, f"{name}: {err}")
    except Exception as err:  # noqa: BLE001 - a broken file must never stop the page
        log.warning("stats CSV %s: %s", name, err)
        return StatsResult(None, name, f"{name} could not be read as a statistics CSV ({type(err).__name__}).")
    return StatsResult(summary, f"upload: {name}", seconds=time.perf_counter() - t0)


@st.cache_data(max_entries=4, show_spinner=False)
def stats_for_samples(model_id: str, size: int, _bundle: ModelBundle) -> StatsResult:
    """``crossformer.stats.head_stats`` of the model on every shipped sample image (resized to
    ``size × size``, batches of 4, bf16 where native), summarised."""
    from crossformer.stats import FIELDS, head_stats, load_image
    from viz.stats_figures import summarise

    files = sample_files()
    t0 = time.perf_counter()
    rows: list[dict] = []
    mean = torch.tensor(_bundle.cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(_bundle.cfg.std).view(1, 3, 1, 1)
    names = list(files)
    for i in range(0, len(names), 4):
        chunk = names[i:i + 4]
        x = (torch.from_numpy(np.stack([load_image(Path(files[n]), size, False) for n in chunk])) - mean) / std
        with _bundle.lock:
            rows += head_stats(_bundle.model, x.to(_bundle.device), precision="auto", image_ids=chunk)
    if not rows:
        return StatsResult(None, "samples", "No sample images are shipped in assets/samples.")
    columns = {f: np.asarray([r[f] for r in rows]) for f in FIELDS}
    return StatsResult(summarise(columns), f"the {len(names)} shipped samples at {size}×{size}",
                       seconds=time.perf_counter() - t0)
