"""What every page works on: A, the run's :class:`~pages.common.inputs.Input` (model, image, preprocessing and
the cached trace), with the sidebar's messages and the shared query.

Data and query state only: :mod:`pages.common.startup` builds one :class:`AppContext` per run from the
sidebar and pages read it with ``startup.page_context()``. The shared query (the token the
attention and embedding views look at) is stored as a pixel of the model input, so every stage maps it
to its own token.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import streamlit as st

from crossformer.analysis.findings import DefaultQuery, Readout, default_query
from crossformer.analysis.tokens import pixel_of_token, token_of_pixel

from .inputs import Input

QUERY_KEY = "query_px"


@dataclass(frozen=True, eq=False)
class AppContext(Input):
    """One run's input A (every :class:`~pages.common.inputs.Input` attribute: ``bundle``, ``image_key``,
    ``image`` (key, name, decoded image), ``prep``, ``prepared``, ``trace``, ``expected`` …) and what the page shows
    about the run.

    Attributes:
        errors: messages to show above the page (a bad upload, a checkpoint that failed).
    """

    errors: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, a: Input, errors: tuple[str, ...] | list[str] = ()) -> AppContext:
        """The context of input ``a`` with the sidebar's ``errors``."""
        return cls(**{f.name: getattr(a, f.name) for f in fields(Input)}, errors=tuple(errors))

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
