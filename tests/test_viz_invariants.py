"""Shared cases for the viz tests, and the invariants of the trace the figures are drawn from.

The other ``test_viz_*`` files import :func:`case`, :data:`CASES` and :func:`sample_image` from here, so each
small model is built and traced once per test session.

Cases (small configs, so the whole viz suite stays quick on two cores):
* ``demo224``: ``crossformer_demo`` at 224×224 (v2 intervals 8/4/2/1, one global group at stage 3);
* ``demo_pad``: ``crossformer_demo`` at 200×264 (padding in every stage);
* ``pp``: a CrossFormer++-S-like model (G = 4/4/14/7, I = 4/2/1/1, an ACL in stage 2) at 200×264, with
  all-padding LDA groups;
* ``s_v1``: a CrossFormer-S-like v1 model (implicit LDA interval, non-square I = 8×10) at 200×264.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pytest
import torch

import crossformer
from crossformer.trace import Trace

CASES = ("demo224", "demo_pad", "pp", "s_v1")


@dataclass(frozen=True, eq=False)
class Case:
    name: str
    model: torch.nn.Module
    x: torch.Tensor
    image: np.ndarray          # (H, W, 3) uint8 that x was made from
    trace: Trace


def sample_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A deterministic ``(h, w, 3)`` uint8 test picture: gradients, a disc and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    disc = ((yy - 0.45) ** 2 + (xx - 0.6) ** 2 < 0.05).astype(float)
    img = np.stack([yy, xx, disc], axis=-1) * 0.8 + rng.random((h, w, 3)) * 0.2
    return (img * 255).astype(np.uint8)


def to_input(image: np.ndarray) -> torch.Tensor:
    x = image.astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


@lru_cache(maxsize=None)
def case(name: str) -> Case:
    torch.manual_seed(0)
    if name == "demo224":
        model, hw = crossformer.create_model("crossformer_demo"), (224, 224)
    elif name == "demo_pad":
        model, hw = crossformer.create_model("crossformer_demo"), (200, 264)
    elif name == "pp":
        model = crossformer.create_model("crossformer_pp_s", num_classes=10, depths=(2, 2, 4, 2), embed_dim=32)
        hw = (200, 264)
    elif name == "s_v1":
        model = crossformer.create_model("crossformer_s", num_classes=10, depths=(2, 2, 2, 2), embed_dim=48)
        hw = (200, 264)
    else:
        raise KeyError(name)
    model.eval()
    # random init gives near-uniform attention; sharpen q·k so attention patterns are not flat
    with torch.no_grad():
        for blk in (b for layer in model.layers for b in layer.blocks):
            blk.attn.qkv.weight.mul_(8.0)
    image = sample_image(*hw)
    x = to_input(image)
    return Case(name, model, x, image, model.forward_trace(x))


# ---- invariants of the trace the figures draw ------------------------------------------------------------
@pytest.fixture(params=CASES)
def traced(request) -> Case:
    return case(request.param)


def test_every_real_token_in_exactly_one_group(traced):
    for b in traced.trace.all_blocks():
        H, W = b.layout.feature_hw
        members = b.layout.members
        real = members[members >= 0]
        assert np.array_equal(np.sort(real), np.arange(H * W)), b.name
        assert members.shape[1] == b.group_size ** 2, b.name                    # each group has G² slots
        assert b.attention.shape[1:] == (b.layout.num_groups, b.heads, b.group_size ** 2, b.group_size ** 2)


def test_attention_rows_sum_to_one_and_padded_keys_get_zero(traced):
    for b in traced.trace.all_blocks():
        pad = b.layout.key_padding                                               # (nG, N)
        live = ~pad.all(axis=1)                                                  # skip all-padding groups
        a = b.attention[0]                                                       # (nG, h, N, N)
        sums = np.where(~pad[:, None, None, :], a, 0).sum(-1)                    # over real keys
        assert np.allclose(sums[live], 1.0, atol=1e-5), b.name
        padded_keys = np.broadcast_to(pad[:, None, None, :], a.shape)
        live_b = np.broadcast_to(live[:, None, None, None], a.shape)
        assert np.all(a[padded_keys & live_b] == 0.0), b.name


def test_member_positions_agree_with_member_indices(traced):
    for b in traced.trace.all_blocks():
        lay = b.layout
        H, W = lay.feature_hw
        pos = lay.positions
        inside = (pos[..., 0] < H) & (pos[..., 1] < W)
        assert np.array_equal(lay.members >= 0, inside), b.name
        assert np.array_equal(lay.members[inside], pos[inside][:, 0] * W + pos[inside][:, 1]), b.name
        assert np.array_equal(lay.padding_map, ~np.pad(np.ones((H, W), bool),
                                                       ((0, lay.padded_hw[0] - H), (0, lay.padded_hw[1] - W))))


def test_lda_members_are_exactly_interval_apart_and_sda_windows_contiguous(traced):
    seen = set()
    for b in traced.trace.all_blocks():
        lay = b.layout
        G, (Ih, Iw) = lay.group_size, lay.interval
        p = lay.positions.reshape(lay.num_groups, G, G, 2)
        dr = np.diff(p, axis=1)      # next member row
        dc = np.diff(p, axis=2)      # next member column
        if lay.kind == "lda":
            assert np.all(dr == np.array([Ih, 0])) and np.all(dc == np.array([0, Iw])), b.name
        else:
            assert (Ih, Iw) == (1, 1)
            assert np.all(dr == np.array([1, 0])) and np.all(dc == np.array([0, 1])), b.name
            assert np.all(p[:, 0, 0] % G == 0), b.name                            # windows on the G-grid
        seen.add(lay.kind)
    assert seen == {"sda", "lda"}


def test_cases_cover_the_geometry_we_promise():
    """The cases exercise padding, all-padding groups, G = 4/14, non-square intervals and a global group."""
    blocks = {n: list(case(n).trace.all_blocks()) for n in CASES}
    assert any(b.layout.is_global for b in blocks["demo224"])
    assert any(b.layout.is_padded for b in blocks["demo_pad"])
    assert any(b.layout.key_padding.all(axis=1).any() for b in blocks["pp"])     # all-padding LDA groups
    assert {4, 14} <= {b.group_size for b in blocks["pp"]}
    assert any(b.interval[0] != b.interval[1] for b in blocks["s_v1"])
    assert any(b.has_acl for b in blocks["pp"])                  # CrossFormer++ cooling layers are traced
