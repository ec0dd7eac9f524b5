"""Choices that survive option changes: the one helper behind every picker (stage, block, layer, kernel,
head, view, method, class, model, preprocessing, sizes).

Why it exists — the root cause of the "``'>=' not supported between 'str' and 'int'``" crashes. With
Streamlit 1.67 in a real browser, when a keyed selectbox/radio's ``format_func`` labels differ from the
previous run's (the block labels after a stage change, the kernel labels after a layer change), the value
the browser sends back is matched by its *label*: on the next run ``st.session_state[key]``, read before the
widget is drawn, holds the previous run's **label string** (``'s2_b1 · LDA G=7 I=2'``, not ``1``), and the
widget then falls back to its first option. AppTest never shows this, since it sets values directly.

So page code never reads a widget's own key. Each choice lives in ``st.session_state[key]`` as a plain
value that only this module writes, and the widget gets its own key derived from that name *and its
option labels* (``attn_block::3f2a…``): a new option set is a new widget, created at the kept choice, so a
stale or foreign value can never reach page code. A choice that still makes sense after a change is kept
(the block index when the new stage has that block); otherwise the informative ``default`` is used.
:func:`set_choice` changes a choice from code (a callback, a reset button); the widget follows.

Tests find a widget by its logical key: its key starts with ``f"{key}{SEP}"`` (``tests/helpers.py::widget``).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

import streamlit as st

SEP = "::"
_WIDGETS: dict[str, Callable[..., Any]] = {"selectbox": st.selectbox, "radio": st.radio,
                                            "select_slider": st.select_slider, "slider": st.slider}


def _digest(*parts: Any) -> str:
    return hashlib.blake2s(repr(parts).encode(), digest_size=6).hexdigest()


def _generation(key: str) -> int:
    return int(st.session_state.get(f"{key}{SEP}gen", 0))


def set_choice(key: str, value: Any) -> None:
    """Set the choice ``key`` from code; the widget is redrawn at ``value`` on the next run."""
    st.session_state[key] = value
    st.session_state[f"{key}{SEP}gen"] = _generation(key) + 1


def chosen(key: str, default: Any = None) -> Any:
    """The current choice ``key`` (the logical value, never a widget's raw state)."""
    return st.session_state.get(key, default)


def was_chosen(key: str) -> bool:
    """Whether the user (or code, via :func:`set_choice`) has made the choice ``key`` yet."""
    return key in st.session_state


def _resolve(value: Any) -> Any:
    return value() if callable(value) else value


def choice(label: str, options: Sequence[Any], key: str, *, default: Any = None,
           format_func: Callable[[Any], Any] = str, widget: str = "selectbox",
           on_change: Callable[[], None] | None = None, **kwargs: Any) -> Any:
    """A selectbox / radio / select-slider over ``options`` whose value is kept in ``session_state[key]``.

    ``default`` (a value or a zero-argument callable, evaluated only when needed) is used when no choice was
    made yet or the kept one is not among ``options`` (then the first option if ``default`` is not either).
    Returns the chosen option itself (never a label).
    """
    options = list(options)
    if not options:
        raise ValueError(f"{key}: no options to choose from")
    labels = tuple(str(format_func(o)) for o in options)
    current = st.session_state.get(key, _MISSING)
    if current is _MISSING or current not in options:
        current = _resolve(default)
        if current not in options:
            current = options[0]
    wkey = f"{key}{SEP}{_digest(labels, _generation(key))}"

    def sync() -> None:
        value = st.session_state.get(wkey)
        if value in options:
            st.session_state[key] = value
        if on_change is not None:
            on_change()

    draw = _WIDGETS[widget]
    if widget == "select_slider":
        value = draw(label, options, value=current, format_func=format_func, key=wkey, on_change=sync, **kwargs)
    else:
        value = draw(label, options, index=options.index(current), format_func=format_func, key=wkey,
                     on_change=sync, **kwargs)
    if value not in options:   # defensive: whatever came back, page code gets one of the options
        value = current
    st.session_state[key] = value
    return value


def number(label: str, lo: int, hi: int, key: str, *, default: int | Callable[[], int] | None = None,
           step: int = 1, value: int | None = None, on_change: Callable[[], None] | None = None,
           **kwargs: Any) -> int:
    """An integer slider over ``[lo, hi]`` kept in ``session_state[key]`` (clamped when the range changes).

    ``value`` forces the slider to that value this run (a value shared with other widgets, like the query
    token, that code owns); otherwise the kept choice, else ``default`` (else ``lo``).
    """
    lo, hi = int(lo), int(hi)
    if hi < lo:
        raise ValueError(f"{key}: empty range {lo}..{hi}")
    wkey = f"{key}{SEP}{_digest(lo, hi, step, _generation(key))}"
    if value is not None:
        current = int(value)
    else:
        kept = st.session_state.get(key, _MISSING)
        current = _resolve(default) if kept is _MISSING or not isinstance(kept, (int, float)) else kept
        current = lo if current is None else current
    current = int(min(max(int(current), lo), hi))
    moved = value is not None and st.session_state.get(wkey, current) != current
    if moved:
        st.session_state[wkey] = current   # code moved it (a click on the image): the slider follows

    def sync() -> None:
        got = st.session_state.get(wkey)
        if isinstance(got, (int, float)):
            st.session_state[key] = int(got)
        if on_change is not None:
            on_change()

    # The value is passed on every run except one that set the widget's state through session_state above
    # (Streamlit warns about both). Without it the browser is sent the slider's minimum as its default: a
    # widget first drawn in a fragment run and then by a full rerun showed 32 while the server kept 512.
    if moved:
        got = st.slider(label, lo, hi, step=step, key=wkey, on_change=sync, **kwargs)
    else:
        got = st.slider(label, lo, hi, value=current, step=step, key=wkey, on_change=sync, **kwargs)
    got = int(min(max(int(got), lo), hi)) if isinstance(got, (int, float)) else current
    st.session_state[key] = got
    return got


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
