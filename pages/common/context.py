"""What every page works on: the model, the image, its preprocessing and the cached trace.

Data and query state only: :mod:`pages.common.startup` builds one :class:`AppContext` per run from the
sidebar and pages read it with ``startup.page_context()``. The shared query (the token the
attention and embedding views look at) is stored as a pixel of the model input, so every stage maps it
to its own token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import streamlit as st

import crossformer
from crossformer.analysis.findings import DefaultQuery, Readout, default_query
from crossformer.analysis.tokens import pixel_of_token, token_of_pixel

from .images import DecodedImage, PreparedImage, Preprocessing
from .models import ModelBundle

QUERY_KEY = "query_px"


@dataclass(frozen=True, eq=False)
class AppContext:
    """One run's inputs and the trace every page reads.

    Attributes:
        bundle: the model and what to say about it.
        image_key: SHA-256 (or generator parameters) identifying the image.
        image_name: caption, e.g. ``"upload: cat.jpg"``.
        decoded: the decoded image (original size).
        prep: the preprocessing chosen.
        prepared: the pixels the model sees.
        trace: ``forward_trace`` of the model on them.
        expected: the true class when known (Navon figures), else ``None``.
        errors: messages to show above the page (a bad upload, a checkpoint that failed).
    """

    bundle: ModelBundle
    image_key: str
    image_name: str
    decoded: DecodedImage
    prep: Preprocessing
    prepared: PreparedImage
    trace: crossformer.Trace
    expected: str | None = None
    errors: tuple[str, ...] = field(default=())

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

    def stride(self, stage: int) -> int:
        """Input pixels per token side at ``stage``."""
        return self.trace.stage_stride(stage)

    def query_token(self, stage: int) -> tuple[int, int]:
        """The shared query as a token ``(h, w)`` of ``stage``."""
        return token_of_pixel(query_pixel(self), self.trace.stage_hw[stage], self.stride(stage))


def query_pixel(ctx: AppContext) -> tuple[int, int]:
    """The shared query pixel ``(y, x)``, clamped to the model input.

    Until the user picks one it is :func:`default_query_token`'s token (its centre pixel).
    """
    H, W = ctx.prepared.hw
    q = st.session_state.get(QUERY_KEY)
    if q is None:
        q = pixel_of_token(default_query_token(ctx), ctx.stride(0))
    return min(max(int(q[0]), 0), H - 1), min(max(int(q[1]), 0), W - 1)


def default_query_token(ctx: AppContext) -> tuple[int, int]:
    """The informative default query, a stage-0 token ``(h, w)`` (:func:`_default_query`)."""
    return _default_query(ctx).token


def _default_query(ctx: AppContext) -> DefaultQuery:
    """:func:`crossformer.analysis.findings.default_query` of this run: on the predicted object with ImageNet
    weights (trained, 1000 classes), else the most distinctive token of the cross-scale embedding."""
    model = ctx.bundle.model
    readout = None
    if ctx.bundle.trained and model.cfg.num_classes == 1000:
        readout = Readout(*(t.detach().float().cpu().numpy() for t in (model.norm.weight, model.norm.bias,
                                                                       model.head.weight)), eps=model.norm.eps)
    return default_query(ctx.trace, readout, ctx.bundle.class_names)


def default_query_reason(ctx: AppContext) -> str | None:
    """One line on why the query is where it is, while it is the default (``None`` once the user picked)."""
    if st.session_state.get(QUERY_KEY) is not None:
        return None
    return _default_query(ctx).reason


def reset_query() -> None:
    """Forget the user's query: the informative default is used again."""
    st.session_state.pop(QUERY_KEY, None)


def set_query_pixel(y: float, x: float) -> None:
    st.session_state[QUERY_KEY] = (int(y), int(x))


def set_query_token(token: tuple[int, int], stride: int) -> None:
    st.session_state[QUERY_KEY] = pixel_of_token(token, stride)
