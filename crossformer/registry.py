"""Model construction: named variants, the official-config bridge, strict official state-dict loading, device."""

from __future__ import annotations

import logging
from typing import Any, Mapping

import torch

from .config import config_from_official
from .model import CrossFormer
from .state_dict import check_against, clean_state_dict
from .variants import get_config

log = logging.getLogger(__name__)


def create_model(name: str, num_classes: int = 1000, **overrides: Any) -> CrossFormer:
    """Build a named variant (see :func:`crossformer.list_models`) with random (official-init) weights.

    ``crossformer_demo`` keeps its own class count unless ``num_classes`` is given explicitly ≠ 1000.
    """
    if name == "crossformer_demo" and num_classes == 1000:
        num_classes = get_config(name).num_classes
    return CrossFormer(get_config(name, num_classes=num_classes, **overrides))


def from_official_config(kwargs: Mapping[str, Any], code_version: str) -> CrossFormer:
    """Build a model from the official ``CrossFormer(**kwargs)`` arguments of the ``"v1"`` or ``"v2"`` code, or
    of the detection/segmentation backbone (``"det"`` / ``"seg"``: no final norm or head, SPEC §7)."""
    return CrossFormer(config_from_official(kwargs, code_version))


def load_official_state_dict(model: CrossFormer, state_dict: Mapping[str, Any]) -> CrossFormer:
    """Load an official state dict **strictly**, after dropping only the recomputable v1 buffers.

    Values may be tensors or numpy arrays. Raises ``ValueError`` naming the first shape mismatch and
    ``RuntimeError`` naming missing/unexpected keys (the filter and the check are :mod:`.state_dict`'s).
    """
    sd = {k: (v if isinstance(v, torch.Tensor) else torch.as_tensor(v))
          for k, v in clean_state_dict(state_dict).items()}
    check_against(model.state_dict(), sd)
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
