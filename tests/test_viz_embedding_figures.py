"""Cross-scale embedding figures: energies, channel grids and footprints are the trace's numbers, to scale."""

from __future__ import annotations

import numpy as np
import pytest
from viz_cases import case

from viz.embedding_figures import (kernel_energy_figure, kernel_footprints_figure,
                                   top_channels_figure)


@pytest.mark.parametrize("name", ["demo224", "demo_pad", "pp"])
def test_kernel_energy_maps_are_channel_mean_energy(name):
    c = case(name)
    layers = [c.trace.embedding, *c.trace.merges]
    for i, emb in enumerate(layers):
        fig = kernel_energy_figure(emb, c.image)
        out_stride = 4 if i == 0 else 4 * 2 ** i           # pixels per output token
        assert emb.input_stride * emb.stride == out_stride
        maps = [t for t in fig.data if t.type == "heatmap"]
        assert [t.name for t in maps] == [f"k={k} energy" for k in emb.kernels]
        for t, a in zip(maps, emb.per_kernel):
            expect = (a[0].astype(np.float64) ** 2).mean(axis=0)
            assert np.allclose(np.asarray(t.z), expect)
            assert t.dx == out_stride and t.x0 == out_stride / 2
        assert sum(t.type == "image" for t in fig.data) == len(emb.kernels)


def test_kernel_energy_without_image_uses_token_cells():
    emb = case("demo_pad").trace.merges[1]
    fig = kernel_energy_figure(emb, None, input_stride=8)
    assert all(t.dx == 16 for t in fig.data if t.type == "heatmap")


def test_top_channels_are_the_most_energetic_and_signed_on_one_scale():
    emb = case("demo_pad").trace.embedding
    for ki in range(len(emb.kernels)):
        a = emb.per_kernel[ki][0].astype(np.float64)
        fig = top_channels_figure(emb, ki, k=6)
        energy = (a ** 2).mean(axis=(1, 2))
        shown = fig.layout.meta["channels"]
        assert len(shown) == min(6, a.shape[0])
        assert list(shown) == list(np.argsort(-energy, kind="stable")[: len(shown)])
        for t, ch in zip(fig.data, shown):
            assert t.name == f"ch {ch}" and np.allclose(np.asarray(t.z), a[ch])
        ca = fig.layout.coloraxis
        assert ca.cmin == -ca.cmax and ca.cmax == pytest.approx(np.abs(a[shown]).max())


def rect_of(fig, name):
    t = next(t for t in fig.data if t.name == name)
    x, y = np.asarray(t.x, float), np.asarray(t.y, float)
    assert len(x) == 5 and x[0] == x[-1] and y[0] == y[-1]          # closed outline
    return x.min(), x.max(), y.min(), y.max()


def test_cel_footprints_are_k_by_k_pixels_centred_on_the_token():
    c = case("demo_pad")
    emb = c.trace.embedding
    h, w = 10, 20
    fig = kernel_footprints_figure(c.image, emb.kernels, emb.stride, emb.paddings, (h, w))
    for k in emb.kernels:
        x0, x1, y0, y1 = rect_of(fig, f"{k}×{k} kernel")
        assert (x1 - x0, y1 - y0) == (k, k)
        assert ((x0 + x1) / 2, (y0 + y1) / 2) == ((w + 0.5) * 4, (h + 0.5) * 4)
    x0, x1, y0, y1 = rect_of(fig, "token")
    assert (x0, y0, x1 - x0) == (w * 4, h * 4, 4)


def test_merge_footprints_scale_with_the_stage_stride():
    c = case("pp")
    m = c.trace.merges[1]                       # reads stage-1 tokens of 8 px
    h, w = 3, 5
    fig = kernel_footprints_figure(c.image, m.kernels, m.stride, m.paddings, (h, w), scale=8)
    for k, p in zip(m.kernels, m.paddings):
        x0, x1, y0, y1 = rect_of(fig, f"{k}×{k} kernel")
        assert (x1 - x0, y1 - y0) == (8 * k, 8 * k)
        assert (x0, y0) == ((w * 2 - p) * 8, (h * 2 - p) * 8)
        assert (x0 + x1) / 2 == (w + 0.5) * 16      # centred on the 16-px stage-2 token


def test_footprints_need_an_image_or_a_size():
    with pytest.raises(ValueError):
        kernel_footprints_figure(None, (4, 8), 4, (0, 2), (0, 0))
    fig = kernel_footprints_figure(None, (4, 8), 4, (0, 2), (1, 1), input_hw=(32, 32))
    assert rect_of(fig, "8×8 kernel")[:2] == (2.0, 10.0)
