"""Dataset statistics for the Dataset statistics page, cached per source (``st.cache_data``, bounded): an
uploaded statistics CSV, or the model's head statistics on the shipped samples. Only the small summaries are
cached, never the parsed rows."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch

from .image_loaders import sample_files
from .models import ModelBundle

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class StatsResult:
    """A :class:`crossformer.analysis.dataset.StatsSummary` with what to say about its source, or why there is none."""

    summary: Any | None
    source: str
    error: str | None = None
    seconds: float = 0.0


@st.cache_data(max_entries=8, show_spinner=False)
def stats_from_csv(csv_key: str, name: str, _data: bytes, max_rows: int) -> StatsResult:
    """A statistics CSV (``csv_key``: digest of the bytes) → its summary, or the reason it is not one.
    Only the small summary is cached, never the parsed rows."""
    from crossformer.stats import StatsFormatError, read_csv
    from crossformer.analysis.dataset import summarise

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
    ``size × size``, batches of 4, bf16 where native), summarised. Each image is read as the statistics CLI
    reads it (:func:`crossformer.images.load_model_input`)."""
    from crossformer.images import Preprocessing, load_model_input
    from crossformer.stats import FIELDS, head_stats
    from crossformer.analysis.dataset import summarise

    files = sample_files()
    t0 = time.perf_counter()
    rows: list[dict] = []
    prep = Preprocessing("square", int(size))
    mean, std = _bundle.cfg.mean, _bundle.cfg.std
    names = list(files)
    for i in range(0, len(names), 4):
        chunk = names[i:i + 4]
        x = torch.from_numpy(np.stack([load_model_input(Path(files[n]), prep, mean, std) for n in chunk]))
        with _bundle.lock:
            rows += head_stats(_bundle.model, x.to(_bundle.device), precision="auto", image_ids=chunk)
    if not rows:
        return StatsResult(None, "samples", "No sample images are shipped in assets/samples.")
    columns = {f: np.asarray([r[f] for r in rows]) for f in FIELDS}
    return StatsResult(summarise(columns), f"the {len(names)} shipped samples at {size}×{size}",
                       seconds=time.perf_counter() - t0)
