"""What a model change does to the user's preprocessing (no Streamlit): it keeps it, unless the model cannot
run on it; then it changes as little as possible and says why in one line."""

from __future__ import annotations

from dataclasses import replace

from .images import Preprocessing


def usable_preprocessing(prep: Preprocessing, min_side: int) -> tuple[Preprocessing, str | None]:
    """``prep`` itself when the model (whose input must be at least ``min_side`` px: one token in its last
    stage) can use it; else the same mode at ``min_side`` and the sentence that says why."""
    if prep.size >= min_side:
        return prep, None
    return replace(prep, size=int(min_side)), (
        f"Shorter side raised from {prep.size} to {min_side} px: this model needs at least {min_side} px "
        "(one token in its last stage).")


def evaluation_hint(prep: Preprocessing, num_classes: int) -> str | None:
    """A line for ImageNet models run with the user's own (aspect-kept) preprocessing: it is kept, and
    where the official one is."""
    if num_classes != 1000 or prep.mode == "official":
        return None
    return ("Your preprocessing is kept. These ImageNet weights were evaluated with the official transform "
            "(resize 256, crop 224): choose it above for predictions as published.")
