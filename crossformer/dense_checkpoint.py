"""Open detection/segmentation checkpoints as the official CrossFormer backbone (SPEC §7, §11).

Three kinds of file reach here through :func:`crossformer.load_checkpoint` (which has already read them safely:
``torch.load(weights_only=True)``, nothing executed):

* an mmdet 2.x / mmseg 0.x file ``{'meta': {...}, 'state_dict': {...}, 'optimizer': {...}}`` whose state dict
  holds ``backbone.*`` keys beside the detector's or segmentor's other parts (``neck.*``, ``rpn_head.*``,
  ``roi_head.*``, ``bbox_head.*``, ``decode_head.*``, ``auxiliary_head.*`` …);
* a bare backbone state dict (the official README saves ``ckpt['model']`` of a classification file as
  ``backbone-crossformer-s.pth``; without ``norm.*``/``head.*`` it is a backbone);
* a classification checkpoint opened "as a backbone" (``load_checkpoint(..., as_backbone=True)``): its final
  norm and head are set aside.

The backbone's own keys load strictly (every key present, none unknown, every shape checked before anything is
copied); everything else is reported in ``info.notes``, never loaded. The architecture is read off the tensors
(by the checkpoint module's own inference, passed in, so this module does not import it back); the grouping is
the official detection configs' (:data:`~crossformer.variants.DET_LAYOUT`). Problems raise :class:`DenseFileError`
(a ``ValueError``), which ``load_checkpoint`` turns into its ``CheckpointError``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

import torch

from .config import CrossFormerConfig
from .model import CrossFormer
from .state_dict import check_complete, split_state_dict
from .variants import DET_LAYOUT, VARIANT_RECORDS

log = logging.getLogger(__name__)

#: ``infer_config(state dict, metadata, buffers) → (variant, config, family, notes)``: the classifier's reading of
#: the tensors (SPEC §12), :func:`crossformer.checkpoint.infer_config`.
InferConfig = Callable[[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]],
                       tuple[str, CrossFormerConfig, str, list[str]]]


class DenseFileError(ValueError):
    """A detector, segmentor or backbone file that cannot be opened as a backbone (the message says why)."""

#: First key components of a CrossFormer state dict (the classifier's ``norm``/``head`` included).
CROSSFORMER_MODULES = ("patch_embed", "layers", "norm", "head")
#: The classifier's parts a backbone has no use for.
CLASSIFIER_PARTS = ("norm", "head")
#: Parts only segmentors have (mmseg's ``EncoderDecoder``): the file is then called a segmentor.
SEGMENTOR_PARTS = ("decode_head", "auxiliary_head")


def _materialise(value: Any) -> torch.Tensor:
    """A tensor from a state-dict entry: a tensor, or a lazily read entry with ``.load()`` (shape known first)."""
    return value if isinstance(value, torch.Tensor) else value.load()


def _strip_module(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module."):]
    return key


def split_parts(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(backbone weights, other parts)``: ``backbone.``-prefixed keys (prefix stripped) go to the backbone when
    there are any, else the keys of CrossFormer's own modules; the rest is grouped by first key component."""
    keys = {_strip_module(k): v for k, v in raw.items()}
    prefixed = any(k.startswith("backbone.") for k in keys)
    backbone: dict[str, Any] = {}
    parts: dict[str, dict[str, Any]] = {}
    for k, v in keys.items():
        first = k.split(".", 1)[0]
        if (k.startswith("backbone.") if prefixed else first in CROSSFORMER_MODULES):
            backbone[k[len("backbone."):] if prefixed else k] = v
        else:
            parts.setdefault(first, {})[k] = v
    return backbone, parts


def is_dense_state_dict(raw: Mapping[str, Any]) -> bool:
    """A detector/segmentor state dict (``backbone.*`` beside other parts) or a bare backbone (a CrossFormer
    without ``norm.*`` and ``head.*``): what :func:`load_backbone` opens."""
    backbone, parts = split_parts(raw)
    if parts and any(_strip_module(k).startswith("backbone.") for k in raw):
        return True
    return ("patch_embed.norm.weight" in backbone and not parts
            and not any(k.split(".", 1)[0] in CLASSIFIER_PARTS for k in backbone))


def describe_part(name: str, tensors: Mapping[str, Any]) -> str:
    """``"neck (FPN, 16 tensors)"``: the part, its kind when the keys tell it, and its size."""
    keys = " ".join(tensors)
    kind = ("FPN" if name == "neck" and "lateral_convs" in keys and "fpn_convs" in keys
            else "PPM + FPN (UPerHead)" if name == "decode_head" and "psp_modules" in keys else "")
    return f"{name} ({kind + ', ' if kind else ''}{len(tensors)} tensor{'s' if len(tensors) != 1 else ''})"


def backbone_config(weights: Mapping[str, Any], meta: Mapping[str, Any], buffers: Mapping[str, Any],
                    infer_config: InferConfig) -> tuple[str, CrossFormerConfig, str, list[str]]:
    """Read the architecture off the backbone's tensors → ``(variant, backbone config, family, notes)``.

    ``weights``: cleaned backbone state dict; ``buffers``: the recomputable v1 keys set aside (they tell the
    code family). Released shapes are named (``crossformer_s`` …); the grouping is :data:`DET_LAYOUT`'s unless
    the file stores this project's config with an explicit interval.
    """
    C3 = None
    n_stages = 0
    while f"layers.{n_stages}.blocks.0.norm1.weight" in weights:
        C3 = int(weights[f"layers.{n_stages}.blocks.0.norm1.weight"].shape[0])
        n_stages += 1
    stand_in = {}
    if C3 is not None:  # the classifier inference wants a head; shapes only, nothing allocated
        stand_in = {"norm.weight": torch.empty(C3, device="meta"), "head.weight": torch.empty(1, C3, device="meta")}
    variant, cfg, family, notes = infer_config({**weights, **stand_in}, meta, buffers)
    stored = "config stored in the file" in family
    if not stored or cfg.interval is None:
        cfg = cfg.replace(**DET_LAYOUT)
        notes.append("grouping of the official detection/segmentation configs: G "
                     f"{'/'.join(map(str, cfg.group_size))}, I {'/'.join(map(str, cfg.interval))} "
                     "(group sizes and intervals cannot be read off the weights)")
    cfg = cfg.replace(backbone=True, num_classes=0, class_names=None)
    record = VARIANT_RECORDS.get(variant)
    if record is not None and not stored:
        family = f"{record.title} detection/segmentation backbone ({record.paper})"
        if not cfg.use_acl:
            notes.append("run with the official detection code (crossformer_backbone_det.py); detectors trained "
                         "with its earlier v1 backbone (crossformer_backbone.py) grouped LDA differently")
    else:
        family = f"{family}, as a detection/segmentation backbone"
    return variant, cfg, family, notes


def _strict_state(model: CrossFormer, weights: Mapping[str, Any], variant: str, name: str) -> dict[str, torch.Tensor]:
    """The backbone's weights, checked key by key and shape by shape against ``model`` before any copy
    (:func:`~crossformer.state_dict.check_complete`), strict on extra backbone keys too."""
    own = model.state_dict()
    try:
        unexpected = check_complete(own, weights, name, f"{variant} backbone")
    except ValueError as err:
        raise DenseFileError(str(err)) from None
    if unexpected:
        raise DenseFileError(f"{name} has {len(unexpected)} backbone keys a {variant} backbone does not have "
                              f"(first: {', '.join(unexpected[:3])})")
    return {k: _materialise(weights[k]).to(torch.float32) for k in own}


def load_backbone(raw: Mapping[str, Any], meta: Mapping[str, Any], name: str,
                  infer_config: InferConfig) -> tuple[CrossFormer, dict[str, Any]]:
    """Build the official detection/segmentation backbone (on the CPU, eval mode) from a safely read state dict.

    Args:
        raw: the file's state dict, keys as stored (``module.``/``backbone.`` prefixes allowed); values are
            tensors or lazily read entries (``.shape``, ``.dtype``, ``.is_floating_point()``, ``.load()``):
            only the backbone's own entries are ever loaded, after every shape has been checked.
        meta, name: metadata and display name from :func:`crossformer.checkpoint.read_state_dict`.
        infer_config: the checkpoint module's architecture inference (:data:`InferConfig`).

    Returns ``(backbone, fields)``: ``fields`` are the ``CheckpointInfo`` fields this module knows (all but
    ``source`` and ``format``); their ``notes`` say which parts were not used. Raises :class:`DenseFileError`
    for anything that is not a complete CrossFormer backbone.
    """
    backbone, parts = split_parts(raw)
    if not backbone:
        raise DenseFileError(f"{name} holds no CrossFormer backbone keys (found parts: "
                              f"{', '.join(parts) or 'none'})")
    head = {k: v for k, v in backbone.items() if k.split(".", 1)[0] in CLASSIFIER_PARTS}
    weights, buffers = split_state_dict({k: v for k, v in backbone.items() if k not in head})
    bad = [k for k, v in weights.items() if not (hasattr(v, "shape") and hasattr(v, "is_floating_point"))]
    if bad:
        raise DenseFileError(f"not a state dict: {bad[0]!r} holds a {type(weights[bad[0]]).__name__}")
    try:
        variant, cfg, family, notes = backbone_config(weights, meta, buffers, infer_config)
    except KeyError as err:
        raise DenseFileError(f"{name} is an incomplete CrossFormer backbone: no {err.args[0]!r}") from None
    try:
        with torch.device("meta"):   # shapes only: nothing allocated or initialised before the check
            model = CrossFormer(cfg)
    except (ValueError, TypeError) as err:
        raise DenseFileError(f"the weights describe an unsupported architecture: {err}") from None
    state = _strict_state(model, weights, variant, name)
    if not all(torch.isfinite(t).all() for t in state.values()):
        notes.append("some weights are NaN or infinite: outputs will be meaningless")
    model.load_state_dict(state, strict=True, assign=True)   # the model has no buffers: every tensor is loaded
    if parts:
        what = "segmentor" if any(p in SEGMENTOR_PARTS for p in parts) else "detector"
        notes.insert(0, f"{what} parts not used: " + ", ".join(describe_part(p, t) for p, t in parts.items()))
    if head:
        notes.insert(0, "classification head not used: " + describe_part("norm, head", head))
    unused = [k for t in parts.values() for k in t] + list(head)
    fields = dict(variant=variant, family=family, code_version=cfg.code_version, config=cfg,
                  num_params=sum(p.numel() for p in model.parameters()), unexpected=unused, dropped=list(buffers),
                  notes=notes, metadata={k: v for k, v in meta.items() if k != "official_config"})
    log.info("loaded %s as a backbone: %s", name, family)
    return model.eval(), fields

