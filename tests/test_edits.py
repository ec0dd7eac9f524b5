"""Call-scoped edits (issue 14): each kind equals a hand-edited copy of the weights, nothing leaks out of the call."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch

import crossformer
from crossformer import Edit
from crossformer.geometry import plan_layout

SMALL = dict(embed_dim=32, depths=(1, 2, 2, 1), num_heads=(2, 2, 4, 4), num_classes=10)
SIZES = [(72, 88), (64, 64)]           # 72×88 pads in stages 0–1; 64×64 does not
BLOCKS = [(0, 0), (1, 1), (2, 1)]       # SDA, LDA, and a small (global) map


@pytest.fixture(scope="module")
def model() -> crossformer.CrossFormer:
    """Small v1 model with random perturbed weights: no bias, DPB row or LayerNorm is trivially 0 or 1."""
    torch.manual_seed(0)
    m = crossformer.create_model("crossformer_t", **SMALL).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():   # large enough that the DPB and q·k terms matter,
            std = 0.02 if name.startswith("head.") else 1.0 if ".pos.pos3.2." in name else 0.2   # logits O(1)
            p.add_(std * torch.randn_like(p))
    return m


def image(hw, batch: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, *hw, generator=torch.Generator().manual_seed(seed))


def attn_of(m, where):
    return m.layers[where[0]].blocks[where[1]].attn


def rows(head, hd, total):
    """Index range of one head's ``hd`` channels (all ``total`` when head is None)."""
    return slice(0, total) if head is None else slice(head * hd, (head + 1) * hd)


def hand_edited(model, where, kind, head):
    """A deep copy whose weights do what the edit does."""
    m = copy.deepcopy(model)
    a = attn_of(m, where)
    C, hd = a.dim, a.head_dim
    r = rows(head, hd, C)
    dpb = a.pos.pos3[2]
    dpb_rows = slice(None) if head is None else slice(head, head + 1)
    with torch.no_grad():
        if kind == "zero":
            a.proj.weight[:, r] = 0.0                     # proj's input columns of the head
        if kind in ("no_dpb", "uniform"):
            dpb.weight[dpb_rows] = 0.0                    # last DPB layer: that head's output row
            dpb.bias[dpb_rows] = 0.0
        if kind == "uniform":
            a.qkv.weight[r] = 0.0                         # q rows (first C rows) of the head
            a.qkv.bias[r] = 0.0
    return m


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("where", BLOCKS)
@pytest.mark.parametrize("kind", ["zero", "no_dpb", "uniform"])
@pytest.mark.parametrize("head", [None, 1])
def test_head_edits_equal_hand_edited_weights(model, hw, where, kind, head):
    x = image(hw)
    copy_m = hand_edited(model, where, kind, head)
    edit = Edit(*where, kind, head=head)
    with torch.no_grad():
        edited, expect = model.forward_edited(x, [edit]), copy_m(x)
    np.testing.assert_allclose(edited.numpy(), expect.numpy(), atol=1e-5)

    # the trace records the edited attention: the same numbers as the copy's trace
    got, ref = model.forward_trace(x, edits=[edit]), copy_m.forward_trace(x)
    np.testing.assert_allclose(got.logits, edited.numpy(), atol=1e-5)
    b, rb = got.block(*where), ref.block(*where)
    plain = model.forward_trace(x).block(*where)
    assert np.abs(b.output - plain.output).max() > 1e-4, "the edit must change the block's output"
    for field in ("attention", "dpb_table", "dpb_bias", "output"):
        np.testing.assert_allclose(getattr(b, field), getattr(rb, field), atol=1e-5, err_msg=field)
    if kind == "uniform":                       # uniform over the real keys of each group
        pad = b.layout.key_padding                                       # (nG, N)
        live = ~pad.all(axis=1)
        sel = slice(None) if head is None else slice(head, head + 1)
        att = b.attention[:, live][:, :, sel]                            # (B, nG', h', N, N)
        real = (~pad[live]).sum(1)[None, :, None, None, None]
        want = np.where(pad[live][None, :, None, None, :], 0.0, 1.0 / real)
        np.testing.assert_allclose(att, np.broadcast_to(want, att.shape), atol=1e-6)


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("where", [(0, 0), (1, 1), (2, 0)])
def test_swap_runs_the_other_layout(model, hw, where):
    x = image(hw)
    blk = model.layers[where[0]].blocks[where[1]]
    other = {"sda": "lda", "lda": "sda"}[blk.kind]
    trace = model.forward_trace(x, edits=[Edit(*where, "swap")])
    lay = trace.block(*where).layout
    expect = plan_layout(other, lay.feature_hw, blk.group_size, blk.interval)
    assert lay.configured_kind == other and lay.kind == expect.kind
    np.testing.assert_array_equal(lay.members, expect.members)
    if not expect.is_global:
        assert lay.kind == other

    flipped = copy.deepcopy(model)
    flipped.layers[where[0]].blocks[where[1]].kind = other
    with torch.no_grad():
        got, ref = model.forward_edited(x, [Edit(*where, "swap")]), flipped(x)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(trace.logits, ref.numpy(), atol=1e-5)
    assert blk.kind != other, "the original model is untouched"


def test_empty_edits_are_plain_and_edits_never_stick(model):
    x = image((72, 88), batch=2)
    with torch.no_grad():
        plain = model(x)
        assert torch.equal(model.forward_edited(x, []), plain)
        model.forward_edited(x, [Edit(0, 0, "zero"), Edit(1, 1, "swap"), Edit(2, 1, "uniform", head=2)])
        model.forward_trace(x, edits=[Edit(3, 0, "no_dpb")])
        assert torch.equal(model(x), plain)
    np.testing.assert_allclose(model.forward_trace(x).logits, plain.numpy(), atol=1e-5)
    assert not any(k.startswith("_edit") for m in model.modules() for k in vars(m))


def test_fused_and_explicit_paths_honour_edits(model):
    x = image((72, 88))
    edits = [Edit(0, 0, "uniform", head=0), Edit(1, 1, "no_dpb"), Edit(2, 0, "zero", head=3)]
    explicit = copy.deepcopy(model).set_fused_attention(False)
    with torch.no_grad():
        np.testing.assert_allclose(model.forward_edited(x, edits).numpy(),
                                   explicit.forward_edited(x, edits).numpy(), atol=1e-5)


def test_per_sample_edits(model):
    x = image((72, 88), batch=3)
    e = Edit(1, 0, "zero", head=1)
    with torch.no_grad():
        got = model.forward_edited(x, [Edit(1, 0, "zero", head=1, sample=1), Edit(2, 1, "uniform", sample=2)])
        plain = model(x)
        one = model.forward_edited(x[1:2], [e])
        two = model.forward_edited(x[2:3], [Edit(2, 1, "uniform")])
    np.testing.assert_allclose(got[0].numpy(), plain[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(got[1].numpy(), one[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(got[2].numpy(), two[0].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="sample=None"):
        model.forward_trace(x, edits=[Edit(1, 0, "zero", sample=0)])


def test_threads_never_see_each_others_edits(model):
    """One thread loops plain forwards while another runs heavily edited ones on the same model."""
    x = image((72, 88))
    edits = [Edit(s, j, "zero") for s, d in enumerate(SMALL["depths"]) for j in range(d)] + [Edit(0, 0, "swap")]
    with torch.no_grad():
        base, edited_ref = model(x), model.forward_edited(x, edits)
    assert (base - edited_ref).abs().max() > 1e-3
    errors: list[str] = []
    stop = threading.Event()

    def plain_loop():
        with torch.no_grad():
            n = 0
            while not stop.is_set() or n < 20:
                out = model(x)
                if not torch.allclose(out, base, atol=1e-6, rtol=0):
                    errors.append(f"plain forward {n} saw an edit: {(out - base).abs().max():.3g}")
                n += 1

    def edited_loop():
        with torch.no_grad():
            for n in range(20):
                out = model.forward_edited(x, edits)
                if not torch.allclose(out, edited_ref, atol=1e-6, rtol=0):
                    errors.append(f"edited forward {n} differs: {(out - edited_ref).abs().max():.3g}")

    plain = threading.Thread(target=plain_loop)
    plain.start()
    try:
        edited_loop()
    finally:
        stop.set()
        plain.join(timeout=120)
    assert not plain.is_alive() and not errors, errors[:3]


@pytest.mark.parametrize("edit, message", [
    (Edit(4, 0, "zero"), "stage 4 out of range"),
    (Edit(0, 1, "zero"), "block 1 out of range"),
    (Edit(2, 0, "uniform", head=4), "head 4 out of range"),
    (Edit(0, 0, "no_dpb", sample=1), "sample 1 out of range"),
])
def test_out_of_range_edits_are_refused(model, edit, message):
    with pytest.raises(ValueError, match=message):
        model.forward_edited(image((64, 64)), [edit])


@pytest.mark.parametrize("kwargs, message", [
    (dict(stage=0, block=0, kind="drop"), "kind must be one of"),
    (dict(stage=0, block=0, kind="swap", head=0), "takes no head"),
    (dict(stage=-1, block=0, kind="zero"), "stage must be an int"),
    (dict(stage=0, block=0, kind="zero", head=-2), "head must be None or an int"),
    (dict(stage=0, block=1.0, kind="zero"), "block must be an int"),
])
def test_bad_edits_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Edit(**kwargs)


def test_not_an_edit_is_refused(model):
    with pytest.raises(ValueError, match="crossformer.Edit"):
        model.forward_edited(image((64, 64)), [(0, 0, "zero")])


@pytest.mark.parametrize("kind", ["zero", "uniform"])
def test_head_importance_equals_single_edited_forwards(model, kind):
    x = image((72, 88))
    calls: list[tuple[int, int]] = []
    res = crossformer.head_importance(model, x, target=3, kind=kind, precision="fp32", batch=5,
                                      progress=lambda d, t: calls.append((d, t)))
    total = sum(h * d for h, d in zip(SMALL["num_heads"], SMALL["depths"]))
    assert calls[-1] == (total, total) and len(calls) == -(-total // 5)
    assert res["blocks"][:3] == ["s0_b0", "s1_b0", "s1_b1"] and res["precision"] == "fp32"
    with torch.no_grad():
        base = model(x)[0]
        assert res["base_logit"] == pytest.approx(float(base[3]), abs=1e-5)
        for row, ((s, j), n) in enumerate(zip(res["where"], res["heads"])):
            assert np.isnan(res["delta_logit"][row, n:]).all()
            for h in range(n):
                logits = model.forward_edited(x, [Edit(s, j, kind, head=h)])[0]
                assert res["delta_logit"][row, h] == pytest.approx(float(logits[3] - base[3]), abs=1e-4)
                p = float(logits.softmax(-1)[3] - base.softmax(-1)[3])
                assert res["delta_prob"][row, h] == pytest.approx(p, abs=1e-4)


def test_head_importance_refuses_bad_arguments(model):
    with pytest.raises(ValueError, match="kind"):
        crossformer.head_importance(model, image((64, 64)), 0, kind="swap")
    with pytest.raises(ValueError, match="one image"):
        crossformer.head_importance(model, image((64, 64), batch=2), 0)
    with pytest.raises(ValueError, match="target"):
        crossformer.head_importance(model, image((64, 64)), 10)


# ---- CrossFormer++ (explicit interval): swaps and swap + head edit (issue 28, mutation audit) ---------
PP_HW = (96, 96)   # stage maps 24, 12, 6, 3: stage 0 (G 4, I 4) and 1 (G 4, I 2) differ from the v1 rule ⌈H/G⌉


@pytest.fixture(scope="module")
def pp_model() -> crossformer.CrossFormer:
    """Small CrossFormer++ (progressive G 4/4/14/7, explicit I 4/2/1/1) with perturbed weights; DPB width
    ≥ 8 so the bias varies with the offset in every stage (at the official C/16 = 2 it can be flat)."""
    torch.manual_seed(0)
    m = crossformer.create_model("crossformer_pp_s", embed_dim=32, depths=(2, 2, 2, 2), num_heads=(2, 2, 4, 4),
                                 num_classes=10, dpb_min_dim=8).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            std = 0.02 if name.startswith("head.") else 1.0 if ".pos.pos3.2." in name else 0.2
            p.add_(std * torch.randn_like(p))
    return m


def flipped(model, where):
    """A deep copy whose block ``where`` is built as the other kind (SDA ↔ LDA), keeping its G and I."""
    m = copy.deepcopy(model)
    blk = m.layers[where[0]].blocks[where[1]]
    blk.kind = {"sda": "lda", "lda": "sda"}[blk.kind]
    return m


@pytest.mark.parametrize("where", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_swap_on_crossformer_pp_keeps_the_blocks_explicit_interval(pp_model, where):
    """A swapped ++ block groups with its own G and explicit I — checked on hand-computed members (SDA → LDA:
    members I apart; LDA → SDA: a G × G window) where I is not the v1 rule ⌈H/G⌉, and against a copy built
    as the other kind."""
    x = image(PP_HW)
    blk = pp_model.layers[where[0]].blocks[where[1]]
    G, I, side = blk.group_size, blk.interval, PP_HW[0] // 4 // 2 ** where[0]
    assert I is not None and I != -(-side // G)
    lay = pp_model.forward_trace(x, edits=[Edit(*where, "swap")]).block(*where).layout
    step = I if blk.kind == "sda" else 1                 # the kind it swaps to is the other one
    assert lay.configured_kind != blk.kind
    assert {tuple(p) for p in lay.positions[0]} == {(step * a, step * b) for a in range(G) for b in range(G)}
    assert lay.padded_hw == (-(-side // (G * step)) * G * step,) * 2
    with torch.no_grad():
        got, ref = pp_model.forward_edited(x, [Edit(*where, "swap")]), flipped(pp_model, where)(x)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["zero", "uniform", "no_dpb"])
@pytest.mark.parametrize("which,where", [("pp", (0, 0)), ("pp", (1, 1)), ("v1", (1, 1))])
def test_swap_and_head_edit_on_the_same_block(model, pp_model, which, where, kind):
    """A swap and a head edit of one block together equal a copy built as the other kind whose weights
    were hand-edited for the head (and differ from either edit alone)."""
    m, hw = (pp_model, PP_HW) if which == "pp" else (model, SIZES[0])
    x = image(hw)
    ref = flipped(hand_edited(m, where, kind, head=1), where)
    both = [Edit(*where, "swap"), Edit(*where, kind, head=1)]
    with torch.no_grad():
        got, want = m.forward_edited(x, both), ref(x)
        swap_only, head_only = m.forward_edited(x, both[:1]), m.forward_edited(x, both[1:])
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    assert (got - swap_only).abs().max() > 1e-4 and (got - head_only).abs().max() > 1e-4
    trace = m.forward_trace(x, edits=both)
    np.testing.assert_allclose(trace.logits, want.numpy(), atol=1e-5)
    assert trace.block(*where).layout.configured_kind != m.layers[where[0]].blocks[where[1]].kind
