"""What the pages say about a picture (pages/common/findings.py), on traces of hand-edited weights whose
answer is known: a constant DPB, uniform attention, a strongly peaked one. The numbers behind the sentences
are tested in test_analysis_findings.py."""

from __future__ import annotations

import copy

import numpy as np
import torch
from findings_model import model, trace_of  # noqa: F401 — model is a fixture

from crossformer.analysis import findings as af
from pages.common import findings


def _edit(model, fn):
    m = copy.deepcopy(model)
    with torch.no_grad():
        fn(m.layers[0].blocks[1].attn)
    return m


def test_constant_bias_is_called_constant_and_a_varying_one_is_not(model):
    def flat(attn):
        attn.pos.pos3[2].weight.zero_()
        attn.pos.pos3[2].bias.fill_(0.016)
    b = trace_of(_edit(model, flat)).block(0, 1)
    assert af.bias_ranges(b).max() < 1e-6
    notes = findings.bias_notes(b, 0)
    assert "Constant bias" in notes[0] and "+0.0160" in notes[0]
    varying = trace_of(model).block(0, 1)
    r = af.bias_ranges(varying)
    assert r[0] > af.FLAT_BIAS
    assert "Constant" not in findings.bias_notes(varying, 0)[0]
    assert f"{r[0]:.3f}" in findings.bias_notes(varying, 0)[0]


def test_a_small_bias_is_called_small_with_its_bound_on_attention_ratios(model):
    def small(attn):                              # scale the last DPB layer: range ×0.01, still not constant
        attn.pos.pos3[2].weight.mul_(0.01)
        attn.pos.pos3[2].bias.mul_(0.01)
    b = trace_of(_edit(model, small)).block(0, 1)
    r = af.bias_ranges(b)
    assert af.FLAT_BIAS < r[0] < af.SMALL_BIAS
    notes = findings.bias_notes(b, 0)
    assert "Small bias" in notes[1] and f"×{np.exp(r[0]):.3f}" in notes[1]
    big = trace_of(model).block(0, 1)
    assert af.bias_ranges(big)[0] >= af.SMALL_BIAS
    assert not any("Small bias" in n for n in findings.bias_notes(big, 0))


def test_uniform_attention_is_reported_and_a_peaked_one_is_not(model):
    C = model.layers[0].blocks[1].attn.dim

    def uniform(attn):                         # q = 0 and a constant bias → equal logits over real keys
        attn.qkv.weight[:C].zero_()
        attn.qkv.bias[:C].zero_()
        attn.pos.pos3[2].weight.zero_()
    b = trace_of(_edit(model, uniform)).block(0, 1)
    notes = findings.attention_notes(b, group=0, member=0, head=0)
    assert notes and notes[0].startswith("**Uniform:**")
    assert af.query_uniform_heads(b, 0, 0) == list(range(b.heads))
    assert findings.heads_note(b, 0, 0).startswith("**Every head")

    def peaked(attn):                          # a bias that varies by hundreds → position decides
        attn.pos.pos3[2].weight.mul_(500.0)
    b = trace_of(_edit(model, peaked)).block(0, 1)
    notes = findings.attention_notes(b, group=0, member=0, head=0)
    assert not any(n.startswith("**Uniform:**") for n in notes)
    row, real = af.query_row(b, 0, 0, 0)
    assert row.max() > 5 / real.sum()                       # far from uniform
    assert 0 not in af.query_uniform_heads(b, 0, 0)
    assert any(n.startswith("**Position decides:**") for n in notes)
