"""What the pages say about a picture (pages/common/findings.py), on traces of hand-edited weights whose
answer is known: a constant DPB, uniform attention, a strongly peaked one."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import crossformer
from navon_fixtures import navon_input
from pages.common import findings
from viz.diagnostics import block_head_stats


@pytest.fixture(scope="module")
def model():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        m = crossformer.create_model("crossformer_demo").eval()
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.2 * torch.randn_like(p))
    return m


def _trace(model, x=None):
    x = navon_input(model) if x is None else x
    with torch.no_grad():
        return model.forward_trace(x)


def _edit(model, fn):
    m = copy.deepcopy(model)
    with torch.no_grad():
        fn(m.layers[0].blocks[1].attn)
    return m


def test_constant_bias_is_called_constant_and_a_varying_one_is_not(model):
    def flat(attn):
        attn.pos.pos3[2].weight.zero_()
        attn.pos.pos3[2].bias.fill_(0.016)
    b = _trace(_edit(model, flat)).block(0, 1)
    assert findings.bias_ranges(b).max() < 1e-6
    notes = findings.bias_notes(b, 0)
    assert "Constant bias" in notes[0] and "+0.0160" in notes[0]
    varying = _trace(model).block(0, 1)
    r = findings.bias_ranges(varying)
    assert r[0] > findings.FLAT_BIAS
    assert "Constant" not in findings.bias_notes(varying, 0)[0]
    assert f"{r[0]:.3f}" in findings.bias_notes(varying, 0)[0]


def test_a_small_bias_is_called_small_with_its_bound_on_attention_ratios(model):
    def small(attn):                              # scale the last DPB layer: range ×0.01, still not constant
        attn.pos.pos3[2].weight.mul_(0.01)
        attn.pos.pos3[2].bias.mul_(0.01)
    b = _trace(_edit(model, small)).block(0, 1)
    r = findings.bias_ranges(b)
    assert findings.FLAT_BIAS < r[0] < findings.SMALL_BIAS
    notes = findings.bias_notes(b, 0)
    assert "Small bias" in notes[1] and f"×{np.exp(r[0]):.3f}" in notes[1]
    big = _trace(model).block(0, 1)
    assert findings.bias_ranges(big)[0] >= findings.SMALL_BIAS
    assert not any("Small bias" in n for n in findings.bias_notes(big, 0))


def test_uniform_attention_is_reported_and_a_peaked_one_is_not(model):
    C = model.layers[0].blocks[1].attn.dim

    def uniform(attn):                         # q = 0 and a constant bias → equal logits over real keys
        attn.qkv.weight[:C].zero_()
        attn.qkv.bias[:C].zero_()
        attn.pos.pos3[2].weight.zero_()
    b = _trace(_edit(model, uniform)).block(0, 1)
    notes = findings.attention_notes(b, group=0, member=0, head=0)
    assert notes and notes[0].startswith("**Uniform:**")
    assert findings.uniform_heads(b, 0, 0) == list(range(b.heads))
    assert findings.heads_note(b, 0, 0).startswith("**Every head")

    def peaked(attn):                          # a bias that varies by hundreds → position decides
        attn.pos.pos3[2].weight.mul_(500.0)
    b = _trace(_edit(model, peaked)).block(0, 1)
    notes = findings.attention_notes(b, group=0, member=0, head=0)
    assert not any(n.startswith("**Uniform:**") for n in notes)
    row, real = findings.query_row(b, 0, 0, 0)
    assert row.max() > 5 / real.sum()                       # far from uniform
    assert 0 not in findings.uniform_heads(b, 0, 0)
    assert any(n.startswith("**Position decides:**") for n in notes)


def test_defaults_follow_the_trace(model):
    trace = _trace(model)
    st = block_head_stats(trace)
    names = [b.name for b in trace.all_blocks()]
    for block in trace.all_blocks():
        pick = findings.attention_pick(trace, block)
        row = st["entropy"][names.index(block.name), : block.heads]
        assert pick.head == int(np.argmin(row))
        assert f"Head {pick.head}" in pick.why
    dpb = findings.dpb_pick(trace)
    best = max((findings.bias_ranges(b)[h], b.stage, b.index, h) for b in trace.all_blocks() for h in range(b.heads))
    assert (dpb.stage, dpb.block, dpb.head) == best[1:]


def test_salient_token_is_on_the_figure_not_the_paper():
    """On a clean Navon figure (dark ink, light paper) the default query lands on ink."""
    from crossformer import navon
    model, _ = crossformer.load_checkpoint(navon_fixtures_weights())
    img = navon.render_navon("triangle", "square", (224, 224), element_size=12.0, seed=3, noise=0.0)
    x = navon_input(model, img)
    with torch.no_grad():
        trace = model.forward_trace(x)
    h, w = findings.salient_token(trace)
    patch = img[h * 4:(h + 1) * 4, w * 4:(w + 1) * 4].astype(float).mean(-1)
    paper = np.median(img.astype(float).mean(-1))
    dark = img.astype(float).mean(-1) < paper - 30
    ys, xs = np.nonzero(dark)
    # the token lies within the figure's bounding box (the global shape), not on the empty margin
    assert ys.min() - 8 <= h * 4 + 2 <= ys.max() + 8 and xs.min() - 8 <= w * 4 + 2 <= xs.max() + 8, (h, w)
    assert patch.size


def navon_fixtures_weights() -> str:
    from pages.common.settings import DEMO_WEIGHTS
    if not DEMO_WEIGHTS.exists():
        pytest.skip("demo weights missing")
    return str(DEMO_WEIGHTS)


def test_tiny_inputs_with_one_token_groups_still_pick_a_head():
    """At 32 px the last stages are 1×1 maps (ln N = 0): the picks must not fail (found by the monkey test)."""
    model = crossformer.create_model("crossformer_demo").eval()
    with torch.no_grad():
        trace = model.forward_trace(torch.randn(1, 3, 32, 48))
    for block in trace.all_blocks():
        pick = findings.attention_pick(trace, block)
        assert 0 <= pick.head < block.heads
    findings.dpb_pick(trace)


def test_mean_entropy_is_the_diagnostics_entropy(model):
    trace = _trace(model)
    st = block_head_stats(trace)
    for i, b in enumerate(trace.all_blocks()):
        np.testing.assert_allclose(findings.mean_entropy(b), st["entropy"][i, : b.heads], atol=1e-5)


def test_class_evidence_sums_to_each_logit(model):
    """The per-token class map is exact: for every class it sums to the logit minus the head's bias."""
    trace = _trace(model)
    w, b = model.norm.weight.detach().numpy(), model.norm.bias.detach().numpy()
    for c in range(model.cfg.num_classes):
        ev = findings.class_evidence(trace, w, b, model.head.weight.detach()[c].numpy(), eps=model.norm.eps)
        assert ev.shape == trace.stage_hw[-1]
        np.testing.assert_allclose(ev.sum() + float(model.head.bias.detach()[c]), trace.logits[0, c], atol=1e-4)


@pytest.mark.parametrize("cell", [(0, 0), (1, 2), (-1, -1)])
def test_object_token_lies_in_the_cell_with_the_most_evidence(model, cell):
    from crossformer import navon
    trace = _trace(model, navon_input(model, navon.render_navon("circle", "cross", (200, 264), seed=1)))
    evidence = np.zeros(trace.stage_hw[-1])
    evidence[cell] = 1.0
    cell = tuple(int(c) % n for c, n in zip(cell, evidence.shape))
    h, w = findings.object_token(trace, evidence)
    r = trace.stage_stride(3) // trace.stage_stride(0)
    assert (h // r, w // r) == cell
