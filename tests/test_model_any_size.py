"""Any input size: stage sizes, padding, masks and group membership follow the input (SPEC §4.2–§4.3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crossformer
from crossformer.geometry import plan_layout, stage_hw

TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 4), num_classes=3)
TINY_PP = dict(embed_dim=16, depths=(2, 2, 3, 2), num_heads=(1, 1, 2, 4), num_classes=3, group_size=(4, 4, 14, 7),
               interval=(4, 2, 1, 1), use_acl=True)


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return {"v1": crossformer.create_model("crossformer_t", **TINY).eval(),
            "pp": crossformer.create_model("crossformer_pp_s", **TINY_PP).eval()}


def check_layout_invariants(layout) -> None:
    """Invariants every grouping must satisfy, from its index maps alone."""
    H, W = layout.feature_hw
    nG, N = layout.members.shape
    G = layout.group_size
    assert N == G * G
    real = layout.members[layout.members >= 0]
    assert np.array_equal(np.sort(real), np.arange(H * W))          # every real token exactly once
    Hp, Wp = layout.padded_hw
    assert nG * N == Hp * Wp and Hp >= H and Wp >= W
    pos = layout.positions                                              # (nG, N, 2)
    r, c = np.divmod(np.arange(N), G)
    Ih, Iw = layout.interval
    # members of a group form a G×G lattice with steps (I_h, I_w): exactly I apart (SDA: contiguous window)
    np.testing.assert_array_equal(pos[:, :, 0] - pos[:, :1, 0], np.broadcast_to(r * Ih, (nG, N)))
    np.testing.assert_array_equal(pos[:, :, 1] - pos[:, :1, 1], np.broadcast_to(c * Iw, (nG, N)))
    # the padded-grid maps agree with members
    flat_tok = np.full((Hp, Wp), -1)
    flat_tok[:H, :W] = np.arange(H * W).reshape(H, W)
    np.testing.assert_array_equal(flat_tok[pos[..., 0], pos[..., 1]], layout.members)
    assert np.array_equal(layout.padding_map[pos[..., 0], pos[..., 1]], layout.key_padding)
    np.testing.assert_array_equal(layout.group_map[pos[..., 0], pos[..., 1]], np.arange(nG)[:, None].repeat(N, 1))
    np.testing.assert_array_equal(layout.member_map[pos[..., 0], pos[..., 1]], np.arange(N)[None].repeat(nG, 0))
    # locate(token) is the inverse of members: the token sits in that group at that member slot
    for t in {0, H * W - 1, (H * W) // 2}:
        g, n = layout.locate(divmod(t, W))
        assert layout.members[g, n] == t
    with pytest.raises(ValueError, match="outside"):
        layout.locate((H, 0))
    if layout.kind == "sda":
        assert (Ih, Iw) == (1, 1) and Hp % G == 0 and Wp % G == 0 and Hp - H < G and Wp - W < G
    else:
        assert Hp % (G * Ih) == 0 and Wp % (G * Iw) == 0


sizes = st.tuples(st.integers(32, 400), st.integers(32, 400))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hw=sizes, which=st.sampled_from(["v1", "pp"]))
def test_any_size_runs_and_never_leaks_padding(tiny_models, hw, which):
    model = tiny_models[which]
    x = torch.randn(1, 3, *hw)
    trace = model.forward_trace(x)
    assert np.isfinite(trace.logits).all()
    assert trace.stage_hw == tuple(stage_hw(hw))
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), trace.logits, atol=1e-5)
    for blk in trace.all_blocks():
        lay = blk.layout
        check_layout_invariants(lay)
        att = blk.attention                                             # (B, nG, heads, N, N)
        pad = lay.key_padding                                           # (nG, N)
        live = ~pad.all(axis=1)          # all-padding groups (LDA edges) only feed cropped queries
        keys = pad[None, :, None, None, :]
        assert np.all(np.where(keys, att, 0.0)[:, live] == 0.0)         # padded keys: exactly zero
        sums = np.where(keys, 0.0, att).sum(-1)[:, live]
        np.testing.assert_allclose(sums, 1.0, atol=1e-5)                # rows sum to 1 over real keys
        if max(lay.feature_hw) <= model.layers[blk.stage].blocks[blk.index].group_size:
            assert lay.is_global and lay.num_groups == 1


def test_padded_keys_get_exactly_zero(tiny_models):
    trace = tiny_models["pp"].forward_trace(torch.randn(2, 3, 200, 264))
    padded = [b for b in trace.all_blocks() if b.layout.is_padded]
    assert padded, "200×264 must pad somewhere"
    for blk in padded:
        pad = blk.layout.key_padding
        live = ~pad.all(axis=1)
        keys = pad[None, :, None, None, :]                              # (1, nG, 1, 1, N)
        assert np.all(np.where(keys, blk.attention, 0.0)[:, live] == 0.0)


@pytest.mark.parametrize("hw", [(32, 32), (32, 1024), (1024, 1024), (37, 61), (224, 448)])
def test_extreme_sizes(tiny_models, hw):
    logits = tiny_models["v1"](torch.randn(1, 3, *hw))
    assert logits.shape == (1, 3) and torch.isfinite(logits).all()


def test_too_small_and_wrong_channels_are_refused(tiny_models):
    with pytest.raises(ValueError, match="≥ 32"):
        tiny_models["v1"](torch.randn(1, 3, 31, 64))
    with pytest.raises(ValueError, match="expected input"):
        tiny_models["v1"](torch.randn(1, 1, 64, 64))


@pytest.mark.parametrize("kind", ["sda", "lda"])
@given(h=st.integers(1, 80), w=st.integers(1, 80), G=st.integers(1, 14), interval=st.one_of(st.none(), st.integers(1, 9)))
@settings(max_examples=60, deadline=None)
def test_layout_invariants_property(kind, h, w, G, interval):
    check_layout_invariants(plan_layout(kind, (h, w), G, interval))


def test_small_map_rule_and_official_plan_at_224():
    """At 224 the official plan: ++ stage 2 (14×14, G=14) and stage 3 (7×7) are global SDA; T has LDA only in
    stage 2 and its stage 3 is one global 7×7 group."""
    with torch.device("meta"):
        pp = crossformer.create_model("crossformer_pp_s")
        t = crossformer.create_model("crossformer_t")
    plan = pp.plan((224, 224))
    assert all(l.kind == "sda" and l.is_global for l in plan[2] + plan[3])
    assert [l.padded_hw for l in plan[0]] == [(56, 56), (64, 64)]
    assert plan[0][1].num_groups == 256 and plan[1][1].num_groups == 64
    kinds = [[l.kind for l in stage] for stage in t.plan((224, 224))]
    assert kinds[0] == ["sda"] and kinds[1] == ["sda"] and "lda" in kinds[2] and set(kinds[3]) == {"sda"}
    assert t.plan((224, 224))[2][1].interval == (2, 2)


def test_forward_intermediates_and_features(tiny_models):
    model = tiny_models["pp"]
    x = torch.randn(2, 3, 96, 160)
    maps = model.forward_intermediates(x)
    trace = model.forward_trace(x)
    for i, m in enumerate(maps):
        B, C, H, W = m.shape
        assert (H, W) == trace.stage_hw[i]
        np.testing.assert_allclose(m.detach().flatten(2).transpose(1, 2).numpy(), trace.stage_outputs[i], atol=1e-5)
    feats = model.forward_features(x)
    assert feats.shape[-2:] == trace.stage_hw[-1]
    with torch.no_grad():
        np.testing.assert_allclose(model.forward_head(feats, pre_logits=True).numpy(), trace.pooled, atol=1e-5)


def test_gradients_reach_every_parameter(tiny_models):
    # D=64 gives a DPB width of C/16 = 4 in stage 0. (With D ≤ 32 it is ≤ 2, and a LayerNorm over two
    # features outputs ±1: its input gradient is ~0, a real property of such small CrossFormers.)
    torch.manual_seed(0)
    model = crossformer.create_model("crossformer_pp_s", **{**TINY_PP, "embed_dim": 64,
                                                            "num_heads": (2, 4, 8, 16), "drop_path_rate": 0.0}).train()
    x = torch.randn(2, 3, 64, 96)
    model(x).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    # every DPB weight moves the logits (pos3's output bias only shifts a whole head: softmax ignores it)
    assert all(p.grad.abs().sum() > 0 for n, p in model.named_parameters()
               if ".pos." in n and not n.endswith("pos3.2.bias"))


def test_trace_is_read_only_and_stores_nothing_on_modules(tiny_models):
    model = tiny_models["v1"]
    before = {n: set(vars(m)) for n, m in model.named_modules()}
    trace = model.forward_trace(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError):
        trace.logits[0, 0] = 1.0
    with pytest.raises(ValueError):
        trace.block(0, 0).attention[...] = 0
    assert {n: set(vars(m)) for n, m in model.named_modules()} == before
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_trace_embedding_split(tiny_models):
    trace = tiny_models["v1"].forward_trace(torch.randn(1, 3, 64, 96))
    emb = trace.embedding
    assert emb.kernels == (4, 8, 16, 32) and emb.channels == (8, 4, 2, 2) and emb.output_hw == (16, 24)
    assert [p.shape for p in emb.per_kernel] == [(1, c, 16, 24) for c in emb.channels]
    assert [m.kernels for m in trace.merges] == [(2, 4)] * 3
    m0 = trace.merges[0]
    np.testing.assert_allclose(m0.output[..., m0.channel_slice(1)],
                               m0.per_kernel[1].reshape(1, 16, -1).transpose(0, 2, 1), atol=0)


def test_strides_are_read_off_the_layers(tiny_models):
    """One owner for pixels per token: the trace's strides, from its own CEL and merges, equal the config's
    and the real ratio of input size to token grid."""
    model = tiny_models["v1"]
    trace = model.forward_trace(torch.randn(1, 3, 64, 96))
    for stage, (h, w) in enumerate(trace.stage_hw):
        s = trace.stage_stride(stage)
        assert s == model.cfg.stage_stride(stage) == 64 // h == 96 // w == 4 * 2 ** stage
        assert {b.stride for b in trace.blocks[stage]} == {s}
    assert model.cfg.min_input_side == model.cfg.stage_stride(3) == 32


def test_dpb_table_any_group_size(tiny_models):
    model = tiny_models["pp"]
    for G in (3, 9, 21):
        t = model.dpb_table(0, 1, G)
        assert t.shape == ((2 * G - 1) ** 2, 1) and torch.isfinite(t).all()
    trace = model.forward_trace(torch.randn(1, 3, 64, 64))
    blk = trace.block(0, 1)
    np.testing.assert_allclose(model.dpb_table(0, 1, blk.group_size).numpy(), blk.dpb_table, atol=1e-6)


def test_pick_device():
    dev = crossformer.pick_device()
    assert dev.type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        assert dev.type in ("mps", "cpu")


def test_inference_mode_first_call_does_not_poison_autograd():
    """Index maps cached during an inference_mode forward must still work in a later backward (captum)."""
    model = crossformer.create_model("crossformer_t", **TINY).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        model(x)
    inp = x.clone().requires_grad_(True)
    model(inp).sum().backward()
    assert inp.grad is not None and torch.isfinite(inp.grad).all()


@pytest.mark.parametrize("hw", [(64, 64), (61, 75), (34, 98)])
def test_space_to_depth_embedding_is_the_same_function_with_the_same_gradients(hw):
    """The training switch computes the large CEL kernels as stride-1 convs over 4×4 pixel blocks:
    same outputs and same weight gradients as the plain strided convs, also when H, W are not multiples of 4."""
    torch.manual_seed(1)
    model = crossformer.create_model("crossformer_t", **TINY).eval()   # eval: no drop-path noise; grads still flow
    x = torch.randn(2, 3, *hw)

    def run(enabled: bool):
        model.zero_grad()
        model.set_space_to_depth_embedding(enabled)
        out = model(x)
        out.square().sum().backward()
        grads = [p.grad.clone() for p in model.patch_embed.projs.parameters()]
        return out.detach(), grads

    ref, ref_grads = run(False)
    fast, fast_grads = run(True)
    model.set_space_to_depth_embedding(False)
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    for g_fast, g_ref in zip(fast_grads, ref_grads):
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-4, atol=1e-5)
    # and each conv on its own, bit-for-bit shapes, close values
    for k, proj in zip(model.patch_embed.kernels, model.patch_embed.projs):
        torch.testing.assert_close(crossformer.model.conv_as_space_to_depth(x, proj), proj(x), rtol=1e-5, atol=1e-5)


def test_built_loaded_and_run_entirely_inside_inference_mode(tmp_path):
    """A model created, loaded and run under ``torch.inference_mode()`` (its parameters are inference
    tensors without version counters) gives the same logits as the ordinary model."""
    torch.manual_seed(3)
    ref = crossformer.create_model("crossformer_demo").eval()
    x = torch.randn(2, 3, 72, 88)
    with torch.no_grad():
        want = ref(x)
    with torch.inference_mode():
        model = crossformer.create_model("crossformer_demo").eval()
        model.load_state_dict(ref.state_dict())
        got = model(x)
        again = model(x)                                    # a second call (no stale cached DPB table)
        trace = model.forward_trace(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(again, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(trace.logits, want.numpy(), atol=1e-5)
