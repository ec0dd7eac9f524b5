"""The one state-dict filter and strict check every loader uses (SPEC §4.4, §11, §12).

Official files may wrap keys in ``module.`` (DataParallel) or ``backbone.`` (detection code) prefixes and,
from the v1 code, carry buffers this implementation recomputes (``attn.biases``,
``attn.relative_position_index``, ``attn_mask``). :func:`split_state_dict` strips the prefixes and sets those
buffers aside; :func:`check_against` compares what is left with a model's own state dict, key by key and
shape by shape, so both :func:`crossformer.load_official_state_dict` and
:func:`crossformer.load_checkpoint` accept and refuse exactly the same files.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

#: Keys of official files that are recomputed here and dropped on load.
RECOMPUTABLE_KEY = re.compile(r"\.attn\.(biases|relative_position_index)$|(^|\.)attn_mask$")
#: Wrapper prefixes stripped from every key (repeatedly: ``module.module.`` occurs in the wild).
WRAPPER_PREFIXES = ("module.", "backbone.")


def strip_prefixes(key: str) -> str:
    """``"module.backbone.layers.0…"`` → ``"layers.0…"``."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def split_state_dict(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Strip the prefixes → ``(weights, recomputable buffers)``, both keyed by the stripped names."""
    weights: dict[str, Any] = {}
    buffers: dict[str, Any] = {}
    for key, value in state_dict.items():
        k = strip_prefixes(key)
        (buffers if RECOMPUTABLE_KEY.search(k) else weights)[k] = value
    return weights, buffers


def clean_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Strip ``module.``/``backbone.`` prefixes and drop the recomputable buffers."""
    return split_state_dict(state_dict)[0]


def check_against(own: Mapping[str, Any], weights: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Compare a cleaned state dict with a model's → ``(missing, unexpected)`` key lists.

    Raises ``ValueError`` naming the first key whose shape differs (``own`` and ``weights`` map keys to
    anything with a ``.shape``).
    """
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    for k, v in own.items():
        if k in weights and tuple(weights[k].shape) != tuple(v.shape):
            raise ValueError(f"shape mismatch for {k}: checkpoint {tuple(weights[k].shape)} vs model "
                             f"{tuple(v.shape)}")
    return missing, unexpected


def check_complete(own: Mapping[str, Any], weights: Mapping[str, Any], name: str, what: str) -> list[str]:
    """:func:`check_against`, then every key of ``own`` present with floating-point values → the keys of
    ``weights`` the model does not use.

    Raises ``ValueError`` naming the first shape mismatch, the missing keys (``name``: the file, ``what``: the
    model, e.g. ``"crossformer_s"``) or a non-float entry. Entries need ``.shape`` and ``.is_floating_point()``.
    """
    try:
        missing, unexpected = check_against(own, weights)
    except ValueError as err:
        raise ValueError(f"{err} ({what})") from None
    if missing:
        raise ValueError(f"{name} lacks {len(missing)} of the model's {len(own)} weights "
                         f"(first: {', '.join(missing[:3])}); it is not a complete {what} checkpoint")
    bad = [k for k in own if not weights[k].is_floating_point()]
    if bad:
        raise ValueError(f"{bad[0]} holds {weights[bad[0]].dtype} values, expected floating point weights")
    return unexpected


def to_numpy(model: Any) -> dict[str, Any]:
    """A model's weights as float32 NumPy arrays under the official names: the plain dict the NumPy reference
    (:func:`crossformer.reference.forward`) takes. The one conversion; every caller that needs it uses this."""
    return {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
