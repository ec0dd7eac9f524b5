"""The models every session shares (``st.cache_resource``: created once per server, never mutated after) and
their NumPy weights for the reference.

``model_id`` names the weights (it carries a file's size and mtime, or an upload's SHA-256), so arguments with
a leading underscore (bytes, bundles) are never hashed on a rerun.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch

import crossformer
from crossformer.state_dict import to_numpy

from . import models
from .models import ModelBundle, ModelFailure


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
    """The model's weights as float32 NumPy arrays under the official names (for the NumPy reference;
    :func:`crossformer.state_dict.to_numpy`)."""
    return to_numpy(_bundle.model)
