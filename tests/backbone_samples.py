"""Synthetic detector / segmentor checkpoints for the app tests (random weights; nothing downloads).

What mmcv's ``save_checkpoint`` writes for a Mask R-CNN (or an UPerNet) with a CrossFormer-T backbone of the
official detection configs (G = 7, I = 8, 4, 2, 1): ``{'meta', 'state_dict', 'optimizer'}`` with ``backbone.``
keys beside fake ``neck.`` / ``rpn_head.`` / ``roi_head.`` (or ``decode_head.`` / ``auxiliary_head.``) tensors.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image


def t_backbone(seed: int = 3):
    """A CrossFormer-T detection backbone with random weights (fixed seed, global RNG untouched)."""
    import torch
    import crossformer
    from crossformer.variants import DET_LAYOUT, get_config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cfg = get_config("crossformer_t").replace(backbone=True, num_classes=0, **DET_LAYOUT)
        return crossformer.CrossFormer(cfg).eval()


def mmdet_bytes(segmentor: bool = False, seed: int = 3) -> bytes:
    """The bytes of a ``mask_rcnn_crossformer_t.pth`` (or, ``segmentor``, an UPerNet ``.pth``)."""
    import torch
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=g)
    sd = OrderedDict((f"backbone.{k}", v) for k, v in t_backbone(seed).state_dict().items())
    if segmentor:
        sd |= {"decode_head.conv_seg.weight": rnd(150, 8, 1, 1), "decode_head.conv_seg.bias": rnd(150),
               "auxiliary_head.conv_seg.weight": rnd(150, 8, 1, 1)}
        meta = {"mmseg_version": "0.11.0", "CLASSES": ("wall", "building", "sky"), "iter": 160000,
                "config": "model = dict(type='EncoderDecoder', backbone=dict(type='CrossFormer_T'))\n"}
    else:
        for i, c in enumerate((64, 128, 256, 512)):
            sd |= {f"neck.lateral_convs.{i}.conv.weight": rnd(8, c, 1, 1), f"neck.lateral_convs.{i}.conv.bias": rnd(8)}
        sd |= {f"rpn_head.rpn_{n}.weight": rnd(3) for n in ("conv", "cls", "reg")}
        sd |= {"roi_head.bbox_head.fc_cls.weight": rnd(81, 16), "roi_head.bbox_head.fc_cls.bias": rnd(81)}
        meta = {"mmdet_version": "2.11.0", "CLASSES": ("person", "bicycle", "car"), "epoch": 12, "iter": 87960,
                "config": "model = dict(type='MaskRCNN', backbone=dict(type='CrossFormer_T'))\n",
                "env_info": "sys.platform: linux\nPyTorch: 1.8.1", "time": "Wed Jun  2 10:11:12 2021"}
    optimizer = {"state": {0: {"step": 100, "exp_avg": torch.zeros(3)}},
                 "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 0.05, "params": [0]}]}
    buf = io.BytesIO()
    torch.save({"meta": meta, "state_dict": sd, "optimizer": optimizer}, buf)
    return buf.getvalue()


def write_mmdet(path: Path, segmentor: bool = False) -> Path:
    path.write_bytes(mmdet_bytes(segmentor))
    return path


def street_photo(h: int = 800, w: int = 1333, seed: int = 0) -> np.ndarray:
    """A photo-like ``(h, w, 3)`` uint8 scene: sky gradient, ground, a few boxes and texture noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0] = 120 + 60 * y / h
    img[..., 1] = 160 + 40 * y / h
    img[..., 2] = 230 - 80 * y / h
    ground = y > 0.6 * h
    img[ground] = (90, 85, 80)
    for k in range(6):
        x0, y0 = int(rng.integers(0, w - 200)), int(rng.integers(h // 3, h - 150))
        img[y0:y0 + int(rng.integers(60, 150)), x0:x0 + int(rng.integers(80, 200))] = rng.integers(20, 240, 3)
    img += rng.normal(0, 8, img.shape) + 10 * np.sin(x / 7.0)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()
