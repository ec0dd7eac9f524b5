"""What a model change does to the user's preprocessing (no Streamlit): it keeps it, unless the model cannot
run on it; then it changes as little as possible and says why in one line.

Detection / segmentation backbones (SPEC §7) run at the detector's resolution: their default is the mmdet test
pipeline (shorter side 800, longer ≤ 1333; mmseg: 512 / 2048), and whatever the user chose is padded to a
multiple of 32 (mmdet's ``Pad``), because every stage map must halve evenly.
"""

from __future__ import annotations

from dataclasses import replace

from .dense_prep import DENSE_SCALES, PAD_DIVISOR
from .images import Preprocessing

#: The preprocessing choices, in words (sidebar radio labels).
PREP_LABELS = {"official": "Official eval: resize 256, crop 224", "aspect": "Keep aspect ratio"}
DENSE_LABELS = {"mmdet": "Detector (mmdet): shorter 800, longer ≤ 1333, pad to 32",
                "mmseg": "Segmentor (mmseg): shorter 512, longer ≤ 2048, pad to 32"}
#: The size slider's maximum: classifiers 512 px; backbones 1344 (800 × 1333 padded is 800 × 1344: the slider
#: reaches the detector's own long side when a user wants the whole image at full size).
MAX_SIZE = 512
MAX_BACKBONE_SIZE = 1344


def labels(backbone: bool) -> dict[str, str]:
    """The preprocessing modes offered for a model (``backbone``: the detector's and segmentor's first)."""
    return {**DENSE_LABELS, **PREP_LABELS} if backbone else dict(PREP_LABELS)


def default_mode(backbone: bool, dense_task: str | None, demo: bool) -> str:
    """The preprocessing a model starts with: its detector's / segmentor's, the demo's aspect mode, or official."""
    if backbone:
        return dense_task if dense_task in DENSE_SCALES else "mmdet"
    return "aspect" if demo else "official"


def default_size(mode: str) -> int:
    """The shorter side a mode starts at (800 for mmdet, 512 for mmseg, 224 otherwise)."""
    return DENSE_SCALES[mode][0] if mode in DENSE_SCALES else 224


def max_size(backbone: bool) -> int:
    return MAX_BACKBONE_SIZE if backbone else MAX_SIZE


def usable_preprocessing(prep: Preprocessing, min_side: int, backbone: bool = False) -> tuple[Preprocessing, str | None]:
    """``prep`` itself when the model (whose input must be at least ``min_side`` px: one token in its last
    stage) can use it; else the same mode changed as little as possible and the sentence that says why.

    ``backbone``: the input is padded to a multiple of 32 (said in a line when the user's own mode would not
    pad: the dense modes pad by definition); a classifier never pads."""
    why = None
    if prep.size < min_side:
        prep, why = replace(prep, size=int(min_side)), (
            f"Shorter side raised from {prep.size} to {min_side} px: this model needs at least {min_side} px "
            "(one token in its last stage).")
    if backbone and prep.pad != PAD_DIVISOR:
        if prep.mode not in DENSE_SCALES and why is None:
            why = (f"Padded to a multiple of {PAD_DIVISOR} px (bottom and right, as mmdet does): a backbone's four "
                   "stage maps must halve evenly.")
        prep = replace(prep, pad=PAD_DIVISOR)
    elif not backbone and prep.pad != 1:
        prep = replace(prep, pad=1)
    return prep, why


def evaluation_hint(prep: Preprocessing, num_classes: int) -> str | None:
    """A line for ImageNet models run with the user's own (aspect-kept) preprocessing: it is kept, and
    where the official one is."""
    if num_classes != 1000 or prep.mode == "official":
        return None
    return ("Your preprocessing is kept. These ImageNet weights were evaluated with the official transform "
            "(resize 256, crop 224): choose it above for predictions as published.")
