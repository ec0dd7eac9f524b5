"""One value for "an input": an image, a model, a preprocessing and the model's trace on that image.

:func:`build_input` is the one way to make one, for A (the sidebar: :func:`pages.common.sidebar.render`) and
for B (the A/B compare: :func:`pages.common.compare.choose`) alike. Both choose their image, model and
preprocessing with the same sections (:mod:`pages.common.image_section`, :mod:`pages.common.model_section`,
:func:`pages.common.sidebar.prep_section`), told apart by a :class:`Side`: the prefix of their widget keys and
the wording that differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import crossformer

from . import image_loaders, prep_policy, traces
from .images import DecodedImage, PreparedImage, Preprocessing
from .models import ModelBundle


@dataclass(frozen=True)
class Side:
    """Whose widgets a section draws: A's (the sidebar) or B's (the A/B compare).

    Attributes:
        prefix: widget keys are ``f"{prefix}_{name}"`` (``sb_source``, ``cmp_source`` …).
        words: ``(A's text, this side's text)`` pairs: labels and messages that read differently for B.
        navon: the Navon generator's default ``(global shape, local shape)``.
        source_label: visibility of the image-source radio's label (A's sits under an "Image" heading).
    """

    prefix: str
    words: tuple[tuple[str, str], ...] = ()
    navon: tuple[str, str] = ("triangle", "square")
    source_label: str = "collapsed"

    def key(self, name: str) -> str:
        """The widget (or choice) key ``name`` of this side."""
        return f"{self.prefix}_{name}"

    def says(self, text: str) -> str:
        """A's ``text`` as this side words it."""
        return dict(self.words).get(text, text)


@dataclass(frozen=True, eq=False)
class ImageChoice:
    """An image chosen by an image section: ``key`` (SHA-256 of the bytes, or the generator's parameters)
    identifies it in every cache; ``name`` is its caption; ``expected`` the true class when known (Navon)."""

    key: str
    name: str
    decoded: DecodedImage
    expected: str | None = None


@dataclass(frozen=True, eq=False)
class Input:
    """An image, a model, a preprocessing and the model's trace on them (read-only, shared through the
    loaders' caches).

    Attributes:
        image: the image chosen (original size).
        bundle: the model and what to say about it.
        prep: the preprocessing, as the model can run it (:func:`prep_policy.usable_preprocessing`).
        prepared: the pixels the model sees, ``(H, W, 3)`` uint8.
        trace: ``forward_trace`` of the model on them.
        prep_note: why ``prep`` differs from the one chosen, or ``None``.
    """

    image: ImageChoice
    bundle: ModelBundle
    prep: Preprocessing
    prepared: PreparedImage
    trace: crossformer.Trace
    prep_note: str | None = None

    @property
    def image_key(self) -> str:
        return self.image.key

    @property
    def expected(self) -> str | None:
        """The true class when known and the model is the demo's (Navon figures), else ``None``."""
        return self.image.expected if self.bundle.is_demo else None

    @property
    def pixels(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 model input."""
        return self.prepared.pixels

    @property
    def prep_key(self) -> str:
        return self.prep.key

    @property
    def model_id(self) -> str:
        return self.bundle.model_id

    @property
    def label(self) -> str:
        """The input in words: image · model · input size."""
        h, w = self.prepared.hw
        return f"{self.image.name} · {self.bundle.label} · input {h}×{w}"

    def stride(self, stage: int) -> int:
        """Input pixels per token side at ``stage``."""
        return self.trace.stage_stride(stage)

    def same_as(self, other: Input) -> bool:
        """Whether ``other`` is the same input (same model, image and preprocessing: the same trace)."""
        return (self.model_id, self.image_key, self.prep_key) == (other.model_id, other.image_key, other.prep_key)


def build_input(image: ImageChoice, bundle: ModelBundle, prep: Preprocessing) -> Input:
    """The image prepared as ``bundle`` can run it and the model's trace on it (computed once per model, image
    and preprocessing, :func:`pages.common.traces.trace`). Raises whatever the forward pass raises; the
    caller says so."""
    prep, why = prep_policy.usable_preprocessing(prep, bundle.cfg.min_input_side, bundle.is_backbone)
    prepared = image_loaders.prepared(image.key, prep.mode, prep.size, _rgb=image.decoded.rgb, pad=prep.pad)
    trace = traces.trace(bundle.model_id, image.key, prep.key, bundle, prepared.pixels, prepared.padding)
    return Input(image, bundle, prep, prepared, trace, why)
