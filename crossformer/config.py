"""CrossFormer configurations: the config dataclass and the official-kwargs bridge (variants: :mod:`.variants`).

Pure Python (no torch): the app, the NumPy reference and the tests can read configs without torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

#: ImageNet normalisation used by every official config (timm IMAGENET_DEFAULT_*).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Stride of every cross-scale merge between stages (SPEC §3): each halves the token map.
MERGE_STRIDE = 2


@dataclass(frozen=True)
class CrossFormerConfig:
    """Everything that shapes a CrossFormer. Defaults are CrossFormer-T (ICLR 2022).

    Lists are per stage (4 stages). ``interval=None`` is the v1 code's LDA rule (the stride between
    members is ``⌈H_i/G⌉``, so one group spans the whole map); a tuple is the v2 code's explicit ``I``
    with padding and key mask (SPEC §4.2–§4.3).
    """

    embed_dim: int = 64                                   # D; stage i has C_i = D·2^i channels
    depths: tuple[int, ...] = (1, 1, 8, 6)                # blocks per stage
    num_heads: tuple[int, ...] = (2, 4, 8, 16)            # heads per stage
    group_size: tuple[int, ...] = (7, 7, 7, 7)            # G per stage
    interval: tuple[int, ...] | None = None               # I per stage (v2) or None (v1: I = ⌈H_i/G⌉)
    mlp_ratio: tuple[float, ...] = (4.0, 4.0, 4.0, 4.0)   # MLP hidden = C · ratio
    patch_kernels: tuple[int, ...] = (4, 8, 16, 32)       # CEL kernels; stride = patch_kernels[0]
    merge_kernels: tuple[tuple[int, ...], ...] = ((2, 4), (2, 4), (2, 4))  # cross-scale merges
    use_acl: bool = False                                 # CrossFormer++ activation cooling layers
    dpb_min_dim: int = 0                                  # DPB hidden width = max(C/16, this); 0: official C/16
    in_chans: int = 3
    num_classes: int = 1000
    qkv_bias: bool = True
    qk_scale: float | None = None                         # None → head_dim ** -0.5
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    img_size: int = 224                                   # nominal size (FLOP counts, docs); any size runs
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    class_names: tuple[str, ...] | None = field(default=None, compare=False)
    # Dense-prediction backbone (official ``crossformer_backbone_{det,seg}.py``, SPEC §7): no final norm or head,
    # the four stage maps are the output, and a map whose short side is ≤ G is one SDA group (per call).
    backbone: bool = False

    def __post_init__(self) -> None:
        n = len(self.depths)
        for name in ("num_heads", "group_size", "mlp_ratio"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} needs {n} entries (one per stage), got {getattr(self, name)}")
        if self.interval is not None and len(self.interval) != n:
            raise ValueError(f"interval needs {n} entries, got {self.interval}")
        if len(self.merge_kernels) != n - 1:
            raise ValueError(f"merge_kernels needs {n - 1} entries, got {self.merge_kernels}")
        for i, h in enumerate(self.num_heads):
            if not h >= 1:
                raise ValueError(f"stage {i}: num_heads must be at least 1, got {h!r}")
            if self.stage_dim(i) % h:
                raise ValueError(f"stage {i}: {self.stage_dim(i)} channels do not split into {h} heads")
        if any(k % 2 != self.stride % 2 for k in self.patch_kernels):
            raise ValueError("CEL kernels must share the stride's parity so every scale has the same size")
        if self.backbone and self.interval is None:
            raise ValueError("a detection/segmentation backbone uses the v2 grouping rules: give an interval per stage")

    @property
    def num_stages(self) -> int:
        return len(self.depths)

    @property
    def stride(self) -> int:
        """CEL stride (official ``patch_size[0]``)."""
        return self.patch_kernels[0]

    @property
    def code_version(self) -> str:
        """``"v1"`` (implicit LDA interval) or ``"v2"`` (explicit interval, padding and mask)."""
        return "v1" if self.interval is None else "v2"

    @property
    def small_map_rule(self) -> str:
        """When a small map is one SDA group (:data:`crossformer.geometry.SmallMapRule`): ``"fits"`` for the
        classifier, ``"short_side"`` (``min(H, W) ≤ G``, applied per call) for the backbone."""
        return "short_side" if self.backbone else "fits"

    @property
    def input_divisor(self) -> int:
        """Input sides a backbone needs so every merged map is even (32 for four stages; mmdet pads to it)."""
        return self.stage_stride(self.num_stages - 1)

    def stage_dim(self, i: int) -> int:
        return self.embed_dim * 2 ** i

    @property
    def min_input_side(self) -> int:
        """Smallest input side (pixels) that leaves one token in the last stage."""
        return self.stage_stride(self.num_stages - 1)

    def stage_stride(self, i: int) -> int:
        """Input pixels per token side at stage ``i``: the CEL stride times one merge stride per stage before."""
        return self.stride * MERGE_STRIDE ** i

    def dpb_dim(self, i: int) -> int:
        """Hidden width of stage ``i``'s DPB MLP: the official ``C/16``, raised to ``dpb_min_dim``.

        The official width is ``(C // 4) // 4``; at ``C = 32`` that is 2, and a LayerNorm over two features
        can only output ±1, so the bias cannot vary smoothly with the offset. This project's demo model
        sets ``dpb_min_dim`` (official variants leave it at 0, so their shapes are the official ones).
        """
        return max((self.stage_dim(i) // 4) // 4, self.dpb_min_dim)

    def stage_interval(self, i: int) -> int | None:
        return None if self.interval is None else self.interval[i]

    def acl_blocks(self, stage: int) -> tuple[int, ...]:
        """Blocks of a stage that end in an activation cooling layer: ``(j+1) % 3 == 0 and j < L−1``."""
        L = self.depths[stage]
        return tuple(j for j in range(L) if self.use_acl and (j + 1) % 3 == 0 and j < L - 1)

    def replace(self, **changes: Any) -> "CrossFormerConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("class_names")
        return d



# ---- hard bounds on a config read from a file -------------------------------------------------------
@dataclass(frozen=True)
class ConfigLimits:
    """Hard bounds on a config declared by a file (its metadata or its tensors' shapes), checked before
    any model is built from it.

    Generous for every real variant (CrossFormer-L/++-H: D 128, 18 blocks in a stage, 32 heads, G 14) and
    for detection backbones run on inputs up to 3840 px (stage-0 map 960: ``G·I`` up to 1024), yet small
    enough that a few hundred bytes of metadata cannot make the server build a huge model.
    """

    max_stages: int = 6
    max_embed_dim: int = 512            # D (stage i has D·2^i channels)
    max_stage_dim: int = 8192           # D·2^i of the last stage
    max_depth: int = 64                 # blocks in one stage
    max_blocks: int = 160               # blocks in all stages
    max_heads: int = 128
    max_group_size: int = 64            # G
    max_group_span: int = 1024          # G·I of an LDA stage (the padded extent of one group's tiling)
    max_mlp_ratio: float = 16.0
    max_kernels: int = 8                # kernels of one cross-scale layer
    max_kernel: int = 64                # CEL / merge kernel side
    max_in_chans: int = 16
    max_classes: int = 100_000          # ImageNet-22k has 21,841
    max_img_size: int = 4096
    max_dpb_dim: int = 1024
    max_params: int = 400_000_000       # ++-H with a 22k-class head has about 118 M


#: The bounds :func:`check_limits` applies (frozen).
CONFIG_LIMITS = ConfigLimits()


def _ints(name: str, values: Any, lo: int, hi: int) -> None:
    """Every entry of ``values`` is an ``int`` (not a bool) in ``[lo, hi]``, else ``ValueError``."""
    for v in values if isinstance(values, (tuple, list)) else (values,):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"{name} = {v!r} is outside the supported range {lo}..{hi}")


def check_limits(cfg: CrossFormerConfig, limits: ConfigLimits = CONFIG_LIMITS) -> None:
    """Raise ``ValueError`` (a sentence naming the field) if ``cfg`` exceeds a hard bound of :class:`ConfigLimits`.

    Cheap (no model is built): call it on any config that came from a file before building the model.
    """
    L = limits
    _ints("the number of stages", len(cfg.depths), 1, L.max_stages)
    _ints("embed_dim", cfg.embed_dim, 1, L.max_embed_dim)
    _ints("the last stage's channels", cfg.embed_dim * 2 ** (len(cfg.depths) - 1), 1, L.max_stage_dim)
    _ints("depths", cfg.depths, 1, L.max_depth)
    _ints("the total number of blocks", sum(cfg.depths), 1, L.max_blocks)
    _ints("num_heads", cfg.num_heads, 1, L.max_heads)
    _ints("group_size", cfg.group_size, 1, L.max_group_size)
    if cfg.interval is not None:
        _ints("interval", cfg.interval, 1, L.max_group_span)
        _ints("group_size × interval", [g * i for g, i in zip(cfg.group_size, cfg.interval)], 1, L.max_group_span)
    for r in cfg.mlp_ratio:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= L.max_mlp_ratio:
            raise ValueError(f"mlp_ratio = {r!r} is outside the supported range (0, {L.max_mlp_ratio:g}]")
    _ints("the number of CEL kernels", len(cfg.patch_kernels), 1, L.max_kernels)
    _ints("patch_kernels", cfg.patch_kernels, 1, L.max_kernel)
    for merge in cfg.merge_kernels:
        _ints("the number of merge kernels", len(merge), 1, L.max_kernels)
        _ints("merge_kernels", merge, 1, L.max_kernel)
    _ints("in_chans", cfg.in_chans, 1, L.max_in_chans)
    _ints("num_classes", cfg.num_classes, 0 if cfg.backbone else 1, L.max_classes)   # a backbone has no head
    _ints("img_size", cfg.img_size, 1, L.max_img_size)
    _ints("dpb_min_dim", cfg.dpb_min_dim, 0, L.max_dpb_dim)
    _fractions(cfg)


def _fractions(cfg: CrossFormerConfig) -> None:
    """Dropout rates in [0, 1), a positive finite ``qk_scale`` (or None), three positive normalisation stds."""
    def real(v: Any) -> bool:
        return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)

    for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
        v = getattr(cfg, name)
        if not real(v) or not 0 <= v < 1:
            raise ValueError(f"{name} = {v!r} must be a number in [0, 1)")
    if cfg.qk_scale is not None and (not real(cfg.qk_scale) or cfg.qk_scale <= 0):
        raise ValueError(f"qk_scale = {cfg.qk_scale!r} must be a positive number or null")
    if len(cfg.mean) != 3 or len(cfg.std) != 3 or not all(real(v) for v in (*cfg.mean, *cfg.std)) \
            or not all(v > 0 for v in cfg.std):
        raise ValueError(f"mean/std must be three finite numbers each (stds positive), got {cfg.mean}/{cfg.std}")

#: Smallest input side of every variant here (CEL stride 4, three merges of stride 2): 32 px.
MIN_INPUT_SIDE: int = CrossFormerConfig().min_input_side


def split_channels(total: int, n: int) -> list[int]:
    """Channel share of each kernel of a cross-scale layer (SPEC §2–§3).

    Kernel ``i < n−1`` gets ``total / 2^(i+1)``, the last gets ``total / 2^(n−1)``: 64 → [32, 16, 8, 8].
    """
    return [total // 2 ** (i + 1) for i in range(n - 1)] + [total // 2 ** (n - 1)]


def normalise_overrides(kw: Mapping[str, Any]) -> dict[str, Any]:
    """Lists → tuples so configs stay hashable and comparable."""
    out: dict[str, Any] = {}
    for k, v in kw.items():
        if isinstance(v, list):
            v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        out[k] = v
    return out


# ---- official constructor kwargs ------------------------------------------------------------------
_UNSUPPORTED = {  # official kwarg: the only value every released config uses
    "ape": False, "patch_norm": True, "use_cpe": False, "group_type": "constant", "pad_type": 0,
    "no_mask": False, "adaptive_interval": False,
}


#: ``code_version`` names of the official dense-prediction backbone (``crossformer_backbone_det.py`` and
#: ``_seg.py`` are the same model, SPEC §7).
BACKBONE_CODES = ("det", "seg")


def config_from_official(kwargs: Mapping[str, Any], code_version: str) -> CrossFormerConfig:
    """Translate the official ``CrossFormer(**kwargs)`` arguments (as in the vector sidecars).

    ``code_version="v1"``: LDA interval implicit (= H_i/G), scalar ``mlp_ratio``, no ACL.
    ``code_version="v2"``: explicit ``crs_interval`` with padding + mask, per-stage ``mlp_ratio``, ACL.
    ``code_version="det"`` (or ``"seg"``): the v2 detection/segmentation backbone — v2 grouping, no final
    norm or head (``num_classes`` is ignored), the run-time small-map rule (SPEC §7).
    """
    backbone = code_version in BACKBONE_CODES
    if backbone:
        code_version = "v2"
    if code_version not in ("v1", "v2"):
        raise ValueError(f"code_version must be 'v1', 'v2', 'det' or 'seg', got {code_version!r}")
    for key, only in _UNSUPPORTED.items():
        if key in kwargs and kwargs[key] != only:
            raise NotImplementedError(f"official option {key}={kwargs[key]!r} is not supported "
                                      f"(every released config uses {only!r})")
    depths = tuple(kwargs.get("depths", (2, 2, 6, 2)))
    n = len(depths)
    ratio = kwargs.get("mlp_ratio", 4.0)
    ratios = tuple(float(r) for r in ratio) if isinstance(ratio, (list, tuple)) else (float(ratio),) * n
    interval = None
    if code_version == "v2":
        interval = tuple(int(i) for i in kwargs.get("crs_interval", (8, 4, 2, 1)))
    patch = tuple(kwargs.get("patch_size", (4, 8, 16, 32)))
    merges = tuple(tuple(m) for m in kwargs.get("merge_size", ((2, 4),) * (n - 1)))
    img = kwargs.get("img_size", 224)
    return CrossFormerConfig(
        embed_dim=int(kwargs.get("embed_dim", 96)),
        depths=depths,
        num_heads=tuple(kwargs.get("num_heads", (3, 6, 12, 24))),
        group_size=tuple(kwargs.get("group_size", (7, 7, 7, 7))),
        interval=interval,
        mlp_ratio=ratios,
        patch_kernels=patch,
        merge_kernels=merges,
        use_acl=bool(kwargs.get("use_acl", False)) and code_version == "v2",
        in_chans=int(kwargs.get("in_chans", 3)),
        num_classes=0 if backbone else int(kwargs.get("num_classes", 1000)),
        qkv_bias=bool(kwargs.get("qkv_bias", True)),
        qk_scale=kwargs.get("qk_scale"),
        drop_rate=float(kwargs.get("drop_rate", 0.0)),
        attn_drop_rate=float(kwargs.get("attn_drop_rate", 0.0)),
        drop_path_rate=float(kwargs.get("drop_path_rate", 0.0)),
        img_size=int(img[0] if isinstance(img, (list, tuple)) else img),
        backbone=backbone,
    )
