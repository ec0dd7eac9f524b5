"""Figure cache keys come from the builder's own arguments (pages/common/figure_cache.py::built_figure)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crossformer
from pages.common import figure_cache, traces


@pytest.fixture(scope="module")
def two_traces():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = crossformer.create_model("crossformer_demo").eval()
        xa, xb = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model.forward_trace(xa), model.forward_trace(xb)
    store = traces.trace_store()
    store.put(("test-model", "image-a", "prep"), a)
    store.put(("test-model", "image-b", "prep"), b)
    return a, b


def test_same_arguments_build_once_and_other_arguments_rebuild(two_traces):
    a, _ = two_traces
    calls = []

    def builder(block, head, pixels):
        calls.append((block.name, head))
        return {"figure": len(calls)}
    pixels = np.zeros((64, 64, 3), np.uint8)
    first = figure_cache.built_figure(builder, a.block(0, 1), 0, pixels)
    assert figure_cache.built_figure(builder, a.block(0, 1), 0, pixels.copy()) is first     # equal content: a hit
    assert len(calls) == 1
    figure_cache.built_figure(builder, a.block(0, 1), 1, pixels)                              # another head
    figure_cache.built_figure(builder, a.block(0, 0), 0, pixels)                              # another block
    pixels[0, 0, 0] = 1
    figure_cache.built_figure(builder, a.block(0, 1), 0, pixels)                              # other pixels
    assert len(calls) == 4


def test_the_same_block_of_two_images_never_shares_a_figure(two_traces):
    a, b = two_traces
    assert figure_cache.figure_key(a.block(1, 0)) != figure_cache.figure_key(b.block(1, 0))
    assert figure_cache.figure_key(a.block(1, 0)) == figure_cache.figure_key(a.block(1, 0))
    assert figure_cache.figure_key(a.embedding) != figure_cache.figure_key(a.merges[0])
    assert figure_cache.figure_key(a.block(0, 1).layout) == figure_cache.figure_key(a.block(0, 1).layout)
    assert figure_cache.figure_key(a.block(0, 0).layout) != figure_cache.figure_key(a.block(0, 1).layout)


def test_arguments_without_a_key_build_uncached(two_traces):
    calls = []

    def builder(fn):
        calls.append(1)
        return fn()
    figure_cache.built_figure(builder, lambda: 1)
    figure_cache.built_figure(builder, lambda: 1)
    assert len(calls) == 2
    with torch.no_grad():
        stray = crossformer.create_model("crossformer_demo").eval().forward_trace(torch.randn(1, 3, 32, 32))
    assert figure_cache.figure_key(stray) is None                      # a trace the store does not hold


def test_built_plotly_figures_are_shown_as_built_without_their_pixel_width():
    import plotly.graph_objects as go

    from viz import export

    def builder(n):
        return go.Figure(go.Scatter(y=list(range(n))), layout=dict(width=812, height=300, meta={"k": 1}))
    fig = figure_cache.built_figure(builder, 5)
    assert fig.layout.width is None and fig.layout.height == 300          # the chart takes its column's width
    assert export.export_width(fig) == 812 and fig.layout.meta["k"] == 1  # exports keep it; meta merged
    assert figure_cache.display_figure(fig) is fig                              # no display copy
    other = builder(3)                                                     # not built through the store
    shown = figure_cache.display_figure(other)
    assert shown is not other and shown.layout.width is None and other.layout.width == 812
    assert export.export_width(shown) == 812 and figure_cache.display_figure(other) is shown
    assert export.responsive(export.responsive(builder(2))).layout.meta[export.EXPORT_WIDTH] == 812
