"""crossformer.analysis.embedding: each kernel's energy map and its most active channels, from the trace."""

from __future__ import annotations

import math

import numpy as np
import pytest
from viz_cases import case

from crossformer.analysis.embedding import kernel_energy, kernel_map, top_channels
from viz.embedding_figures import top_channels_figure


@pytest.mark.parametrize("name", ["demo_pad", "pp"])
def test_kernel_energy_is_the_channel_mean_square_of_each_kernel(name):
    for emb in (case(name).trace.embedding, *case(name).trace.merges):
        for i, a in enumerate(emb.per_kernel):
            e = kernel_energy(emb, i)
            assert e.shape == tuple(emb.output_hw)
            np.testing.assert_allclose(e, (a[0].astype(np.float64) ** 2).mean(axis=0), rtol=1e-6)


def test_top_channels_are_ranked_by_mean_energy_with_their_rms():
    emb = case("demo_pad").trace.embedding
    for ki in range(len(emb.kernels)):
        a = emb.per_kernel[ki][0].astype(np.float64)
        energy = (a ** 2).mean(axis=(1, 2))
        top = top_channels(emb, ki, k=5)
        assert list(top.channels) == list(np.argsort(-energy, kind="stable")[:5])
        np.testing.assert_allclose(top.rms, np.sqrt(energy[top.channels]), rtol=1e-6)
        assert np.all(np.diff(top.rms) <= 0)
    c_k = emb.channels[0]
    assert len(top_channels(emb, 0, k=10 ** 6).channels) == c_k and len(top_channels(emb, 0, k=0).channels) == 1


def test_top_channels_figure_titles_carry_the_rms():
    emb = case("pp").trace.merges[0]
    top = top_channels(emb, 1, k=4)
    fig = top_channels_figure(emb, 1, k=4)
    titles = [a.text for a in fig.layout.annotations][:4]
    offset = emb.channel_slice(1).start
    assert titles == [f"ch {c} (#{offset + c}) · rms {r:.2g}" for c, r in zip(top.channels, top.rms)]
    assert all(math.isfinite(r) for r in top.rms)


def test_kernel_index_outside_the_layer_is_refused():
    emb = case("demo224").trace.embedding
    with pytest.raises(ValueError, match="kernels"):
        kernel_map(emb, len(emb.kernels))
    assert kernel_map(emb, 0).shape == (emb.channels[0], *emb.output_hw)
