"""The informative defaults and the numbers behind what the pages say (crossformer/analysis/findings.py):
the picks, the salient and object tokens, the class evidence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from findings_model import model, trace_of  # noqa: F401 — model is a fixture

import crossformer
from crossformer.analysis import findings
from crossformer.analysis.heads import mean_entropy, trace_head_stats
from navon_fixtures import navon_input


def test_defaults_follow_the_trace(model):
    trace = trace_of(model)
    st = trace_head_stats(trace)
    names = [b.name for b in trace.all_blocks()]
    for block in trace.all_blocks():
        pick = findings.attention_pick(block)
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
        pick = findings.attention_pick(block)
        assert 0 <= pick.head < block.heads
    findings.dpb_pick(trace)


def test_mean_entropy_is_the_diagnostics_entropy(model):
    trace = trace_of(model)
    st = trace_head_stats(trace)
    for i, b in enumerate(trace.all_blocks()):
        np.testing.assert_allclose(mean_entropy(b), st["entropy"][i, : b.heads], atol=1e-5)


def test_class_evidence_sums_to_each_logit(model):
    """The per-token class map is exact: for every class it sums to the logit minus the head's bias."""
    trace = trace_of(model)
    w, b = model.norm.weight.detach().numpy(), model.norm.bias.detach().numpy()
    for c in range(model.cfg.num_classes):
        ev = findings.class_evidence(trace, w, b, model.head.weight.detach()[c].numpy(), eps=model.norm.eps)
        assert ev.shape == trace.stage_hw[-1]
        np.testing.assert_allclose(ev.sum() + float(model.head.bias.detach()[c]), trace.logits[0, c], atol=1e-4)


@pytest.mark.parametrize("cell", [(0, 0), (1, 2), (-1, -1)])
def test_object_token_lies_in_the_cell_with_the_most_evidence(model, cell):
    from crossformer import navon
    trace = trace_of(model, navon_input(model, navon.render_navon("circle", "cross", (200, 264), seed=1)))
    evidence = np.zeros(trace.stage_hw[-1])
    evidence[cell] = 1.0
    cell = tuple(int(c) % n for c, n in zip(cell, evidence.shape))
    h, w = findings.object_token(trace, evidence)
    r = trace.stage_stride(3) // trace.stage_stride(0)
    assert (h // r, w // r) == cell


def test_default_query_is_the_salient_token_without_a_readout_and_the_object_token_with_one(model):
    trace = trace_of(model)
    plain = findings.default_query(trace)
    assert plain.token == findings.salient_token(trace)
    assert plain.reason.startswith("Default query: the token where the cross-scale embedding")
    w, b = model.norm.weight.detach().numpy(), model.norm.bias.detach().numpy()
    head = model.head.weight.detach().numpy()
    names = [f"name {i}" for i in range(model.cfg.num_classes)]
    q = findings.default_query(trace, findings.Readout(w, b, head, model.norm.eps), names)
    top = int(np.argmax(trace.logits[0]))
    evidence = findings.class_evidence(trace, w, b, head[top], eps=model.norm.eps)
    assert q.token == findings.object_token(trace, evidence)
    assert f"“name {top}”" in q.reason and q.reason.startswith("Default query: on the predicted object")


def test_bias_extent_and_query_numbers_read_the_trace(model):
    block = trace_of(model).block(0, 1)
    t = np.asarray(block.dpb_table, np.float64)
    for h in range(block.heads):
        e = findings.bias_extent(block, h)
        assert (e.low, e.high, e.span) == pytest.approx((t[:, h].min(), t[:, h].max(), np.ptp(t[:, h])))
        assert e.mean == pytest.approx(t[:, h].mean())
    row, real = findings.query_row(block, 0, 0, 0)
    p = row[real]
    assert findings.entropy_ratio(row, real) == pytest.approx(-(p * np.log(p)).sum() / np.log(real.sum()))
    share = findings.query_dpb_share(block, 0, 0, 0)
    content = np.exp(block.content[0, 0, 0, 0] - block.content[0, 0, 0, 0][real].max())
    content = np.where(real, content, 0.0) / np.where(real, content, 0.0).sum()
    assert share == pytest.approx(0.5 * np.abs(np.where(real, row, 0.0) - content).sum(), abs=1e-6)


def test_query_focus_bias_factor_and_confidence_by_hand(model):
    from crossformer.analysis.predictions import confidence
    block = trace_of(model).block(0, 1)
    row, real = findings.query_row(block, 0, 0, 0)
    focus = findings.query_focus(row, real)
    assert (focus.n_real, focus.top_member, focus.top) == (int(real.sum()), int(np.argmax(row)), float(row.max()))
    assert block.layout.real_members(0) == int((block.layout.members[0] >= 0).sum()) == focus.n_real
    e = findings.bias_extent(block, 0)
    assert e.ratio_factor == pytest.approx(np.exp(np.ptp(np.asarray(block.dpb_table, np.float64)[:, 0])))
    c = confidence(np.log(np.array([0.5, 0.25, 0.25])))
    assert (c.top_prob, c.num_classes) == (pytest.approx(0.5), 3) and c.max_entropy == pytest.approx(np.log(3))


def test_a_padded_group_counts_only_its_real_members():
    from crossformer.geometry import plan_layout
    lay = plan_layout("sda", (9, 9), 7, 8)
    assert lay.is_padded
    counts = [lay.real_members(g) for g in range(lay.num_groups)]
    assert sum(counts) == 81 and min(counts) < lay.group_tokens
