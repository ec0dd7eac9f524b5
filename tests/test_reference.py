"""The NumPy reference (crossformer/reference.py) against the official vectors and the PyTorch model."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import crossformer
from conftest import ROOT, VECTOR_NAMES, load_vector
from crossformer import reference as ref
from crossformer.geometry import plan_layout
from crossformer.state_dict import to_numpy

#: A small CrossFormer++: progressive group sizes 4/4/14/7, intervals 4/2/1/1, an ACL block (stage 2, block 2).
PP_SMALL = dict(embed_dim=32, depths=(2, 2, 4, 2), num_heads=(1, 2, 4, 8), num_classes=10)


def _perturbed(name: str, seed: int = 0, **overrides) -> crossformer.CrossFormer:
    """A model whose every parameter (LayerNorms and DPB included) is moved off its init, as in the vectors."""
    model = crossformer.create_model(name, **overrides).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def _numpy_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return to_numpy(model)


def _input(hw: tuple[int, int], seed: int = 1, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, *hw)).astype(dtype)


# ---- official vectors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_official_vector(name):
    """Every stored field of the traced pass, and ``forward_official``'s logits, match the official code."""
    vec = load_vector(name)
    _, flat = ref.forward(vec.state_dict, vec["input"], ref.config_from_official(vec.kwargs, vec.code_version))
    fields = ref.vector_fields(flat)
    np.testing.assert_allclose(fields["logits"], vec["logits"], atol=1e-4, rtol=0)
    first = ref.forward_official(vec.state_dict, vec["input"][:1], vec.kwargs, vec.code_version)  # image 0 only
    np.testing.assert_allclose(first, vec["logits"][:1], atol=1e-4, rtol=0)
    np.testing.assert_allclose(first, flat["logits"][:1], atol=1e-6, rtol=0)    # plain and traced paths agree
    keys = vec.attention_keys()
    assert keys, "vector stores no attention"
    for key, _, _ in keys:                                           # (B·nG, heads, N, N), batch-major
        assert fields[key].shape == vec[key].shape, key
        np.testing.assert_allclose(fields[key], vec[key], atol=1e-4, rtol=0, err_msg=key)
    np.testing.assert_allclose(fields["pooled"], vec["pooled"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(fields["patch_embed"], vec["patch_embed"], atol=2e-4, rtol=1e-5)
    for i in range(4):
        np.testing.assert_allclose(fields[f"stage{i}_blocks"], vec[f"stage{i}_blocks"], atol=2e-4, rtol=1e-5)


def test_float64_reference_is_tighter():
    """In float64 the reference sits within float32 rounding of the official float32 logits (SPEC §13: 6e-7)."""
    vec = load_vector("v2pp_lda_224")
    cfg = ref.config_from_official(vec.kwargs, vec.code_version)
    logits, _ = ref.forward(vec.state_dict, vec["input"], cfg, dtype=np.float64, trace=False)
    assert logits.dtype == np.float64
    np.testing.assert_allclose(logits, vec["logits"], atol=5e-6, rtol=0)


# ---- against the PyTorch model ----------------------------------------------------------------------------------
def _case(name: str, overrides: dict, hw: tuple[int, int], slow: bool = False):
    return pytest.param(name, overrides, hw, id=f"{name}-{hw[0]}x{hw[1]}", marks=[pytest.mark.slow] if slow else [])


CASES = [
    _case("crossformer_demo", {}, (224, 224)),
    _case("crossformer_demo", {}, (200, 264)),         # non-square, not a multiple of 32: padded groups, masks
    _case("crossformer_t", {}, (224, 224), slow=True),
    _case("crossformer_t", {}, (200, 264), slow=True),  # v1 implicit interval ⌈H/G⌉ × ⌈W/G⌉ on a padded map
    _case("crossformer_pp_s", PP_SMALL, (224, 224)),   # LDA G=4 I=4: 56 → 64 with mask, as the released ++ weights
    _case("crossformer_pp_s", PP_SMALL, (200, 264)),   # ACL on a 12×16 map
]


@pytest.mark.parametrize("name, overrides, hw", CASES)
def test_every_trace_field_matches_pytorch(name, overrides, hw):
    model = _perturbed(name, **overrides)
    x = _input(hw)
    ours_logits, ours = ref.forward(_numpy_state(model), x, model.cfg)
    theirs = model.forward_trace(torch.from_numpy(x)).flat()
    assert list(ours) == list(theirs)                                # same names, same order
    errors = ref.compare(theirs, ours)
    bad = {k: e for k, e in errors.items() if not e <= 1e-4}
    assert not bad, ref.report(bad)
    np.testing.assert_array_equal(ours_logits, ours["logits"])
    with torch.no_grad():                                            # and the fused path the app runs
        np.testing.assert_allclose(model(torch.from_numpy(x)).numpy(), ours_logits, atol=1e-4, rtol=0)
    padded = 0
    for key in (k for k in ours if k.endswith(".members")):         # real queries give padded keys exactly 0
        pad, att = ours[key] < 0, ours[key.replace("members", "attention")]      # (nG, N), (B, nG, h, N, N)
        padded += int(pad.sum())
        masked = ~pad[:, None, :, None] & pad[:, None, None, :]                  # (nG, 1, N query, N key)
        assert not att[np.broadcast_to(masked[None], att.shape)].any(), key
        np.testing.assert_allclose(att.sum(-1), 1, atol=1e-5)
    assert padded > 0 or hw == (224, 224) and name != "crossformer_pp_s"


def test_crossformer_pp_case_has_acl():
    cfg = ref.read_config(crossformer.get_config("crossformer_pp_s", **PP_SMALL))
    assert [(i, j) for i in range(4) for j in range(cfg["depths"][i]) if ref.acl_block(cfg, i, j)] == [(2, 2)]


def test_float64_against_pytorch_float64():
    """Both implementations in float64: they are the same function, to float32 rounding of the trace."""
    model = _perturbed("crossformer_demo").double()
    x = _input((100, 140), dtype=np.float64)
    _, ours = ref.forward(model.state_dict(), x, model.cfg, dtype=np.float64)    # torch tensors are read as arrays
    errors = ref.compare(model.forward_trace(torch.from_numpy(x)).flat(), ours)
    assert max(errors.values()) < 1e-5, ref.report(errors, 1e-5)


# ---- pieces ----------------------------------------------------------------------------------------------------
def test_grouping_matches_geometry_module():
    """The reference's reshape-based grouping equals geometry.plan_layout's index maps, and ungroup inverts it."""
    sizes = [(56, 56), (28, 28), (7, 7), (50, 66), (25, 33), (12, 16), (6, 8), (3, 4), (1, 1), (2, 9)]
    for (H, W), kind, G, interval in itertools.product(sizes, ("sda", "lda"), (4, 7, 14), (None, 1, 2, 4)):
        plan = ref.group_plan(kind, (H, W), G, interval)
        layout = plan_layout(kind, (H, W), G, interval)
        assert plan == (layout.kind, layout.group_size, layout.interval, layout.padded_hw)
        members = ref.group(np.arange(H * W).reshape(1, H * W, 1), (H, W), plan, value=-1)[0, :, :, 0]
        np.testing.assert_array_equal(members, layout.members)
        x = np.random.default_rng(0).standard_normal((2, H * W, 3))
        np.testing.assert_array_equal(ref.ungroup(ref.group(x, (H, W), plan), (H, W), plan), x)


def test_erf_and_gelu():
    xs = np.concatenate([np.linspace(-7, 7, 20001), [0.0, -0.0, 1e-9, 5.999, 6.0, 40.0, -40.0]])
    assert np.abs(ref.erf(xs) - np.array([math.erf(v) for v in xs])).max() < 1e-11
    t = torch.linspace(-9, 9, 5001, dtype=torch.float64)
    np.testing.assert_allclose(ref.gelu(t.numpy()), torch.nn.functional.gelu(t).numpy(), atol=1e-10, rtol=0)


def test_official_configs_and_weight_shapes(official_state_dicts):
    """For all 8 released variants: the official kwargs read as our variant's config, and the names, order and
    shapes the reference checks are the official state_dict's (v1 buffers aside)."""
    families = (("v1", "v1", "crossformer_{}"), ("v2pp", "v2", "crossformer_pp_{}"), ("v2cf", "v2", "crossformer_{}"))
    for family, code, template in families:
        for official, entry in official_state_dicts[family].items():
            cfg = ref.config_from_official(entry["constructor_kwargs"], code)
            ours = ref.read_config(crossformer.get_config(template.format(official[-1])))
            if family == "v2cf":                     # CrossFormer on the v2 code: explicit I = 8/4/2/1, same at 224
                assert (cfg["interval"], ours["interval"]) == ((8, 4, 2, 1), None)
                ours["interval"] = cfg["interval"]
            assert cfg == ours, official
            expected = [(k, tuple(s)) for k, s, _ in entry["state_dict"] if not k.endswith(ref.RECOMPUTABLE)]
            assert list(ref.expected_shapes(cfg, 1000).items()) == expected, official


# ---- weights and isolation ---------------------------------------------------------------------------------------
def test_weight_errors_name_key_and_shapes():
    model = crossformer.create_model("crossformer_demo")
    sd, x = _numpy_state(model), _input((64, 64))
    key = "layers.1.blocks.0.attn.qkv.weight"
    with pytest.raises(ValueError) as err:
        ref.forward({**sd, key: np.zeros((5, 5), np.float32)}, x, model.cfg)
    assert repr(key) in str(err.value) and "(5, 5)" in str(err.value) and "(192, 64)" in str(err.value)
    with pytest.raises(ValueError, match=r"missing 'head\.bias' \(expected shape \(25,\)\)"):
        ref.forward({k: v for k, v in sd.items() if k != "head.bias"}, x, model.cfg)
    with pytest.raises(ValueError, match=r"unexpected 'layers\.0\.blocks\.0\.extra' with shape \(3,\)"):
        ref.forward({**sd, "layers.0.blocks.0.extra": np.zeros(3)}, x, model.cfg)
    # v1 recomputable buffers and a DataParallel prefix are accepted
    v1 = {"module." + k: v for k, v in sd.items()} | {
        "layers.0.blocks.1.attn.biases": np.zeros((169, 2), np.float32),
        "layers.0.blocks.1.attn.relative_position_index": np.zeros((49, 49), np.int64)}
    np.testing.assert_array_equal(ref.forward(v1, x, model.cfg, trace=False)[0], ref.forward(sd, x, model.cfg)[0])


def test_reference_runs_without_torch():
    """A fresh interpreter imports and runs the reference (weights made up from expected_shapes) without torch."""
    code = (
        "import sys, numpy as np\n"
        "import crossformer.reference as ref\n"
        "cfg = dict(embed_dim=16, depths=(1, 4, 1, 1), num_heads=(1, 2, 2, 4), group_size=(4, 4, 4, 2),\n"
        "           interval=(2, 2, 1, 1), use_acl=True, num_classes=3)\n"
        "rng = np.random.default_rng(0)\n"
        "sd = {k: 0.1 * rng.standard_normal(s) for k, s in ref.expected_shapes(ref.read_config(cfg), 3).items()}\n"
        "logits, trace = ref.forward(sd, rng.standard_normal((1, 3, 64, 72)), cfg)\n"
        "assert logits.shape == (1, 3) and np.isfinite(logits).all() and 'blocks.s1_b3.attention' in trace\n"
        "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_official_options_outside_the_released_ones_are_refused():
    with pytest.raises(NotImplementedError, match="use_cpe"):
        ref.config_from_official({"use_cpe": True}, "v2")
    with pytest.raises(ValueError, match="'v3'"):
        ref.config_from_official({}, "v3")


def test_the_weights_are_converted_to_numpy_in_one_place():
    """crossformer.state_dict.to_numpy is the one conversion (the app's cached copy and the cost model's use it):
    float32 arrays under the official names, whatever the model's dtype, and the reference runs on them."""
    model = _perturbed("crossformer_demo", seed=3)
    half = to_numpy(model.half())
    assert set(half) == set(model.state_dict()) and all(v.dtype == np.float32 for v in half.values())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(half[k], v.float().numpy())
    logits, _ = ref.forward(half, _input((64, 64)), model.cfg, trace=False)
    assert logits.shape == (1, model.cfg.num_classes) and np.isfinite(logits).all()

