"""The model reproduces the official code's numbers (SPEC §13 tolerances)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crossformer
from conftest import load_vector, VECTOR_NAMES


def _model(vec, device="cpu"):
    model = crossformer.from_official_config(vec.kwargs, vec.code_version).eval()
    crossformer.load_official_state_dict(model, vec.state_dict)
    return model.to(device)


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_reproduced(name, device):
    vec = load_vector(name)
    model = _model(vec, device)
    x = torch.from_numpy(vec["input"]).to(device)
    with torch.no_grad():
        logits = model(x).cpu().numpy()
    trace = model.forward_trace(x)
    np.testing.assert_allclose(logits, vec["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(trace.logits, vec["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(trace.pooled, vec["pooled"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(trace.embedding.output, vec["patch_embed"], atol=2e-4, rtol=1e-5)
    for i in range(4):
        np.testing.assert_allclose(trace.stage_outputs[i], vec[f"stage{i}_blocks"], atol=2e-4, rtol=1e-5,
                                   err_msg=f"stage {i}")
    keys = vec.attention_keys()
    assert keys, "vector stores no attention"
    for key, s, b in keys:
        blk = trace.block(s, b)
        att = blk.attention.reshape(-1, *blk.attention.shape[2:])   # (B·nG, heads, N, N), batch-major
        assert att.shape == vec[key].shape, key
        np.testing.assert_allclose(att, vec[key], atol=1e-4, rtol=0, err_msg=key)


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_block_plan_matches_official(name):
    """Kind, G, I and padded size of every block equal the sidecar's per-block plan."""
    vec = load_vector(name)
    model = crossformer.from_official_config(vec.kwargs, vec.code_version)
    H, W = vec["input"].shape[-2:]
    plan = model.plan((H, W))
    for stage_plan, stage_layouts in zip(vec.meta["block_plan"], plan):
        assert len(stage_plan) == len(stage_layouts)
        for official, layout in zip(stage_plan, stage_layouts):
            assert layout.kind == official["type"].lower()
            assert layout.group_size == official["G"]
            assert list(layout.padded_hw) == official["padded_hw"]
            assert layout.is_padded == official["masked"]
            if official["type"] == "LDA":
                expect = official.get("implicit_interval") or [official["I"]] * 2
                assert list(layout.interval) == expect
            assert model.layers[official["stage"]].blocks[official["block"]].has_acl == official["ex_conv"]


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_fast_and_explicit_paths_agree(name, device):
    vec = load_vector(name)
    model = _model(vec, device)
    x = torch.from_numpy(vec["input"]).to(device)
    with torch.no_grad():
        fast = model(x)
        slow = model.set_fused_attention(False)(x)
    model.set_fused_attention(True)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_dpb_cache_follows_weights():
    """The cached DPB table is recomputed after the weights change (eval, no grad)."""
    model = crossformer.create_model("crossformer_demo").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        again = model(x)
        torch.testing.assert_close(before, again, atol=0, rtol=0)
        model.layers[0].blocks[0].attn.pos.pos_proj.weight.mul_(-3.0)   # changes the bias shape, not just its level
        after = model(x)
        model.set_fused_attention(False)
        explicit = model(x)
    torch.testing.assert_close(after, explicit, atol=1e-5, rtol=0)
    assert not torch.allclose(before, after)
