"""crossformer/analysis: attention definitions by hand, the rollout, and the on-device statistics
(:func:`crossformer.stats_heads.head_stats`, torch) equal to the NumPy definitions (:mod:`crossformer.analysis`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from viz_cases import CASES, case

import crossformer
from crossformer.analysis import attention, heads
from crossformer.analysis.rollout import attention_rollout
from crossformer.stats_heads import head_stats


def test_entropy_is_in_nats_and_total_variation_is_half_the_l1_distance():
    assert float(attention.entropy([0.5, 0.5])) == pytest.approx(math.log(2))
    assert float(attention.entropy([0.25] * 4, dtype=np.float32)) == pytest.approx(math.log(4), rel=1e-6)
    assert float(attention.entropy([1.0, 0.0, 0.0])) == 0.0
    assert float(attention.total_variation([1.0, 0.0], [0.0, 1.0])) == 1.0
    assert float(attention.total_variation([0.5, 0.5], [0.75, 0.25])) == pytest.approx(0.25)
    np.testing.assert_allclose(attention.softmax([1000.0, 1000.0 + math.log(3)]), [0.25, 0.75])


@pytest.mark.parametrize("name", CASES)
def test_rollout_is_a_distribution_over_stage0_tokens(name):
    c = case(name)
    r = attention_rollout(c.trace)
    assert r.shape == c.trace.stage_hw[0]
    assert np.all(r >= 0) and r.sum() == pytest.approx(1.0, abs=1e-6)   # float32 rows
    # with no attention mixing (residual 1) the flow is the even 2×2 split of the uniform pooling
    flat = attention_rollout(c.trace, residual=1.0)
    H3, W3 = c.trace.stage_hw[-1]
    covered = flat[: H3 * 8, : W3 * 8]
    assert np.allclose(covered, 1.0 / (H3 * W3 * 64))


def _rows_by_block(rows: list[dict], image: int) -> dict[tuple[str, int], dict]:
    return {(r["block"], r["head"]): r for r in rows if r["image"] == image}


def _assert_device_equals_numpy(model: crossformer.CrossFormer, x: torch.Tensor) -> None:
    """Every number ``head_stats`` reports for each image equals the NumPy definition on that image's trace."""
    rows = head_stats(model, x)
    for i in range(x.shape[0]):
        trace = model.forward_trace(x[i:i + 1])
        ref = heads.trace_head_stats(trace)
        mine = _rows_by_block(rows, i)
        assert len(mine) == int(np.sum(ref["heads"]))
        for b, block in enumerate(trace.all_blocks()):
            real = (~block.layout.key_padding).sum(1)                   # real keys (= real queries) per group
            for h in range(block.heads):
                r = mine[(block.name, h)]
                for k in ("entropy", "distance_px", "dpb_share"):          # fp32 sums; batch 2 against batch 1
                    np.testing.assert_allclose(r[k], ref[k][b, h], rtol=1e-5, atol=1e-5, err_msg=f"{k} {r}")
                np.testing.assert_allclose(r["output_rms"], heads.residual_rms(block), rtol=1e-5)
                # uniform attention's entropy, by the same NumPy definition, averaged over real queries
                uniform = [float(attention.entropy(np.full(n, 1.0 / n))) for n in real for _ in range(n)]
                np.testing.assert_allclose(r["uniform_entropy"], np.mean(uniform), rtol=1e-9)


def test_device_statistics_equal_the_numpy_definitions_on_a_random_model():
    torch.manual_seed(5)
    model = crossformer.create_model("crossformer_demo").eval()
    with torch.no_grad():                                  # sharpen q·k: attention far from uniform
        for blk in (b for layer in model.layers for b in layer.blocks):
            blk.attn.qkv.weight.mul_(8.0)
    x = torch.randn(2, 3, 64, 96)                          # padded groups in some stages
    assert any(lay.is_padded for stage in model.plan((64, 96)) for lay in stage)
    _assert_device_equals_numpy(model, x)


def test_uniform_attention_has_the_uniform_entropy_on_both_sides():
    """Zero q·k and zero position bias: every head attends uniformly to its real keys, so both definitions must
    report ``entropy = uniform_entropy = mean ln(real keys)`` and no DPB share — any change of log base or of
    the averaging on either side fails here."""
    torch.manual_seed(6)
    model = crossformer.create_model("crossformer_demo").eval()
    with torch.no_grad():
        for blk in (b for layer in model.layers for b in layer.blocks):
            blk.attn.qkv.weight.zero_()
            if blk.attn.qkv.bias is not None:
                blk.attn.qkv.bias.zero_()
            last = [m for m in blk.attn.pos.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.weight.zero_()
            last.bias.zero_()
    x = torch.randn(1, 3, 64, 96)
    rows = head_stats(model, x)
    trace = model.forward_trace(x)
    ref = heads.trace_head_stats(trace)
    for b, block in enumerate(trace.all_blocks()):
        real = (~block.layout.key_padding).sum(1)
        want = float((real * np.log(np.maximum(real, 1))).sum() / real.sum())
        np.testing.assert_allclose(ref["entropy"][b, : block.heads], want, rtol=1e-5)
        for r in (r for r in rows if r["block"] == block.name):
            assert r["uniform_entropy"] == pytest.approx(want, rel=1e-9)
            assert r["entropy"] == pytest.approx(want, rel=1e-5)
            assert r["dpb_share"] == pytest.approx(0.0, abs=1e-6)
    _assert_device_equals_numpy(model, x)
