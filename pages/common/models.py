"""Building the models the app offers, with what to tell the user about each (no Streamlit).

Sources: the shipped demo model (random weights with a warning when its file is missing), a checkpoint
file named at start-up, an uploaded checkpoint, or an official variant with random weights (architecture
only). Loading failures become a :class:`ModelFailure` carrying a readable message, never a traceback.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

import crossformer
from crossformer.variants import variant_label

from .settings import DEMO_WEIGHTS, IMAGENET_CLASSES

log = logging.getLogger(__name__)

DEMO = "crossformer_demo"
#: Official variants offered with random weights, to explore their geometry (G, I, groups per stage).
ARCHITECTURES = tuple(name for name in crossformer.list_models() if name != DEMO)


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """A ready model and what the app shows about it. Shared by every session: never mutated.

    Attributes:
        model_id: stable id of the weights (cache key of every trace computed with them).
        model: the CrossFormer in eval mode on :attr:`device`.
        variant: registry name (``"crossformer_t"`` …) or ``"custom"``.
        label: human name, e.g. "CrossFormer-T (ICLR 2022)".
        family: code family / paper, as detected.
        class_names: one name per output class.
        weights: where the weights come from, in words.
        trained: ``False`` for random weights (predictions are meaningless).
        notes: warnings to show (random fallback, ignored keys …).
        dense_task: ``"mmdet"`` or ``"mmseg"`` for a detection / segmentation backbone (no classes: its output
            is the four stage maps), from the parts of the file that were not used; ``None`` for a classifier.
        lock: serialises passes that attach hooks (captum) so sessions never see each other's hooks.
    """

    model_id: str
    model: Any
    variant: str
    label: str
    family: str
    class_names: tuple[str, ...]
    device: str
    weights: str
    trained: bool
    num_params: int
    notes: tuple[str, ...] = ()
    dense_task: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def cfg(self) -> crossformer.CrossFormerConfig:
        return self.model.cfg

    @property
    def is_demo(self) -> bool:
        return self.variant == DEMO

    @property
    def is_backbone(self) -> bool:
        """A detection/segmentation backbone: no classes, its output is the feature pyramid."""
        return bool(self.model.cfg.backbone)


@dataclass(frozen=True)
class ModelFailure:
    """A model that could not be loaded: the message to show."""

    source: str
    message: str


# ---- class names ----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k names (first WordNet lemma) in sorted-synset order, from ``assets/``."""
    try:
        data = json.loads(IMAGENET_CLASSES.read_text(encoding="utf-8"))
        names = tuple(lemmas.split(",")[0].strip() for _, lemmas in data["classes"])
    except (OSError, ValueError, KeyError) as err:
        log.warning("ImageNet class names unavailable (%s)", err)
        return tuple(f"class {i}" for i in range(1000))
    return names if len(names) == 1000 else tuple(f"class {i}" for i in range(1000))


def class_names_for(cfg: crossformer.CrossFormerConfig, variant: str) -> tuple[str, ...]:
    """Names stored with the weights, else ImageNet for 1000 classes, Navon for the demo, else numbers."""
    n = cfg.num_classes
    if cfg.class_names and len(cfg.class_names) == n:
        return tuple(cfg.class_names)
    if n == 1000:
        return imagenet_class_names()
    if variant == DEMO:
        from crossformer.navon import CLASS_NAMES
        if len(CLASS_NAMES) == n:
            return tuple(CLASS_NAMES)
    return tuple(f"class {i}" for i in range(n))


# ---- building ---------------------------------------------------------------------------------------
def _ready(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Eval mode on ``device``; one tiny forward so the first real image does not pay for kernel set-up."""
    model = model.to(device).eval()
    # no_grad, not inference_mode: the model caches index tensors, and inference tensors would break the
    # attribution methods (autograd) later.
    with torch.no_grad():
        model.forward_trace(torch.zeros(1, 3, 64, 64, device=device))
    return model


def _bundle(model_id: str, model: torch.nn.Module, variant: str, family: str, weights: str, trained: bool,
            notes: list[str], device: torch.device, dense_task: str | None = None) -> ModelBundle:
    model = _ready(model, device)
    label = variant_label(variant, f"custom CrossFormer ({family})")
    if model.cfg.backbone:
        dense_task = dense_task or "mmdet"
        label += " backbone"
    return ModelBundle(model_id=model_id, model=model, variant=variant, label=label, family=family,
                       class_names=class_names_for(model.cfg, variant), device=str(device), weights=weights,
                       trained=trained, num_params=sum(p.numel() for p in model.parameters()),
                       notes=tuple(notes), dense_task=dense_task)


#: Key prefixes of the parts of a segmentor (mmseg) file; any other unused part means a detector (mmdet).
SEGMENTOR_PREFIXES = ("decode_head.", "auxiliary_head.")


def dense_task_of(unused_keys: list[str] | tuple[str, ...]) -> str:
    """``"mmseg"`` when the file's unused keys hold a segmentor's heads, else ``"mmdet"`` (the detector
    preprocessing is the default of a bare backbone, as in the official README)."""
    return "mmseg" if any(k.startswith(SEGMENTOR_PREFIXES) for k in unused_keys) else "mmdet"


def _random_model(name: str) -> torch.nn.Module:
    """A named variant with official-init weights from a fixed seed (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return crossformer.create_model(name)


def demo_model_id(path: Path = DEMO_WEIGHTS) -> str:
    """Id of the demo weights: changes when the file appears or changes."""
    try:
        st_ = path.stat()
        return f"demo:{st_.st_size}:{st_.st_mtime_ns}"
    except OSError:
        return "demo:random"


def build_demo(model_id: str, device: torch.device, path: Path = DEMO_WEIGHTS) -> ModelBundle:
    """The shipped demo model; random weights and a visible warning if its weight file is missing/bad."""
    notes: list[str] = []
    if path.exists():
        try:
            model, info = crossformer.load_checkpoint(path)
            notes.extend(info.notes)
            return _bundle(model_id, model, info.variant if info.variant != "custom" else DEMO,
                           "CrossFormer v1 layout, small",
                           f"trained demo weights ({path.name})", True, notes, device)
        except crossformer.CheckpointError as err:
            notes.append(f"The demo weights could not be loaded ({err}).")
    else:
        notes.append(f"The demo weights ({path.name}) are missing from assets/.")
    notes.append("Using RANDOM weights instead: the pictures of the mechanism are real, "
                 "but predictions are meaningless.")
    return _bundle(model_id, _random_model(DEMO), DEMO, "CrossFormer demo (random weights)",
                   "random weights (demo weights missing)", False, notes, device)


def build_from_checkpoint(model_id: str, source: Path | bytes, name: str,
                          device: torch.device) -> ModelBundle | ModelFailure:
    """A checkpoint file or uploaded bytes → bundle, or a :class:`ModelFailure` with the reason."""
    try:
        model, info = crossformer.load_checkpoint(source)
    except crossformer.CheckpointError as err:
        return ModelFailure(name, f"{name}: {err}")
    except MemoryError:
        return ModelFailure(name, f"{name}: not enough memory to load this checkpoint.")
    notes = list(info.notes)
    if info.unexpected and not model.cfg.backbone:     # a backbone's first note already names the unused parts
        notes.append(f"{len(info.unexpected)} keys in the file are not used by the model.")
    task = dense_task_of(info.unexpected) if model.cfg.backbone else None
    return _bundle(model_id, model, info.variant, info.family, f"{name} ({info.format})", True, notes, device,
                   task)


def build_architecture(model_id: str, variant: str, device: torch.device) -> ModelBundle:
    """An official variant with random weights: real geometry, meaningless predictions."""
    notes = ["Random weights (architecture only): groups, padding and shapes are those of the real "
             "model, but attention patterns and predictions are not. Load the official checkpoint for those."]
    return _bundle(model_id, _random_model(variant), variant, variant_label(variant),
                   "random weights (architecture only)", False, notes, device)
