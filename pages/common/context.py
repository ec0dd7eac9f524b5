"""What every page works on: A, the run's :class:`~pages.common.inputs.Input` (model, image, preprocessing and
the cached trace), with the sidebar's messages and the shared query.

Data and query state only: :mod:`pages.common.startup` builds one :class:`AppContext` per run from the
sidebar and pages read it with ``startup.page_context()``. The shared query (the token the
attention and embedding views look at) is stored as a pixel of the model input, so every stage maps it
to its own token.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import streamlit as st

from .analysis import pixel_of_token, token_of_pixel
from .inputs import Input

QUERY_KEY = "query_px"


@dataclass(frozen=True, eq=False)
class AppContext(Input):
    """One run's input A (every :class:`~pages.common.inputs.Input` attribute: ``bundle``, ``image_key``,
    ``image_name``, ``decoded``, ``prep``, ``prepared``, ``trace``, ``expected`` …) and what the page shows
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
    """The informative default query, a stage-0 token ``(h, w)``.

    With ImageNet weights (trained, 1000 classes): on the predicted object — the last-stage cell with the
    most evidence for the top class (``findings.class_evidence``, exact for the mean-pooled head), refined to
    the most distinctive token inside it. Otherwise (the Navon demo, random weights): the token where the
    cross-scale embedding responds most unlike the average token (``findings.salient_token``: on the figure,
    not the paper).
    """
    from . import findings
    model = ctx.bundle.model
    if not _imagenet_semantics(ctx):
        return findings.salient_token(ctx.trace)
    top = int(np.argmax(ctx.trace.logits[0]))
    arrays = [t.float().cpu().numpy() for t in (model.norm.weight.detach(), model.norm.bias.detach(),
                                                model.head.weight.detach()[top])]
    return findings.object_token(ctx.trace, findings.class_evidence(ctx.trace, *arrays, eps=model.norm.eps))


def _imagenet_semantics(ctx: AppContext) -> bool:
    return bool(ctx.bundle.trained and ctx.bundle.model.cfg.num_classes == 1000)


def default_query_reason(ctx: AppContext) -> str | None:
    """One line on why the query is where it is, while it is the default (``None`` once the user picked)."""
    if st.session_state.get(QUERY_KEY) is not None:
        return None
    if _imagenet_semantics(ctx):
        top = int(np.argmax(ctx.trace.logits[0]))
        name = ctx.bundle.class_names[top] if top < len(ctx.bundle.class_names) else f"class {top}"
        s = ctx.trace.stage_stride(len(ctx.trace.stage_hw) - 1)
        return (f"Default query: on the predicted object — inside the {s}×{s}-px last-stage cell that adds the "
                f"most to the logit of “{name}”, the most distinctive token.")
    return ("Default query: the token where the cross-scale embedding responds most unlike the image's average "
            "token (on a Navon figure: on the figure, not the paper).")


def reset_query() -> None:
    """Forget the user's query: the informative default is used again."""
    st.session_state.pop(QUERY_KEY, None)


def set_query_pixel(y: float, x: float) -> None:
    st.session_state[QUERY_KEY] = (int(y), int(x))


def set_query_token(token: tuple[int, int], stride: int) -> None:
    st.session_state[QUERY_KEY] = pixel_of_token(token, stride)
