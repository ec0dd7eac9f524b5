"""CrossFormer / CrossFormer++ forward pass in plain NumPy, to read beside the paper.

One short function per concept, in the paper's order. "Paper": Wang et al., CrossFormer (ICLR 2022) and
CrossFormer++ (TPAMI 2023); "SPEC": ``shared/reference/SPEC.md``, the architecture as the official code computes
it. NumPy and the standard library only, nothing shared with the PyTorch model (not even the group geometry), so
agreement between the two is an independent check. Weights: a plain dict of arrays under the official names.
Left out: training, dropout, drop-path, and official options no released config uses (APE, CPE, non-constant
group sizes).

    logits, trace = forward(weights, x, config)        # trace: the names and layouts of Trace.flat()
    print(report(compare(model_trace.flat(), trace)))   # max abs difference per field, llm.c style
"""

from __future__ import annotations

import math
import sys
from typing import Any, Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Array = np.ndarray
NEG_INF = -1_000_000.0       # the official additive mask value: finite, so a group of padding stays NaN-free
RECOMPUTABLE = ("attn.biases", "attn.relative_position_index", "attn_mask")   # v1 buffers: accepted, ignored
RELEASED_OPTIONS = dict(ape=False, patch_norm=True, use_cpe=False, group_type="constant", pad_type=0, no_mask=False,
                        adaptive_interval=False)             # official options: the only values any config uses
_STEP = 256                                                      # erf table: x0 = k/256 on [0, 6]
_ERF0 = np.array([math.erf(k / _STEP) for k in range(6 * _STEP + 1)])             # erf(x0)
_DERF0 = 2 / math.sqrt(math.pi) * np.exp(-(np.arange(6 * _STEP + 1) / _STEP) ** 2)  # erf'(x0)


# ---- basic functions ----------------------------------------------------------------------------------------
def layer_norm(x: Array, w: Array, b: Array, eps: float = 1e-5) -> Array:  # [..., C], [C], [C] -> [..., C]
    """LayerNorm over the last axis with the biased variance and eps 1e-5 (SPEC §1)."""
    xc = x - x.mean(-1, keepdims=True)
    return xc / np.sqrt(np.square(xc).mean(-1, keepdims=True) + eps) * w + b


def linear(x: Array, w: Array, b: Array | None = None) -> Array:  # [..., Cin], [Cout, Cin], [Cout] -> [..., Cout]
    return x @ w.T if b is None else x @ w.T + b


def erf(x: Array) -> Array:  # [...] -> [...] float64
    """The error function (NumPy has none): a Taylor step from the nearest tabulated ``math.erf``, error < 1e-11:
    ``erf(x0 + δ) = erf(x0) + erf'(x0)·(δ − x0·δ² + (2x0² − 1)·δ³/3)`` with ``|δ| ≤ 1/512``."""
    a = np.minimum(np.abs(x, dtype=np.float64), 6.0)           # erf(6) = 1 − 2e-17
    k = np.rint(a * _STEP).astype(np.intp)
    x0 = k / _STEP
    d = a - x0
    return np.copysign(_ERF0[k] + _DERF0[k] * d * (1 - d * (x0 - d * (2 * x0 * x0 - 1) / 3)), x)


def gelu(x: Array) -> Array:  # [...] -> [...]
    """The exact GELU of the MLP, ``x·Φ(x) = x/2·(1 + erf(x/√2))`` (SPEC §1), erf in float64."""
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(x.dtype)


def softmax(x: Array) -> Array:  # [..., N] -> [..., N]
    """Softmax over the last axis; subtracting the row maximum keeps ``exp`` finite."""
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def conv2d(x: Array, w: Array, b: Array, stride: int, pad: int) -> Array:
    # [B, Cin, H, W], [Cout, Cin, k, k], [Cout] -> [B, Cout, Ho, Wo]
    """A strided convolution as one matrix product (im2col): each k×k patch becomes a row of ``Cin·k·k``."""
    B, C, k = x.shape[0], x.shape[1], w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]    # (B, C, Ho, Wo, k, k)
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(B, *win.shape[2:4], C * k * k)   # (B, Ho, Wo, C·k·k)
    return (cols @ w.reshape(len(w), -1).T + b).transpose(0, 3, 1, 2)


def tokens_to_map(x: Array, hw: tuple[int, int]) -> Array:  # [B, H·W, C] -> [B, C, H, W]
    return x.transpose(0, 2, 1).reshape(x.shape[0], -1, *hw)


def map_to_tokens(x: Array) -> Array:  # [B, C, H, W] -> [B, H·W, C], row-major t = h·W + w
    return x.reshape(*x.shape[:2], -1).transpose(0, 2, 1)


# ---- cross-scale embedding layer ------------------------------------------------------------------------------
def cross_scale_convs(x: Array, p: dict, kernels, stride: int) -> list[Array]:  # [B, Cin, H, W] -> [[B, c_k, Ho, Wo]]
    """Convs of several kernel sizes, one stride, padding ``(k − s)/2``: every kernel samples the same
    centres, so each output position sees one place at several scales (paper "Cross-scale Embedding Layer")."""
    return [conv2d(x, p[f"{i}.weight"], p[f"{i}.bias"], stride, (k - stride) // 2) for i, k in enumerate(kernels)]


def cross_scale_embedding(x: Array, p: dict, kernels) -> tuple[Array, list[Array]]:
    # [B, 3, H, W] -> tokens [B, H/4·W/4, D], per-kernel maps [B, c_k, H/4, W/4]
    """CEL (paper "Cross-scale Embedding Layer (CEL)", SPEC §2): kernels 4/8/16/32 with stride 4, outputs
    concatenated along channels (k = 4 first), then LayerNorm."""
    outs = cross_scale_convs(x, params(p, "projs."), kernels, kernels[0])
    return layer_norm(map_to_tokens(np.concatenate(outs, axis=1)), p["norm.weight"], p["norm.bias"]), outs


# ---- long short distance attention: groups ---------------------------------------------------------------------
def group_plan(kind: str, hw: tuple[int, int], G: int, interval: int | None,
               backbone: bool = False):  # -> kind, G, (I_h, I_w), (Hp, Wp)
    """A block's grouping of an H×W map (paper "Long Short Distance Attention (LSDA)", SPEC §4, §4.2): a map no
    larger than G (the detection backbone: whose short side is ≤ G, SPEC §7) is one global SDA group of side
    max(H, W). SDA pads to multiples of G, LDA to multiples of G·I; the v1 code (``interval=None``) uses
    I = ⌈H/G⌉, ⌈W/G⌉, so one LDA group spans the map."""
    H, W = hw
    if (min(H, W) if backbone else max(H, W)) <= G:
        kind, G = "sda", max(H, W)
    if kind == "sda":
        Ih = Iw = 1
    else:                                     # v1: I = ⌈H/G⌉ (one group spans the map); v2: the configured I
        Ih, Iw = (-(-H // G), -(-W // G)) if interval is None else (interval, interval)
    return kind, G, (Ih, Iw), (-(-H // (G * Ih)) * G * Ih, -(-W // (G * Iw)) * G * Iw)


def sda_group(x: Array, G: int) -> Array:  # [B, Hp, Wp, C] -> [B, nG, G², C]
    """SDA (paper "LSDA"): adjacent G×G windows; group ``a·(Wp/G) + b`` holds ``(a·G + r, b·G + c)`` (SPEC §4.2)."""
    B, Hp, Wp, C = x.shape
    x = x.reshape(B, Hp // G, G, Wp // G, G, C).transpose(0, 1, 3, 2, 4, 5)         # (B, a, b, r, c, C)
    return x.reshape(B, -1, G * G, C)


def sda_ungroup(x: Array, Hp: int, Wp: int, G: int) -> Array:  # [B, nG, G², C] -> [B, Hp, Wp, C]
    B, C = x.shape[0], x.shape[-1]
    x = x.reshape(B, Hp // G, Wp // G, G, G, C).transpose(0, 1, 3, 2, 4, 5)         # (B, a, r, b, c, C)
    return x.reshape(B, Hp, Wp, C)


def lda_group(x: Array, G: int, I: tuple[int, int]) -> Array:  # [B, Hp, Wp, C] -> [B, nG, G², C]
    """LDA (paper "LSDA"): members I apart. Windows of side G·I each hold I² groups; member (r, c) of group
    ``((ρh·Rw + ρw)·I_h + i_h)·I_w + i_w`` sits at ``(ρh·G·I_h + r·I_h + i_h, ρw·G·I_w + c·I_w + i_w)`` (SPEC §4.2)."""
    (B, Hp, Wp, C), (Ih, Iw) = x.shape, I
    x = x.reshape(B, Hp // (G * Ih), G, Ih, Wp // (G * Iw), G, Iw, C)
    return x.transpose(0, 1, 4, 3, 6, 2, 5, 7).reshape(B, -1, G * G, C)            # (B, ρh·ρw·ih·iw, r·c, C)


def lda_ungroup(x: Array, Hp: int, Wp: int, G: int, I: tuple[int, int]) -> Array:  # [B, nG, G², C] -> [B, Hp, Wp, C]
    (Ih, Iw), B, C = I, x.shape[0], x.shape[-1]
    x = x.reshape(B, Hp // (G * Ih), Wp // (G * Iw), Ih, Iw, G, G, C)
    return x.transpose(0, 1, 5, 3, 2, 6, 4, 7).reshape(B, Hp, Wp, C)               # (B, ρh·r·ih, ρw·c·iw, C)


def group(x: Array, hw: tuple[int, int], plan, value: float = 0) -> Array:  # [B, H·W, C] -> [B, nG, G², C]
    """Pad bottom/right with ``value`` (zeros after norm1, SPEC §4.3), then cut SDA or LDA groups."""
    kind, G, I, (Hp, Wp) = plan
    x = x.reshape(x.shape[0], *hw, x.shape[-1])
    x = np.pad(x, ((0, 0), (0, Hp - hw[0]), (0, Wp - hw[1]), (0, 0)), constant_values=value)
    return sda_group(x, G) if kind == "sda" else lda_group(x, G, I)


def ungroup(x: Array, hw: tuple[int, int], plan) -> Array:  # [B, nG, G², C] -> [B, H·W, C], padding cropped
    kind, G, I, (Hp, Wp) = plan
    x = sda_ungroup(x, Hp, Wp, G) if kind == "sda" else lda_ungroup(x, Hp, Wp, G, I)
    return x[:, :hw[0], :hw[1]].reshape(x.shape[0], -1, x.shape[-1])


def padding_mask(members: Array) -> Array:  # [nG, N] -> [nG, 1, 1, N]
    """−1e6 on every key that is a padded position, for every query and head (SPEC §4.3)."""
    return np.where(members < 0, NEG_INF, 0.0)[:, None, None, :]


# ---- dynamic position bias ------------------------------------------------------------------------------------
def dpb_offsets(G: int) -> Array:  # -> [(2G−1)², 2]
    """DPB's mother set of relative offsets ``(Δh, Δw) ∈ [−(G−1), G−1]²``, Δh-major (paper "DPB", SPEC §4.4)."""
    d = np.arange(1 - G, G, dtype=np.float64)
    return np.stack(np.meshgrid(d, d, indexing="ij"), axis=-1).reshape(-1, 2)


def dpb_mlp(offsets: Array, p: dict) -> Array:  # [M, 2] -> [M, heads]
    """DPB (paper "Dynamic Position Bias (DPB)", SPEC §4.4): Linear(2, P), then three times
    [LayerNorm, ReLU, Linear]; the last Linear gives one bias per head."""
    x = linear(offsets, p["pos_proj.weight"], p["pos_proj.bias"])
    for i in (1, 2, 3):
        x = np.maximum(layer_norm(x, p[f"pos{i}.0.weight"], p[f"pos{i}.0.bias"]), 0)
        x = linear(x, p[f"pos{i}.2.weight"], p[f"pos{i}.2.bias"])
    return x


def dpb_bias(table: Array, G: int) -> Array:  # [(2G−1)², heads] -> [heads, G², G²]
    """Look up each (query, key) member pair: row ``(r_q − r_k + G − 1)·(2G − 1) + (c_q − c_k + G − 1)``."""
    r, c = np.divmod(np.arange(G * G), G)
    index = (r[:, None] - r[None] + G - 1) * (2 * G - 1) + (c[:, None] - c[None] + G - 1)     # (G², G²)
    return table[index].transpose(2, 0, 1)


# ---- attention and the block ---------------------------------------------------------------------------------
def attention(q: Array, k: Array, v: Array, scale: float, bias: Array, mask: Array) -> Array:
    # [B, nG, h, N, d] ×3, [h, N, N], [nG, 1, 1, N] -> [B, nG, h, N, d]
    """``Attention(Q, K, V) = Softmax(Q·Kᵀ/√d + B)·V`` in every group (paper "Dynamic Position Bias"), with
    the padding mask added (SPEC §4.1, §4.3)."""
    return softmax(q @ k.mT * scale + bias + mask) @ v


def group_attention(x: Array, hw, p: dict, heads: int, plan, scale: float, rec: dict | None) -> Array:
    # [B, H·W, C] -> [B, H·W, C]
    """SDA/LDA multi-head self-attention with DPB (SPEC §4.1–§4.4); channel ``h·d + e`` is head h, dim e."""
    B, L, C = x.shape
    G = plan[1]
    members = group(np.arange(L).reshape(1, L, 1), hw, plan, value=-1)[0, :, :, 0]   # (nG, N) token, −1 = pad
    mask = padding_mask(members).astype(x.dtype)
    table = dpb_mlp(dpb_offsets(G).astype(x.dtype), params(p, "pos."))             # ((2G−1)², h)
    bias = dpb_bias(table, G)                                                       # (h, N, N)
    qkv = linear(group(x, hw, plan), p["qkv.weight"], p.get("qkv.bias"))            # (B, nG, N, 3C)
    q, k, v = qkv.reshape(B, -1, G * G, 3, heads, C // heads).transpose(3, 0, 1, 4, 2, 5)   # (B, nG, h, N, d)
    out = attention(q, k, v, scale, bias, mask)
    if rec is not None:
        content = q @ k.mT * scale                                                  # (B, nG, h, N, N)
        rec |= dict(content=content, attention=softmax(content + bias + mask), dpb_table=table, dpb_bias=bias,
                    members=members)
    out = out.transpose(0, 1, 3, 2, 4).reshape(B, -1, G * G, C)                    # (B, nG, N, C)
    return linear(ungroup(out, hw, plan), p["proj.weight"], p["proj.bias"])


def activation_cooling(x: Array, hw: tuple[int, int], p: dict) -> Array:  # [B, H·W, C] -> [B, H·W, C]
    """Activation cooling layer (CrossFormer++ paper "ACL", SPEC §6): depthwise 3×3 conv, then LayerNorm; the
    result replaces x (no skip connection)."""
    (H, W), w = hw, p["ex_conv.weight"]
    m = np.pad(tokens_to_map(x, hw), ((0, 0), (0, 0), (1, 1), (1, 1)))              # (B, C, H + 2, W + 2)
    m = sum(m[:, :, i:i + H, j:j + W] * w[:, 0, i, j, None, None] for i in range(3) for j in range(3))
    return layer_norm(map_to_tokens(m + p["ex_conv.bias"][:, None, None]), p["ex_ln.weight"], p["ex_ln.bias"])


def block(x: Array, hw, p: dict, heads: int, plan, scale: float, acl: bool, rec: dict | None) -> Array:
    # [B, H·W, C] -> [B, H·W, C]
    """CrossFormer block (paper "CrossFormer Block", SPEC §4): pre-norm attention and MLP (Linear, GELU,
    Linear), each with a residual; in CrossFormer++ every third block ends with the ACL."""
    y = layer_norm(x, p["norm1.weight"], p["norm1.bias"])
    x = x + group_attention(y, hw, params(p, "attn."), heads, plan, scale, rec)
    y = layer_norm(x, p["norm2.weight"], p["norm2.bias"])
    x = x + linear(gelu(linear(y, p["mlp.fc1.weight"], p["mlp.fc1.bias"])), p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    return activation_cooling(x, hw, p) if acl else x


def patch_merging(x: Array, hw, p: dict, kernels) -> tuple[Array, list[Array]]:
    # [B, H·W, C] -> tokens [B, H/2·W/2, 2C], per-kernel maps [B, C, H/2, W/2]
    """The CEL that opens stages 2–4 (paper "Cross-scale Embedding Layer", SPEC §3): LayerNorm first, then 2×2
    and 4×4 convs of stride 2, concatenated (no norm after)."""
    m = tokens_to_map(layer_norm(x, p["norm.weight"], p["norm.bias"]), hw)         # (B, C, H, W)
    outs = cross_scale_convs(m, params(p, "reductions."), kernels, 2)
    return map_to_tokens(np.concatenate(outs, axis=1)), outs


def classifier_head(x: Array, p: dict) -> tuple[Array, Array]:  # [B, L, C3] -> pooled [B, C3], logits [B, classes]
    """Final LayerNorm, mean over tokens, Linear (SPEC §5)."""
    pooled = layer_norm(x, p["norm.weight"], p["norm.bias"]).mean(axis=1)
    return pooled, linear(pooled, p["head.weight"], p["head.bias"])


# ---- config and weights ---------------------------------------------------------------------------------------
def params(p: Mapping[str, Array], prefix: str) -> dict[str, Array]:  # the weights of one module, names relative
    return {k[len(prefix):]: v for k, v in p.items() if k.startswith(prefix)}


def split_channels(total: int, n: int) -> list[int]:  # kernel i < n−1: total/2^(i+1); the last: total/2^(n−1)
    return [total // 2 ** (i + 1) for i in range(n - 1)] + [total // 2 ** (n - 1)]


def acl_block(cfg: dict, stage: int, j: int) -> bool:  # CrossFormer++: (j + 1) % 3 == 0 and j < L − 1 (SPEC §6)
    return cfg["use_acl"] and (j + 1) % 3 == 0 and j < cfg["depths"][stage] - 1


def read_config(config: Any) -> dict[str, Any]:
    """The fields the forward pass reads, from a ``CrossFormerConfig``, any object with those fields, or a dict
    (per-stage values may be one scalar; ``interval=None`` is the v1 code's implicit LDA interval)."""
    raw = config.get if isinstance(config, Mapping) else (lambda k: getattr(config, k, None))
    get = lambda k, d=None: d if raw(k) is None else raw(k)  # noqa: E731
    n, interval = len(get("depths")), get("interval")
    per_stage = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,) * n  # noqa: E731
    return dict(embed_dim=int(get("embed_dim")), depths=tuple(get("depths")), num_heads=per_stage(get("num_heads")),
                group_size=per_stage(get("group_size", 7)), interval=interval and per_stage(interval),
                mlp_ratio=per_stage(get("mlp_ratio", 4.0)), patch_kernels=tuple(get("patch_kernels", (4, 8, 16, 32))),
                merge_kernels=tuple(map(tuple, get("merge_kernels", ((2, 4),) * (n - 1)))),
                use_acl=bool(get("use_acl", False)), qk_scale=get("qk_scale"), qkv_bias=bool(get("qkv_bias", True)),
                in_chans=int(get("in_chans", 3)), num_classes=get("num_classes"),
                dpb_min_dim=int(get("dpb_min_dim", 0)), backbone=bool(get("backbone", False)))


def config_from_official(kwargs: Mapping[str, Any], code_version: str) -> dict[str, Any]:
    """The official ``CrossFormer(**kwargs)`` arguments: v1 code has an implicit LDA interval and no ACL; v2
    code reads ``crs_interval`` and ``use_acl`` (SPEC §6, §12); ``"det"``/``"seg"``: the v2 detection backbone,
    no final norm or head (SPEC §7)."""
    backbone = code_version in ("det", "seg")
    code_version = "v2" if backbone else code_version
    if code_version not in ("v1", "v2"):
        raise ValueError(f"code_version must be 'v1' or 'v2', got {code_version!r}")
    bad = {k: kwargs[k] for k, v in RELEASED_OPTIONS.items() if kwargs.get(k, v) != v}
    if bad:
        raise NotImplementedError(f"official options {bad} are not implemented (no released config uses them)")
    names = dict(patch_size="patch_kernels", merge_size="merge_kernels", crs_interval="interval")
    cfg = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), interval=(8, 4, 2, 1), num_classes=1000)
    cfg |= {names.get(k, k): v for k, v in kwargs.items()}            # the official defaults, then the kwargs
    v2 = code_version == "v2"
    return read_config(cfg | dict(interval=cfg["interval"] if v2 else None, use_acl=v2 and cfg.get("use_acl", False),
                                  backbone=backbone))


def expected_shapes(cfg: dict, num_classes: int) -> dict[str, tuple[int, ...]]:
    """Every weight a config needs, official name → shape, in the official order (SPEC §2–§6)."""
    vec = lambda n, c: {f"{n}.weight": (c,), f"{n}.bias": (c,)}                     # noqa: E731 (LayerNorm)
    lin = lambda n, o, i, bias=True: {f"{n}.weight": (o, i), **({f"{n}.bias": (o,)} if bias else {})}  # noqa: E731
    conv = lambda n, o, i, k: {f"{n}.weight": (o, i, k, k), f"{n}.bias": (o,)}      # noqa: E731
    D, kernels = cfg["embed_dim"], cfg["patch_kernels"]
    s = {}
    for i, (k, c) in enumerate(zip(kernels, split_channels(D, len(kernels)))):
        s |= conv(f"patch_embed.projs.{i}", c, cfg["in_chans"], k)
    s |= vec("patch_embed.norm", D)
    for i, depth in enumerate(cfg["depths"]):
        C, heads, b = D * 2 ** i, cfg["num_heads"][i], f"layers.{i}."
        P, hidden = max((C // 4) // 4, cfg.get("dpb_min_dim", 0)), int(C * cfg["mlp_ratio"][i])  # DPB width
        for j in range(depth):
            a = f"{b}blocks.{j}.attn."
            s |= vec(f"{b}blocks.{j}.norm1", C) | lin(a + "pos.pos_proj", P, 2)
            for n in (1, 2, 3):
                s |= vec(f"{a}pos.pos{n}.0", P) | lin(f"{a}pos.pos{n}.2", heads if n == 3 else P, P)
            s |= lin(a + "qkv", 3 * C, C, cfg["qkv_bias"]) | lin(a + "proj", C, C)
            if acl_block(cfg, i, j):
                s |= {f"{b}blocks.{j}.ex_conv.weight": (C, 1, 3, 3), f"{b}blocks.{j}.ex_conv.bias": (C,)}
                s |= vec(f"{b}blocks.{j}.ex_ln", C)
            s |= vec(f"{b}blocks.{j}.norm2", C) | lin(f"{b}blocks.{j}.mlp.fc1", hidden, C)
            s |= lin(f"{b}blocks.{j}.mlp.fc2", C, hidden)
        if i < len(cfg["depths"]) - 1:
            merge = cfg["merge_kernels"][i]
            for r, (k, c) in enumerate(zip(merge, split_channels(2 * C, len(merge)))):
                s |= conv(f"{b}downsample.reductions.{r}", c, C, k)
            s |= vec(f"{b}downsample.norm", C)
    C3 = D * 2 ** (len(cfg["depths"]) - 1)
    return s if cfg.get("backbone") else s | vec("norm", C3) | lin("head", num_classes, C3)


def check_weights(state_dict: Mapping[str, Any], cfg: dict, dtype=np.float32) -> dict[str, Array]:
    """Drop ``module.``/``backbone.`` prefixes and the recomputable v1 buffers, then check every name and shape
    against the config before anything runs: the ValueError names each key with both shapes."""
    sd = {}
    for key, value in state_dict.items():
        while key.startswith(("module.", "backbone.")):
            key = key.split(".", 1)[1]
        if not key.endswith(RECOMPUTABLE):
            sd[key] = value
    classes = cfg["num_classes"] or (np.shape(sd["head.weight"])[0] if "head.weight" in sd else 1000)
    want = expected_shapes(cfg, classes)
    problems = [f"missing {k!r} (expected shape {s})" for k, s in want.items() if k not in sd]
    problems += [f"unexpected {k!r} with shape {tuple(np.shape(v))}" for k, v in sd.items() if k not in want]
    problems += [f"{k!r} has shape {tuple(np.shape(v))}, the config expects {want[k]}"
                 for k, v in sd.items() if k in want and tuple(np.shape(v)) != want[k]]
    if problems:
        more = f"\n  … and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ValueError(f"{len(problems)} weight problem(s) for this config:\n  " + "\n  ".join(problems[:10])
                         + more)
    return {k: np.asarray(v, dtype=dtype) for k, v in sd.items()}


# ---- the model --------------------------------------------------------------------------------------------------
def forward(state_dict: Mapping[str, Any], x: Array, config: Any, *, dtype=np.float32,
            trace: bool = True, progress: Any = None) -> tuple[Array, dict[str, Array]]:
    """CrossFormer / CrossFormer++ classifier (SPEC §1) on ``x`` ``(B, 3, H, W)``, any ``H, W ≥ 32``; with a
    backbone config (``config_from_official(kwargs, "det")``) the detection backbone: logits ``(B, 0)``, the stage
    outputs under ``stages.i``.

    ``state_dict`` holds the official names (numpy arrays, or anything ``np.asarray`` reads); ``config`` is
    read by :func:`read_config`; ``dtype=np.float64`` gives a high-precision reference. Returns logits
    ``(B, classes)`` and, if ``trace``, every intermediate under the names and layouts of ``Trace.flat()``.
    ``progress``, if given, is called as ``progress(blocks done, blocks in all)`` after every block.
    """
    cfg = read_config(config)
    p = check_weights(state_dict, cfg, dtype)
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 4 or x.shape[1] != cfg["in_chans"] or min(x.shape[2:]) < 32:
        raise ValueError(f"expected an input (B, {cfg['in_chans']}, H, W) with H, W ≥ 32, got {x.shape}")
    flat = {}
    tokens, outs = cross_scale_embedding(x, params(p, "patch_embed."), cfg["patch_kernels"])
    flat |= {"embedding.output": tokens} | {f"embedding.k{k}": o for k, o in zip(cfg["patch_kernels"], outs)}
    for i, depth in enumerate(cfg["depths"]):
        hw, heads = outs[0].shape[-2:], cfg["num_heads"][i]
        scale = cfg["qk_scale"] or (cfg["embed_dim"] * 2 ** i // heads) ** -0.5
        for j in range(depth):
            kind, rec = "lda" if j % 2 else "sda", {} if trace else None       # SDA/LDA alternate (SPEC §4)
            plan = group_plan(kind, hw, cfg["group_size"][i], cfg["interval"] and cfg["interval"][i], cfg["backbone"])
            p_block, acl = params(p, f"layers.{i}.blocks.{j}."), acl_block(cfg, i, j)
            tokens = block(tokens, hw, p_block, heads, plan, scale, acl, rec)
            if progress is not None:
                progress(sum(cfg["depths"][:i]) + j + 1, sum(cfg["depths"]))
            if trace:
                rec |= dict(output=tokens, members=rec.pop("members"))
                flat |= {f"blocks.s{i}_b{j}.{name}": a for name, a in rec.items()}
        flat[f"stages.{i}"] = tokens
        if i < len(cfg["depths"]) - 1:
            kernels = cfg["merge_kernels"][i]
            tokens, outs = patch_merging(tokens, hw, params(p, f"layers.{i}.downsample."), kernels)
            flat |= {f"merges.{i}.output": tokens} | {f"merges.{i}.k{k}": o for k, o in zip(kernels, outs)}
    if cfg["backbone"]:                        # no final norm, no head: the stage outputs are the result
        pooled, logits = tokens.mean(axis=1), np.zeros((x.shape[0], 0), dtype)
    else:
        pooled, logits = classifier_head(tokens, p)
    order = ("embedding", "merges", "blocks", "stages")                             # the order of Trace.flat()
    flat = dict(sorted(flat.items(), key=lambda kv: order.index(kv[0].split(".")[0])))
    return logits, (flat | dict(pooled=pooled, logits=logits)) if trace else {}


def forward_official(state_dict: dict[str, np.ndarray], x: np.ndarray, kwargs: dict, code_version: str) -> np.ndarray:
    """Logits ``(B, classes)`` for ``x`` ``(B, 3, H, W)``; the model is given by the official
    ``CrossFormer(**kwargs)`` arguments and ``code_version`` ``"v1"``/``"v2"`` (as in the vector sidecars)."""
    return forward(state_dict, x, config_from_official(kwargs, code_version), trace=False)[0]


# ---- agreement, llm.c style -------------------------------------------------------------------------------------
def compare(trace_flat: Mapping[str, Any], ref_flat: Mapping[str, Any]) -> dict[str, float]:
    """Max abs difference per field of two flat traces; ``inf`` where a field is missing or the shapes differ."""
    errors = {}
    for key in dict.fromkeys([*trace_flat, *ref_flat]):
        a, b = trace_flat.get(key), ref_flat.get(key)
        same = a is not None and b is not None and np.shape(a) == np.shape(b)
        errors[key] = float(np.abs(np.subtract(a, b, dtype=np.float64)).max(initial=0)) if same else math.inf
    return errors


def report(errors: Mapping[str, float], tol: float = 1e-4) -> str:
    """One line per field (``OK``/``NOT OK``, name, max abs difference), then a summary line."""
    width = max(map(len, errors), default=0)
    lines = [f"{'OK' if e <= tol else 'NOT OK':6s} {k:{width}s}  maxdiff {e:.2e}" for k, e in errors.items()]
    bad = sum(e > tol for e in errors.values())
    return "\n".join(lines + [f"{len(errors) - bad}/{len(errors)} fields within {tol:g}"])


def vector_fields(flat: Mapping[str, Array]) -> dict[str, Array]:
    """A reference trace under the names and layouts of an official test vector (SPEC §13): ``patch_embed``,
    ``stage{i}_blocks``, ``pooled``, ``logits`` and ``attn_s{i}_b{j}`` as ``(B·nG, heads, N, N)``."""
    out = {"patch_embed": flat["embedding.output"], "pooled": flat["pooled"], "logits": flat["logits"]}
    out |= {f"stage{k[7:]}_blocks": v for k, v in flat.items() if k.startswith("stages.")}
    return out | {f"attn_{k[7:-10]}": v.reshape(-1, *v.shape[2:]) for k, v in flat.items() if k.endswith(".attention")}


def main(argv: list[str]) -> int:
    """``python -m crossformer.reference [VECTOR.npz …]``: check official test vectors (default: all of
    ``shared/reference/vectors``) with NumPy alone; print the max difference of every stored field."""
    import json
    from pathlib import Path
    shared = Path(__file__).resolve().parents[2] / "shared"
    paths = [Path(a) for a in argv] or sorted(shared.glob("reference/vectors/*.npz"))
    worst = 0.0 if paths else math.inf
    for path in paths:
        meta, z = json.loads(path.with_suffix(".json").read_text()), dict(np.load(path))
        cfg = config_from_official(meta["constructor_kwargs"], meta["code_version"])
        ours = vector_fields(forward({k[3:]: v for k, v in z.items() if k.startswith("sd/")}, z["input"], cfg)[1])
        errors = compare({k: z[k] for k in ours if k in z}, {k: v for k, v in ours.items() if k in z})
        print(f"== {path.name}: {meta['code_version']} code, input {z['input'].shape}\n{report(errors, 2e-4)}")
        worst = max(worst, *errors.values())
    return int(worst > 2e-4)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
