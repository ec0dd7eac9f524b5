"""Feature-pyramid numbers of a backbone: each stage map as a PCA→RGB image and its channel energy.

The standard dense-feature view: the 3 principal components of a stage's channels, taken over its tokens, shown
as red, green and blue. NumPy only; a figure builder draws what these functions return.

    views = pyramid_views([trace.stage_map(i)[0] for i in range(4)], strides=[4, 8, 16, 32],
                          real_hw=padding.input_hw)         # padding: crossformer.pad_input's report
    views[3].rgb          # (H_3, W_3, 3) in [0, 1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Percentiles each component is clipped to before it is scaled to [0, 1] (a few extreme tokens would
#: otherwise wash out the rest of the image).
CLIP_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True, eq=False)
class PcaRgb:
    """A ``(C, H, W)`` map's first three principal components as colours.

    Attributes:
        rgb: ``(H, W, 3)`` float32 in ``[0, 1]``; component k is channel k (red, green, blue).
        explained: ``(3,)`` share of the channel variance each component carries (0 where there is none).
        fitted_hw: ``(h, w)`` top-left tokens the components were fitted on (the rest is padding).
    """

    rgb: np.ndarray
    explained: np.ndarray
    fitted_hw: tuple[int, int]


@dataclass(frozen=True, eq=False)
class StageView:
    """One stage of the pyramid: its grid, its colours and its channel energy.

    Attributes:
        stage: 0-based stage index.
        hw: ``(H_i, W_i)`` token grid.
        stride: input pixels per token side.
        real_hw: ``(h, w)`` tokens that see real pixels (the rest of the grid sees only input padding).
        pca: :class:`PcaRgb` of the stage map, fitted on the real tokens.
        channel_energy: ``(C_i,)`` mean square of each channel over the real tokens.
        token_energy: ``(H_i, W_i)`` mean square over channels of each token (the feature norm² / C).
    """

    stage: int
    hw: tuple[int, int]
    stride: int
    real_hw: tuple[int, int]
    pca: PcaRgb
    channel_energy: np.ndarray
    token_energy: np.ndarray

    @property
    def mean_energy(self) -> float:
        """Mean square of the stage map over its real tokens and all channels (the mean of :attr:`channel_energy`)."""
        return float(self.channel_energy.mean())


def _check_map(fmap: np.ndarray) -> np.ndarray:
    a = np.asarray(fmap)
    if a.ndim != 3 or min(a.shape) < 1:
        raise ValueError(f"expected a (C, H, W) feature map, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"expected a numeric feature map, got dtype {a.dtype}")
    return a


def _fit_hw(shape: tuple[int, int], fit_hw: tuple[int, int] | None) -> tuple[int, int]:
    H, W = shape
    if fit_hw is None:
        return H, W
    h, w = int(fit_hw[0]), int(fit_hw[1])
    if not (1 <= h <= H and 1 <= w <= W):
        raise ValueError(f"fit region {h}×{w} must lie inside the {H}×{W} map")
    return h, w


def principal_axes(tokens: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(L, C)`` tokens → mean ``(C,)``, the ``k`` leading axes ``(k, C)`` and their variance shares ``(k,)``.

    Eigen-decomposition of the ``C × C`` covariance in float64. Signs are fixed so each axis's largest-magnitude
    loading is positive (a channel permutation permutes the loadings and leaves the projections unchanged).
    Missing axes (``C < k`` or rank < k) are zero with share 0.
    """
    x = tokens.astype(np.float64)
    mean = x.mean(axis=0)
    x = x - mean
    cov = x.T @ x / max(len(x), 1)                                  # (C, C)
    values, vectors = np.linalg.eigh(cov)                           # ascending
    values = np.clip(values, 0.0, None)                             # rounding can give tiny negatives
    total = float(values.sum())
    order = np.argsort(values)[::-1][:k]
    values, axes = values[order], vectors[:, order].T               # (k',), (k', C)
    big = np.argmax(np.abs(axes), axis=1)
    axes = axes * np.sign(axes[np.arange(len(axes)), big])[:, None]
    share = values / total if total > 0 else np.zeros_like(values)
    axes[share <= 1e-12] = 0.0
    pad = k - len(axes)
    return mean, np.pad(axes, ((0, pad), (0, 0))), np.pad(share, (0, pad))


def pca_rgb(fmap: np.ndarray, fit_hw: tuple[int, int] | None = None) -> PcaRgb:
    """``(C, H, W)`` → its first 3 principal components over tokens, as an ``(H, W, 3)`` image in ``[0, 1]``.

    ``fit_hw``: fit the components (and the colour scale) on the top-left ``h × w`` tokens only (the real ones
    when the input was padded); every token is then projected and clipped to that scale. Each component is
    clipped to its :data:`CLIP_PERCENTILES` and scaled to ``[0, 1]``; a component without variance is 0.5 (grey).
    """
    a = _check_map(fmap)
    C, H, W = a.shape
    h, w = _fit_hw((H, W), fit_hw)
    fit = a[:, :h, :w].reshape(C, -1).T                              # (h·w, C)
    mean, axes, share = principal_axes(fit)
    proj = (a.reshape(C, -1).T.astype(np.float64) - mean) @ axes.T   # (H·W, 3)
    fit_proj = proj.reshape(H, W, 3)[:h, :w].reshape(-1, 3)
    lo, hi = np.percentile(fit_proj, CLIP_PERCENTILES, axis=0)       # (3,), (3,)
    span = hi - lo
    flat = np.where(span > 0, (np.clip(proj, lo, hi) - lo) / np.where(span > 0, span, 1.0), 0.5)
    return PcaRgb(rgb=flat.reshape(H, W, 3).astype(np.float32), explained=share.astype(np.float32),
                  fitted_hw=(h, w))


def channel_energy(fmap: np.ndarray, fit_hw: tuple[int, int] | None = None) -> np.ndarray:
    """``(C, H, W)`` → ``(C,)`` mean square of each channel over the (top-left ``fit_hw``) tokens."""
    a = _check_map(fmap)
    h, w = _fit_hw(a.shape[1:], fit_hw)
    return np.square(a[:, :h, :w], dtype=np.float64).mean(axis=(1, 2)).astype(np.float32)


def token_energy(fmap: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` → ``(H, W)`` mean square over channels of each token."""
    return np.square(_check_map(fmap), dtype=np.float64).mean(axis=0).astype(np.float32)


def real_tokens(real_hw: tuple[int, int], stride: int, hw: tuple[int, int]) -> tuple[int, int]:
    """Tokens of an ``hw`` grid at ``stride`` px whose cell starts on a real pixel of a ``real_hw`` input: the
    rest read only the bottom/right zero padding (their convs still see real pixels near the edge)."""
    if stride < 1:
        raise ValueError(f"stride must be ≥ 1, got {stride}")
    return (min(hw[0], max(1, math.ceil(real_hw[0] / stride))), min(hw[1], max(1, math.ceil(real_hw[1] / stride))))


def pyramid_views(maps: Sequence[np.ndarray], strides: Sequence[int],
                  real_hw: tuple[int, int] | None = None) -> list[StageView]:
    """One :class:`StageView` per stage map ``(C_i, H_i, W_i)`` (one image; take ``[b]`` of a batch first).

    ``strides``: input pixels per token side of each stage (4, 8, 16, 32); ``real_hw``: the input size before
    padding (``InputPadding.input_hw``), so the colours and energies come from real tokens only.
    """
    if len(maps) != len(strides):
        raise ValueError(f"{len(maps)} maps but {len(strides)} strides")
    views = []
    for i, (fmap, stride) in enumerate(zip(maps, strides)):
        a = _check_map(fmap)
        hw = (int(a.shape[1]), int(a.shape[2]))
        real = hw if real_hw is None else real_tokens(real_hw, int(stride), hw)
        views.append(StageView(stage=i, hw=hw, stride=int(stride), real_hw=real, pca=pca_rgb(a, real),
                               channel_energy=channel_energy(a, real), token_energy=token_energy(a)))
    return views
