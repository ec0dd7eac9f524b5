"""Per-block head statistics (crossformer/analysis/heads.py): definitions checked on hand-made attention."""

from __future__ import annotations

import math

import numpy as np
import pytest
from viz_cases import case

from crossformer.analysis.heads import block_stats, odd_heads, residual_rms, trace_head_stats
from crossformer.geometry import plan_layout
from crossformer.trace import BlockTrace


def synthetic_block(attn_kind: str, stage: int = 1, heads: int = 2) -> BlockTrace:
    """An LDA block on a padded 5×7 map (G=3, I=2) with hand-made attention; zero content and bias."""
    lay = plan_layout("lda", (5, 7), 3, 2)
    nG, N = lay.num_groups, lay.group_tokens
    real = ~lay.key_padding                                              # (nG, N)
    attn = np.zeros((1, nG, heads, N, N), np.float32)
    for g in range(nG):
        if not real[g].any():
            continue
        for n in range(N):
            if attn_kind == "self" and real[g, n]:
                attn[0, g, :, n, n] = 1.0
            else:                                                         # uniform over the real keys
                attn[0, g, :, n, real[g]] = 1.0 / real[g].sum()
    zeros = np.zeros((1, nG, heads, N, N), np.float32)
    return BlockTrace(stage=stage, index=1, dim=8, heads=heads, scale=1.0, layout=lay, content=zeros,
                      attention=attn, dpb_table=np.zeros((25, heads), np.float32),
                      dpb_bias=np.zeros((heads, N, N), np.float32),
                      output=np.full((1, 35, 8), 2.0, np.float32), has_acl=False, stride=4 * 2 ** stage)


def test_self_attention_has_zero_entropy_and_zero_distance():
    st = block_stats(synthetic_block("self"))
    assert np.allclose(st["entropy"], 0) and np.allclose(st["distance_px"], 0)


def test_uniform_attention_entropy_and_distance_by_hand():
    b = synthetic_block("uniform")
    st = block_stats(b)
    lay, s = b.layout, 4 * 2 ** b.stage
    ent, dist = [], []
    for g in range(lay.num_groups):
        keys = [lay.positions[g, m] for m in range(lay.group_tokens) if lay.members[g, m] >= 0]
        for n in range(lay.group_tokens):
            if lay.members[g, n] < 0:
                continue                                                  # padded queries do not count
            ent.append(math.log(len(keys)))
            q = lay.positions[g, n]
            dist.append(np.mean([math.dist(q, k) for k in keys]) * s)
    assert len(ent) == 35
    assert np.allclose(st["entropy"], np.mean(ent)) and np.allclose(st["distance_px"], np.mean(dist))
    # with no position bias the DPB moves no attention mass
    assert np.allclose(st["dpb_share"], 0.0, atol=1e-6)


def test_dpb_share_is_the_total_variation_the_bias_causes():
    b = synthetic_block("uniform", heads=1)
    lay = b.layout
    N = lay.group_tokens
    bias = np.zeros((1, N, N), np.float32)
    bias[0, :, 0] = 50.0                                        # position alone would send everything to member 0
    logits = bias[None, None] + lay.attn_mask[None, :, None]
    attn = np.exp(logits - logits.max(-1, keepdims=True))
    attn = (attn / attn.sum(-1, keepdims=True)).astype(np.float32)
    b2 = BlockTrace(**{**b.__dict__, "dpb_bias": bias, "attention": attn})
    st = block_stats(b2)
    real = ~lay.key_padding
    tvs = []
    for g in range(lay.num_groups):
        for n in range(N):
            if not real[g, n]:
                continue
            uniform = np.where(real[g], 1.0 / real[g].sum(), 0.0)
            tvs.append(0.5 * np.abs(attn[0, g, 0, n] - uniform).sum())
    assert st["dpb_share"][0] == pytest.approx(np.mean(tvs), abs=1e-6)
    assert 0.5 < st["dpb_share"][0] <= 1.0


def test_stats_of_a_real_trace():
    tr = case("pp").trace
    blocks = list(tr.all_blocks())
    st = trace_head_stats(tr)
    H = max(b.heads for b in blocks)
    assert st["names"] == [b.name for b in blocks]
    for key in ("entropy", "distance_px", "dpb_share"):
        assert st[key].shape == (len(blocks), H)
        for i, b in enumerate(blocks):
            assert np.all(np.isfinite(st[key][i, : b.heads])) and np.all(np.isnan(st[key][i, b.heads:]))
    assert np.all(st["entropy"][np.isfinite(st["entropy"])] >= -1e-9)
    assert np.all(np.nan_to_num(st["entropy"]) <= st["max_entropy"][:, None] + 1e-6)
    share = st["dpb_share"][np.isfinite(st["dpb_share"])]
    assert np.all((share >= 0) & (share <= 1))
    for i, b in enumerate(blocks):
        assert st["residual_norm"][i] == pytest.approx(np.sqrt(np.mean(b.output[0].astype(np.float64) ** 2)))
        assert st["residual_norm"][i] == pytest.approx(residual_rms(b))
    # LDA heads reach further than the SDA heads of the same stage (stage 0: G=4, I=4)
    assert np.nanmin(st["distance_px"][1]) > np.nanmax(st["distance_px"][0])


def test_odd_heads_are_robust_outliers_within_a_block():
    assert odd_heads(np.array([[1.0, 1.1, 0.9, 1.0, 9.0]]))[0].tolist() == [False] * 4 + [True]
    assert not odd_heads(np.array([[1.0, 5.0]])).any()          # too few heads to call one odd
    assert not odd_heads(np.array([[3.890, 3.891, 3.889, 3.8905]])).any()   # noise around uniform is not odd
