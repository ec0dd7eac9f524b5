"""Numbers of a cross-scale embedding layer (the CEL or a merge), read from its
:class:`~crossformer.trace.EmbeddingTrace` (NumPy only).

Each kernel's raw conv output ``per_kernel[i][b]`` ``(c_k, Ho, Wo)`` is a small feature map, so its energies are
the pyramid's (:func:`crossformer.analysis.pyramid.token_energy`, :func:`~crossformer.analysis.pyramid.channel_energy`):

    kernel_energy(trace.embedding, 0)          # (Ho, Wo) mean over the 4×4 kernel's channels of its output²
    top_channels(trace.embedding, 0, k=8)      # its 8 most active channels, most active first
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossformer.trace import EmbeddingTrace

from .pyramid import channel_energy, token_energy


def kernel_map(emb: EmbeddingTrace, kernel_index: int, batch: int = 0) -> np.ndarray:
    """``(c_k, Ho, Wo)`` one kernel's raw conv output for image ``batch``."""
    if not 0 <= kernel_index < len(emb.kernels):
        raise ValueError(f"kernel index {kernel_index} is outside the layer's {len(emb.kernels)} kernels")
    return np.asarray(emb.per_kernel[kernel_index][batch])


def kernel_energy(emb: EmbeddingTrace, kernel_index: int, batch: int = 0) -> np.ndarray:
    """``(Ho, Wo)`` channel-mean activation energy ``mean_c per_kernel[i][b, c]²`` of one kernel."""
    return token_energy(kernel_map(emb, kernel_index, batch))


@dataclass(frozen=True, eq=False)
class TopChannels:
    """One kernel's most active channels.

    Attributes:
        channels: ``(n,)`` int64 channel indices within the kernel's own slice, largest mean energy first
            (ties: the lower index first).
        rms: ``(n,)`` root-mean-square activation of each over the map (``√`` its mean energy).
    """

    channels: np.ndarray
    rms: np.ndarray


def top_channels(emb: EmbeddingTrace, kernel_index: int, k: int = 8, batch: int = 0) -> TopChannels:
    """The ``k`` channels of one kernel with the largest mean energy over the map (at least one, at most all)."""
    energy = channel_energy(kernel_map(emb, kernel_index, batch))                # (c_k,)
    order = np.argsort(-energy, kind="stable")[: max(1, min(int(k), energy.size))]
    return TopChannels(channels=order.astype(np.int64), rms=np.sqrt(energy[order].astype(np.float64)))
