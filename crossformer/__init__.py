"""CrossFormer / CrossFormer++ for any input size, with an opt-in trace of everything it computes.

    import crossformer, torch
    model = crossformer.create_model("crossformer_t").eval()
    logits = model(torch.randn(1, 3, 224, 224))
    trace = model.forward_trace(torch.randn(1, 3, 200, 264))      # any size ≥ 32
    trace.block(0, 1).attention.shape                              # (B, groups, heads, G², G²)

Torch-free submodules (``geometry``, ``config``, ``variants``, ``trace``, ``reference``) import without torch: the
names below that need torch are loaded lazily on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import CrossFormerConfig, config_from_official
from .variants import VARIANT_INFO, VARIANT_RECORDS, VARIANTS, Variant, get_config, list_models, variant_label

__all__ = [
    "CrossFormer", "CrossFormerConfig", "Trace", "BlockTrace", "EmbeddingTrace", "GroupLayout",
    "create_model", "list_models", "get_config", "from_official_config", "load_official_state_dict",
    "load_checkpoint", "CheckpointError", "CheckpointInfo", "pick_device", "VARIANTS", "VARIANT_INFO",
    "VARIANT_RECORDS", "Variant", "variant_label",
    "Edit", "head_importance", "pad_input", "InputPadding",
    "fetch_official", "cached_official", "FetchError", "Recorder", "NullRecorder",
]

_LAZY = {
    "CrossFormer": "model", "create_model": "registry", "from_official_config": "registry",
    "load_official_state_dict": "registry", "pick_device": "registry",
    "load_checkpoint": "checkpoint", "CheckpointError": "checkpoint", "CheckpointInfo": "checkpoint",
    "Trace": "trace", "BlockTrace": "trace", "EmbeddingTrace": "trace", "GroupLayout": "geometry",
    "Edit": "edits", "head_importance": "interventions", "pad_input": "model", "InputPadding": "geometry",
    "fetch_official": "fetch", "cached_official": "fetch_cache", "FetchError": "fetch_http",
    "Recorder": "recording", "NullRecorder": "recording",
}

if TYPE_CHECKING:  # pragma: no cover
    from .checkpoint import CheckpointError, CheckpointInfo, load_checkpoint
    from .edits import Edit
    from .fetch import fetch_official
    from .fetch_cache import cached_official
    from .fetch_http import FetchError
    from .geometry import GroupLayout, InputPadding
    from .interventions import head_importance
    from .model import CrossFormer, pad_input
    from .recording import NullRecorder, Recorder
    from .registry import create_model, from_official_config, load_official_state_dict, pick_device
    from .trace import BlockTrace, EmbeddingTrace, Trace


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'crossformer' has no attribute {name!r}")
