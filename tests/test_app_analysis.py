"""Numbers the pages show (crossformer/analysis: cost, explain, predictions, tokens; pages/common/texts.py,
models.py), on a small real trace."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import crossformer
from crossformer.analysis import cost, explain, facts, predictions, tokens
from crossformer.geometry import NEG_INF, plan_layout
from pages.common import models, texts
from viz.parity_figures import group_errors


@pytest.fixture(scope="module")
def demo():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = crossformer.create_model("crossformer_demo").eval()
    x = torch.randn(1, 3, 64, 96)
    return model, x, model.forward_trace(x)


def test_top_k_orders_by_probability():
    logits = np.array([0.0, 3.0, 1.0, 2.0])
    rows = predictions.top_k(logits, ["a", "b", "c", "d"], k=3)
    assert [r[1] for r in rows] == ["b", "d", "c"]
    p = np.exp(logits) / np.exp(logits).sum()
    assert rows[0][2] == pytest.approx(p[1])


def test_attention_cost_counts_pairs():
    lay = plan_layout("sda", (24, 24), 7, None)       # padded to 28×28: 16 windows of 49
    c = cost.attention_cost(lay)
    assert (c.groups, c.group_tokens, c.full_pairs, c.group_pairs) == (16, 49, 576 ** 2, 16 * 49 ** 2)
    assert c.ratio == pytest.approx(16 * 49 ** 2 / 576 ** 2)
    assert facts.human(38416) == "38.4 k"


def test_stage_rows_follow_the_trace(demo):
    _, _, trace = demo
    rows = cost.stage_rows(trace)
    assert [r["tokens"] for r in rows] == [f"{h}×{w}" for h, w in trace.stage_hw]
    assert rows[0]["px/token"] == 4 and rows[3]["px/token"] == 32
    lda = trace.block(0, 1).layout
    assert rows[0]["LDA groups"] == lda.num_groups and rows[0]["I (LDA)"] == (str(lda.interval[0]) if lda.interval[0] == lda.interval[1]
                                                               else f"{lda.interval[0]}×{lda.interval[1]}")
    assert rows[0]["LDA padded to"] == f"{lda.padded_hw[0]}×{lda.padded_hw[1]}" != "16×24"
    last = trace.block(3, 0).layout                                   # 2×3 tokens: one global group
    assert rows[3]["G"] == f"{last.group_size} (global)" and rows[3]["SDA groups"] == 1


def test_explain_attention_recomputes_the_stored_weight(demo):
    _, _, trace = demo
    block = trace.block(0, 1)                           # LDA, heavily padded at 64×96
    flat = trace.flat()
    L = block.layout
    g = int(np.argmax((L.members < 0).any(axis=1)))     # a group with padding
    k_pad = int(np.flatnonzero(L.members[g] < 0)[0])
    q = int(np.flatnonzero(L.members[g] >= 0)[0])
    k_real = int(np.flatnonzero(L.members[g] >= 0)[-1])
    for k in (k_real, k_pad):
        ex = explain.explain_attention(block, flat, head=0, group=g, query=q, key=k)
        s = {st.what: st for st in ex.steps}
        assert all(st.diff == 0 for st in ex.steps)           # same arrays on both sides
        stored = float(block.attention[0, g, 0, q, k])
        assert s["= weight"].pytorch == pytest.approx(stored, abs=1e-6)
        assert s["= logit"].pytorch == pytest.approx(s["q·k"].pytorch + s["+ DPB bias"].pytorch
                                                     + s["+ mask"].pytorch)
        assert s["+ DPB bias"].pytorch == pytest.approx(float(block.dpb_table[L.relative_index[q, k], 0]))
    assert ex.key_is_padding and s["+ mask"].pytorch == NEG_INF and s["= weight"].pytorch < 1e-30


def test_explain_attention_against_the_numpy_reference(demo):
    model, x, trace = demo
    from crossformer import reference
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    _, ref = reference.forward(weights, x.numpy(), model.cfg)
    block = trace.block(1, 1)
    g, m = block.layout.locate((3, 4))
    ex = explain.explain_attention(block, ref, head=1, group=g, query=m, key=0)
    assert max(st.diff for st in ex.steps if st.what not in ("+ mask",)) < 1e-4
    grouped = group_errors(reference.compare(trace.flat(), ref))
    assert set(grouped["s1_b1"]) >= {"attention", "content", "dpb_table", "dpb_bias", "output", "members"}
    assert "embedding" in grouped and "merge 0" in grouped and "head" in grouped
    assert explain.worst(reference.compare(trace.flat(), ref))[1] < 1e-4


def test_query_maps_between_pixels_tokens_and_members(demo):
    _, _, trace = demo
    assert tokens.token_of_pixel((37, 90), (16, 24), 4) == (9, 22)
    assert tokens.token_of_pixel((999, -5), (16, 24), 4) == (15, 0)     # clamped
    assert tokens.pixel_of_token((9, 22), 4) == (38, 90)
    L = trace.block(0, 1).layout
    g, n = L.locate((9, 22))
    assert L.members[g, n] == 9 * 24 + 22


def test_teaching_text_carries_live_numbers(demo):
    _, _, trace = demo
    txt = texts.groups_intro(trace, 0)
    lda = trace.block(0, 1).layout
    assert "16×24 tokens" in txt and f"I = {lda.interval[0]}" in txt and f"{lda.num_groups} groups" in txt
    assert "%" in texts.overview_intro(trace, "demo")
    att = texts.attention_intro(trace.block(0, 0), (1, 2), 0, 5)
    assert "member 5 of group 0" in att


def test_missing_demo_weights_fall_back_to_random_with_a_warning(tmp_path):
    b = models.build_demo("demo:test", torch.device("cpu"), path=tmp_path / "missing.safetensors")
    assert not b.trained and any("RANDOM" in n for n in b.notes)
    assert len(b.class_names) == b.cfg.num_classes == 25
    assert not b.model.training


def test_class_names_for_imagenet_and_demo():
    names = models.imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[281] == "tabby"
    cfg = crossformer.get_config("crossformer_t")
    assert models.class_names_for(cfg, "crossformer_t")[1] == "goldfish"
    assert math.isclose(len(models.class_names_for(crossformer.get_config("crossformer_demo"), models.DEMO)), 25)


def test_trace_download_holds_every_array_of_the_trace(demo):
    import io
    from pages.common.traces import trace_npz
    _, x, trace = demo
    data = trace_npz(trace, {"model_id": "demo:test", "input_pixels": np.zeros((64, 96, 3), np.uint8)})
    with np.load(io.BytesIO(data)) as z:
        flat = trace.flat()
        assert set(z.files) == set(flat) | {"meta.model_id", "meta.input_pixels"}
        np.testing.assert_array_equal(z["blocks.s0_b1.attention"], flat["blocks.s0_b1.attention"])
        assert str(z["meta.model_id"]) == "demo:test"


def test_demo_weights_file_is_loaded_when_present(tmp_path):
    from crossformer.checkpoint import save_safetensors
    from crossformer.navon import CLASS_NAMES
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = crossformer.create_model("crossformer_demo")
    path = tmp_path / "crossformer_demo.safetensors"
    save_safetensors(model, path, {"variant": "crossformer_demo"})
    b = models.build_demo(models.demo_model_id(path), torch.device("cpu"), path=path)
    assert b.trained and b.variant == models.DEMO and b.notes == ()
    assert b.class_names == tuple(CLASS_NAMES)
    assert b.model_id.startswith("demo:") and b.model_id != "demo:random"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[k], v)


def test_a_failed_export_downloads_a_note_instead_of_raising():
    from pages.common.widgets import _safe
    assert _safe(lambda: b"ok")() == b"ok"
    assert _safe(lambda: 1 / 0)().startswith(b"Export failed: ZeroDivisionError")


@pytest.mark.parametrize("kind, hw, G, I", [("lda", (56, 84), 7, None), ("lda", (50, 66), 7, None),
                                            ("lda", (120, 160), 4, 4), ("lda", (30, 40), 14, 1),
                                            ("sda", (45, 60), 7, None), ("lda", (5, 6), 7, None)])
def test_span_sentences_carry_the_layouts_numbers(kind, hw, G, I):
    """The attention page's span sentence is computed from the layout (demo v1 and ++ layouts, odd sizes)."""
    L = plan_layout(kind, hw, G, I)
    px = 4
    for group in (0, L.num_groups - 1):
        text = facts.span_sentence(L, group, px, (hw[0] * px, hw[1] * px))
        if L.is_global:
            assert "global attention" in text
            continue
        m = L.members[group]
        t = m[m >= 0]
        rows, cols = t // hw[1], t % hw[1]
        sh, sw = (rows.max() - rows.min() + 1) * px, (cols.max() - cols.min() + 1) * px
        assert f"{sh}×{sw} px" in text            # one size format: facts.hw_text (H×W)
        pad = int((m < 0).sum())
        assert (f"{pad} of its {L.group_tokens} slots are padding" in text) == (pad > 0)
        if kind == "lda" and tuple(L.interval) == (1, 1):
            assert "exactly as SDA" in text
        elif kind == "lda":
            assert f"{L.interval[0] * px}" in text and "apart" in text


def test_confidence_is_the_top_probability_and_entropy_of_the_softmax():
    logits = np.array([2.0, 0.5, -1.0, 0.0])
    p = np.exp(logits) / np.exp(logits).sum()
    c = predictions.confidence(logits)
    assert c.top_prob == pytest.approx(p.max()) and c.num_classes == 4
    assert c.entropy_nats == pytest.approx(-(p * np.log(p)).sum())
