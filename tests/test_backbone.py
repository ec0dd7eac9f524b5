"""The official detection/segmentation backbone (SPEC §7): vectors, the per-call small-map rule, input padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crossformer
from conftest import load_vector
from crossformer.geometry import plan_input_padding, plan_layout

BACKBONE_VECTORS = ("det_tiny_192x320", "detpp_tiny_224x352")


def _backbone(vec, device="cpu"):
    """Built from the sidecar's constructor kwargs exactly as written, ``sd/`` loaded strictly."""
    model = crossformer.from_official_config(vec.kwargs, "det").eval()
    crossformer.load_official_state_dict(model, vec.state_dict)
    return model.to(device)


def _assert_outputs(maps, vec, what):
    assert len(maps) == 4, what
    for i, m in enumerate(maps):
        m = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else m
        assert m.shape == vec[f"out{i}"].shape, (what, i)
        np.testing.assert_allclose(m, vec[f"out{i}"], atol=2e-4, rtol=1e-5, err_msg=f"{what} out{i}")


@pytest.mark.parametrize("name", BACKBONE_VECTORS)
def test_backbone_vector_reproduced(name, device):
    vec = load_vector(name)
    model = _backbone(vec, device)
    x = torch.from_numpy(vec["input"]).to(device)
    with torch.no_grad():
        _assert_outputs(model.forward_intermediates(x), vec, "forward_intermediates")
        _assert_outputs(model(x), vec, "forward")
        model.set_fused_attention(False)
        _assert_outputs(model(x), vec, "explicit softmax")
    trace = model.forward_trace(x)
    assert trace.backbone and trace.logits.shape == (x.shape[0], 0)
    _assert_outputs([trace.stage_map(i) for i in range(4)], vec, "trace")
    keys = vec.attention_keys()
    assert keys and {k for k, _, _ in keys} == set(vec.meta["captured"])
    for key, s, b in keys:
        att = trace.block(s, b).attention
        att = att.reshape(-1, *att.shape[2:])                      # (B·nG, heads, N, N), batch-major
        assert att.shape == vec[key].shape, key
        np.testing.assert_allclose(att, vec[key], atol=1e-4, rtol=0, err_msg=key)


@pytest.mark.parametrize("name", BACKBONE_VECTORS)
def test_backbone_layout_is_the_official_run_time_layout(name):
    """Every block's kind equals the official ``lsda_flag`` after the forward; the small last stage is one group."""
    vec = load_vector(name)
    model = crossformer.from_official_config(vec.kwargs, "det")
    plan = model.plan(tuple(vec["input"].shape[-2:]))
    for s, (stage_flags, layouts) in enumerate(zip(vec.meta["blocks_after_forward"], plan)):
        assert len(stage_flags) == len(layouts)
        for j, (flags, layout) in enumerate(zip(stage_flags, layouts)):
            assert layout.kind == ("sda" if flags["lsda_flag_after_forward"] == 0 else "lda"), (s, j)
            if layout.kind == "lda":
                assert layout.interval == (flags["interval"],) * 2
    H3, W3 = vec.meta["outputs"]["out3"][-2:]
    for layout in plan[3]:
        assert layout.is_global and layout.group_size == max(H3, W3) and layout.padded_hw == (max(H3, W3),) * 2
        assert layout.configured_kind in ("sda", "lda") and layout.small_map == "short_side"
    # the same kwargs as a classifier plan stage 3 as ordinary SDA windows of G = 7 (max(H, W) > G)
    classifier = crossformer.from_official_config(vec.kwargs, "v2")
    assert not classifier.plan(tuple(vec["input"].shape[-2:]))[3][0].is_global


@pytest.mark.parametrize("name", BACKBONE_VECTORS)
def test_backbone_has_no_final_norm_or_head(name):
    vec = load_vector(name)
    model = crossformer.from_official_config(vec.kwargs, "det")
    assert set(model.state_dict()) == set(vec.state_dict)       # no norm.*, head.*
    assert model.cfg.backbone and model.cfg.num_classes == 0
    assert crossformer.config_from_official(vec.kwargs, "seg") == model.cfg    # _det and _seg: the same model
    with pytest.raises(ValueError, match="no head"):
        model.forward_head(torch.zeros(1, model.num_features, 1, 1))
    with pytest.raises(RuntimeError, match="norm.weight"):   # the classifier of the same kwargs wants its head
        crossformer.load_official_state_dict(crossformer.from_official_config(vec.kwargs, "v2"), vec.state_dict)


def test_small_input_leaves_no_state_behind():
    """Official backbone blocks turn SDA for good after one small input; here the next large input is unaffected."""
    vec = load_vector("det_tiny_192x320")
    model = _backbone(vec)
    small = torch.randn(2, 3, 32, 64)         # stage maps 8×16, 4×8, 2×4, 1×2: LDA blocks of stages 1, 2 go global
    small_trace = model.forward_trace(small)
    assert small_trace.block(1, 1).layout.is_global and small_trace.block(2, 1).kind == "sda"
    x = torch.from_numpy(vec["input"])
    with torch.no_grad():
        model(small)
        _assert_outputs(model(x), vec, "large input after a small one")
    trace = model.forward_trace(x)
    for s in range(3):
        assert trace.block(s, 1).kind == "lda", s
    assert [blk.kind for blk in model.layers[2].blocks] == ["sda", "lda"]


def test_input_padding_as_mmdet():
    pad = plan_input_padding((800, 1333))
    assert pad.padded_hw == (800, 1344) and (pad.bottom, pad.right) == (0, 11) and pad.is_padded
    assert "800×1344" in pad.describe() and "32" in pad.describe()
    assert not plan_input_padding((192, 320)).is_padded
    model = crossformer.from_official_config(load_vector("det_tiny_192x320").kwargs, "det").eval()
    x = torch.randn(1, 3, 200, 300)
    with pytest.raises(ValueError, match="pad_input"):
        model(x)
    padded, info = crossformer.pad_input(x)
    assert padded.shape[-2:] == (224, 320) and (info.bottom, info.right) == (24, 20)
    assert torch.equal(padded[..., :200, :300], x) and not padded[..., 200:, :].any() and not padded[..., 300:].any()
    with torch.no_grad():
        maps = model(padded)
    assert [tuple(m.shape[-2:]) for m in maps] == [(56, 80), (28, 40), (14, 20), (7, 10)]
    same, none = crossformer.pad_input(padded)
    assert same is padded and not none.is_padded
    # a classifier keeps running any size ≥ 32 (floor maps)
    classifier = crossformer.from_official_config(load_vector("det_tiny_192x320").kwargs, "v2").eval()
    with torch.no_grad():
        assert classifier(x).shape == (1, 1000)


def test_small_map_rules_in_geometry():
    fits = plan_layout("lda", (6, 10), 7, 1)
    assert not fits.is_global and fits.kind == "lda" and fits.padded_hw == (7, 14)
    short = plan_layout("lda", (6, 10), 7, 1, "short_side")
    assert short.is_global and short.kind == "sda" and short.group_size == 10 and short.padded_hw == (10, 10)
    assert short.key_padding.sum() == 40 and "short side" in short.describe()
    long = plan_layout("sda", (6, 100), 7, None, "short_side")            # the official rule, whatever the long side
    assert long.group_size == 100 and long.num_groups == 1
    assert not plan_layout("sda", (8, 10), 7, 1, "short_side").is_global
    with pytest.raises(ValueError, match="small_map"):
        plan_layout("sda", (6, 10), 7, 1, "min")


# ---- detector / segmentor checkpoints (mmdet 2.x, mmseg 0.x) -------------------------------------------------
import os
from collections import OrderedDict

from crossformer import CheckpointError, load_checkpoint
from crossformer.variants import DET_LAYOUT, get_config


@pytest.fixture(scope="module")
def t_backbone():
    """A CrossFormer-T backbone of the official detection configs, random weights."""
    torch.manual_seed(3)
    cfg = get_config("crossformer_t").replace(backbone=True, num_classes=0, **DET_LAYOUT)
    return crossformer.CrossFormer(cfg).eval()


def _fpn(in_channels=(64, 128, 256, 512), out=8) -> dict[str, torch.Tensor]:
    sd = {}
    for i, c in enumerate(in_channels):
        sd |= {f"neck.lateral_convs.{i}.conv.weight": torch.randn(out, c, 1, 1),
               f"neck.lateral_convs.{i}.conv.bias": torch.randn(out)}
        sd |= {f"neck.fpn_convs.{i}.conv.weight": torch.randn(out, out, 3, 3),
               f"neck.fpn_convs.{i}.conv.bias": torch.randn(out)}
    return sd


def _mmdet_file(path, backbone_sd, segmentor=False, meta_extra=None):
    """What mmcv's save_checkpoint writes for a Mask R-CNN (or, ``segmentor``, an UPerNet) with this backbone."""
    sd = OrderedDict((f"backbone.{k}", v) for k, v in backbone_sd.items())
    if segmentor:
        sd |= {"decode_head.psp_modules.0.1.conv.weight": torch.randn(8, 512, 1, 1),
               "decode_head.conv_seg.weight": torch.randn(150, 8, 1, 1), "decode_head.conv_seg.bias": torch.randn(150),
               "auxiliary_head.conv_seg.weight": torch.randn(150, 8, 1, 1)}
    else:
        sd |= _fpn()
        sd |= {f"rpn_head.rpn_{n}.{p}": torch.randn(3) for n in ("conv", "cls", "reg") for p in ("weight", "bias")}
        sd |= {"roi_head.bbox_head.fc_cls.weight": torch.randn(81, 16),
               "roi_head.bbox_head.fc_cls.bias": torch.randn(81),
               "roi_head.mask_head.conv_logits.weight": torch.randn(80, 8, 1, 1)}
    meta = {"mmdet_version": "2.11.0", "CLASSES": ("person", "bicycle", "car"), "epoch": 12, "iter": 87960,
            "config": "model = dict(type='MaskRCNN', backbone=dict(type='CrossFormer_T'))\n",
            "env_info": "sys.platform: linux\nPyTorch: 1.8.1", "time": "Wed Jun  2 10:11:12 2021", **(meta_extra or {})}
    optimizer = {"state": {0: {"step": 100, "exp_avg": torch.zeros(3)}},
                 "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 0.05, "params": [0]}]}
    torch.save({"meta": meta, "state_dict": sd, "optimizer": optimizer}, path)
    return path


def _assert_same_maps(a, b, size=(64, 96)):
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        for ma, mb in zip(a(x), b(x)):
            assert torch.equal(ma, mb)


@pytest.mark.parametrize("segmentor", [False, True], ids=["mmdet", "mmseg"])
def test_detector_checkpoint_opens_as_its_backbone(tmp_path, t_backbone, segmentor):
    path = _mmdet_file(tmp_path / "mask_rcnn.pth", t_backbone.state_dict(), segmentor)
    model, info = load_checkpoint(path)
    assert info.variant == "crossformer_t" and "backbone" in info.family
    assert model.cfg.backbone and model.cfg.group_size == (7, 7, 7, 7) and model.cfg.interval == (8, 4, 2, 1)
    assert model.head is None and not info.missing
    if segmentor:
        assert info.notes[0] == ("segmentor parts not used: decode_head (PPM + FPN (UPerHead), 3 tensors), "
                                 "auxiliary_head (1 tensor)")
    else:
        assert info.notes[0] == ("detector parts not used: neck (FPN, 16 tensors), rpn_head (6 tensors), "
                                 "roi_head (3 tensors)")
    assert all(not k.startswith(("backbone.", "patch_embed", "layers")) for k in info.unexpected)
    _assert_same_maps(model, t_backbone)


def test_bare_backbone_and_classifier_as_backbone(tmp_path, t_backbone):
    bare = tmp_path / "backbone-crossformer-t.pth"
    torch.save(t_backbone.state_dict(), bare)            # what the official README tells users to save
    model, info = load_checkpoint(bare)
    assert model.cfg.backbone and info.variant == "crossformer_t"
    assert not any("not used" in n for n in info.notes)
    _assert_same_maps(model, t_backbone)

    torch.manual_seed(4)
    kwargs = load_vector("detpp_tiny_224x352").kwargs | {"num_classes": 7}
    classifier = crossformer.from_official_config(kwargs, "v2").eval()       # a small CrossFormer++ classifier
    cls_path = tmp_path / "crossformer-pp-tiny.pth"
    torch.save({"model": classifier.state_dict(), "epoch": 299, "max_accuracy": 81.5}, cls_path)
    as_classifier, info = load_checkpoint(cls_path)
    assert not as_classifier.cfg.backbone and info.config.num_classes == 7
    as_backbone, info = load_checkpoint(cls_path, as_backbone=True)
    assert as_backbone.cfg.backbone and as_backbone.cfg.use_acl and as_backbone.cfg.interval == (8, 4, 2, 1)
    assert info.notes[0] == "classification head not used: norm, head (4 tensors)"
    own = as_backbone.state_dict()
    assert set(own) == set(classifier.state_dict()) - {"norm.weight", "norm.bias", "head.weight", "head.bias"}
    assert all(torch.equal(v, classifier.state_dict()[k]) for k, v in own.items())


def test_detector_checkpoint_is_strict_on_the_backbone(tmp_path):
    tiny = crossformer.from_official_config(load_vector("det_tiny_192x320").kwargs, "det")   # a custom shape
    model, info = load_checkpoint(_mmdet_file(tmp_path / "tiny.pth", tiny.state_dict()))
    assert info.variant == "custom" and model.cfg.backbone and model.cfg.interval == (8, 4, 2, 1)
    sd = dict(tiny.state_dict())
    del sd["layers.2.blocks.1.mlp.fc1.weight"]
    with pytest.raises(CheckpointError, match="lacks 1"):
        load_checkpoint(_mmdet_file(tmp_path / "missing.pth", sd))
    sd = dict(tiny.state_dict()) | {"layers.0.blocks.0.attn.extra": torch.zeros(2)}
    with pytest.raises(CheckpointError, match="layers.0.blocks.0.attn.extra"):
        load_checkpoint(_mmdet_file(tmp_path / "extra.pth", sd))
    sd = dict(tiny.state_dict()) | {"layers.1.blocks.0.attn.qkv.weight": torch.zeros(3, 3)}
    with pytest.raises(CheckpointError, match="shape mismatch for layers.1.blocks.0.attn.qkv.weight"):
        load_checkpoint(_mmdet_file(tmp_path / "shape.pth", sd))


class _Payload:
    """Unpickling this would call os.getcwd: a stand-in for code hidden in a checkpoint's meta."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_detector_checkpoint_runs_nothing(tmp_path, t_backbone):
    small = {k: v for k, v in t_backbone.state_dict().items() if k.startswith("patch_embed")}
    path = _mmdet_file(tmp_path / "hostile.pth", small, meta_extra={"hook": _Payload()})
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        load_checkpoint(path)


@pytest.mark.parametrize("name", BACKBONE_VECTORS)
def test_numpy_reference_matches_the_backbone(name):
    """The independent NumPy forward, given the same official kwargs, agrees field by field with the trace."""
    from crossformer import reference as ref

    vec = load_vector(name)
    x = vec["input"][:1]
    logits, flat = ref.forward(vec.state_dict, x, ref.config_from_official(vec.kwargs, "det"))
    assert logits.shape == (1, 0)
    trace = _backbone(vec).forward_trace(torch.from_numpy(x))
    errors = ref.compare(trace.flat(), flat)
    assert max(errors.values()) <= 1e-4, ref.report(errors)
    for i in range(4):
        B, _, C = flat[f"stages.{i}"].shape
        out = flat[f"stages.{i}"].reshape(B, *vec[f"out{i}"].shape[-2:], C).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(out, vec[f"out{i}"][:1], atol=2e-4, rtol=1e-5)


def test_backbone_safetensors_round_trip(tmp_path):
    """A backbone saved by this project keeps its config (grouping included) and reopens as a backbone."""
    from crossformer.checkpoint import save_safetensors

    vec = load_vector("detpp_tiny_224x352")
    model = _backbone(vec)
    path = tmp_path / "backbone.safetensors"
    save_safetensors(model, path)
    loaded, info = load_checkpoint(path)
    assert loaded.cfg == model.cfg and loaded.cfg.backbone
    x = torch.from_numpy(vec["input"][:1])
    with torch.no_grad():
        for a, b in zip(loaded(x), model(x)):
            assert torch.equal(a, b)
