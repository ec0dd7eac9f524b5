"""Named variants, official-config bridge, strict official state-dict loading, device choice."""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping

import torch

from .config import config_from_official, get_config
from .model import CrossFormer

log = logging.getLogger(__name__)

#: Keys of official files that are recomputed here and dropped on load (SPEC §4.4, §11, §12).
RECOMPUTABLE_KEY = re.compile(r"\.attn\.(biases|relative_position_index)$|(^|\.)attn_mask$")


def create_model(name: str, num_classes: int = 1000, **overrides: Any) -> CrossFormer:
    """Build a named variant (see :func:`crossformer.list_models`) with random (official-init) weights.

    ``crossformer_demo`` keeps its own class count unless ``num_classes`` is given explicitly ≠ 1000.
    """
    if name == "crossformer_demo" and num_classes == 1000:
        num_classes = get_config(name).num_classes
    return CrossFormer(get_config(name, num_classes=num_classes, **overrides))


def from_official_config(kwargs: Mapping[str, Any], code_version: str) -> CrossFormer:
    """Build a model from the official ``CrossFormer(**kwargs)`` arguments of the ``"v1"`` or ``"v2"`` code."""
    return CrossFormer(config_from_official(kwargs, code_version))


def clean_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Strip ``module.``/``backbone.`` prefixes and drop the recomputable buffers."""
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        k = key
        for prefix in ("module.", "backbone."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        if RECOMPUTABLE_KEY.search(k):
            continue
        out[k] = value
    return out


def load_official_state_dict(model: CrossFormer, state_dict: Mapping[str, Any]) -> CrossFormer:
    """Load an official state dict **strictly**, after dropping only the recomputable v1 buffers.

    Values may be tensors or numpy arrays. Raises ``RuntimeError`` naming missing/unexpected keys and
    ``ValueError`` naming the first shape mismatch.
    """
    sd = {k: (v if isinstance(v, torch.Tensor) else torch.as_tensor(v))
          for k, v in clean_state_dict(state_dict).items()}
    own = model.state_dict()
    for k, v in sd.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise ValueError(f"shape mismatch for {k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}")
    model.load_state_dict(sd, strict=True)
    return model


def pick_device() -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
