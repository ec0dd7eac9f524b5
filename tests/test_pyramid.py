"""crossformer.analysis.pyramid: PCA→RGB and channel energy of a backbone's stage maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crossformer
from conftest import load_vector
from crossformer.analysis.pyramid import channel_energy, pca_rgb, pyramid_views, real_tokens, token_energy


def _patterns(H=24, W=40):
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    return np.stack([np.sin(xx / 5.0), np.cos(yy / 3.0), ((xx + yy) % 7 < 3).astype(float) - 0.4])  # (3, H, W)


def _mixed(C=16, seed=0, scales=(5.0, 2.0, 0.7), noise=1e-3):
    rng = np.random.default_rng(seed)
    p = _patterns()
    p = (p - p.mean(axis=(1, 2), keepdims=True)) * np.asarray(scales)[:, None, None]
    loadings, _ = np.linalg.qr(rng.standard_normal((C, 3)))                   # orthonormal columns (C, 3)
    fmap = np.einsum("ck,khw->chw", loadings, p) + noise * rng.standard_normal((C, *p.shape[1:]))
    return fmap.astype(np.float32), p


def test_pca_rgb_finds_the_mixed_patterns():
    fmap, p = _mixed()
    view = pca_rgb(fmap)
    assert view.rgb.shape == (24, 40, 3) and view.rgb.dtype == np.float32
    assert view.rgb.min() >= 0 and view.rgb.max() <= 1
    assert np.all(np.diff(view.explained) <= 0) and view.explained.sum() == pytest.approx(1.0, abs=1e-3)
    for k in range(3):   # red, green, blue follow the strongest, second and third pattern
        r = np.corrcoef(view.rgb[..., k].ravel(), p[k].ravel())[0, 1]
        assert abs(r) > 0.95, (k, r)


def test_pca_rgb_ignores_channel_order_and_fits_on_real_tokens_only():
    fmap, _ = _mixed()
    perm = np.random.default_rng(1).permutation(fmap.shape[0])
    np.testing.assert_allclose(pca_rgb(fmap[perm]).rgb, pca_rgb(fmap).rgb, atol=1e-5)
    padded = np.full((fmap.shape[0], 32, 48), 50.0, np.float32)              # padding tokens far off
    padded[:, :24, :40] = fmap
    fitted = pca_rgb(padded, fit_hw=(24, 40))
    assert fitted.fitted_hw == (24, 40)
    np.testing.assert_allclose(fitted.rgb[:24, :40], pca_rgb(fmap).rgb, atol=1e-5)
    assert np.abs(pca_rgb(padded).rgb[:24, :40] - pca_rgb(fmap).rgb).max() > 0.1   # unfitted: padding dominates


def test_degenerate_maps_are_grey():
    flat = pca_rgb(np.ones((8, 5, 6), np.float32))
    assert np.all(flat.rgb == 0.5) and np.all(flat.explained == 0)
    two = pca_rgb(np.random.default_rng(0).standard_normal((2, 5, 6)).astype(np.float32))
    assert two.explained[2] == 0 and np.all(two.rgb[..., 2] == 0.5) and two.explained[:2].sum() == pytest.approx(1)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        pca_rgb(np.zeros((5, 6)))
    with pytest.raises(ValueError, match="inside"):
        pca_rgb(np.zeros((2, 5, 6)), fit_hw=(6, 6))


def test_energies():
    fmap = np.arange(3, dtype=np.float32)[:, None, None] * np.ones((3, 4, 5), np.float32)   # channel c holds c
    np.testing.assert_allclose(channel_energy(fmap), [0, 1, 4])
    fmap[:, 0, 0] = 3.0
    np.testing.assert_allclose(token_energy(fmap)[0, 0], 9.0)
    np.testing.assert_allclose(token_energy(fmap)[1, 1], 5.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(channel_energy(fmap, fit_hw=(1, 1)), [9, 9, 9])
    assert real_tokens((200, 300), 4, (56, 80)) == (50, 75) and real_tokens((200, 300), 32, (7, 10)) == (7, 10)


def test_pyramid_views_of_a_padded_backbone_input():
    vec = load_vector("det_tiny_192x320")
    model = crossformer.from_official_config(vec.kwargs, "det").eval()
    crossformer.load_official_state_dict(model, vec.state_dict)
    x, padding = crossformer.pad_input(torch.from_numpy(vec["input"][:1, :, :180, :290]))
    trace = model.forward_trace(x)
    views = pyramid_views([trace.stage_map(i)[0] for i in range(4)], [trace.stage_stride(i) for i in range(4)],
                          real_hw=padding.input_hw)
    assert [v.hw for v in views] == [(48, 80), (24, 40), (12, 20), (6, 10)]
    assert [v.real_hw for v in views] == [(45, 73), (23, 37), (12, 19), (6, 10)]
    for v, c in zip(views, (32, 64, 128, 256)):
        assert v.pca.rgb.shape == (*v.hw, 3) and v.channel_energy.shape == (c,) and v.token_energy.shape == v.hw
        assert v.pca.fitted_hw == v.real_hw and 0 < v.pca.explained.sum() <= 1 + 1e-6
    np.testing.assert_allclose(views[3].token_energy, np.square(trace.stage_map(3)[0]).mean(axis=0), rtol=1e-5)
    real = trace.stage_map(2)[0][:, :12, :19].astype(np.float64)             # stage 2's real tokens
    assert views[2].mean_energy == pytest.approx(np.square(real).mean(), rel=1e-5)
