"""The named variants: one record per model, with everything this project knows about it.

Each :class:`Variant` holds the architecture (a :class:`~crossformer.config.CrossFormerConfig`), its human
name and paper, the numbers the official README publishes (parameters, FLOPs, ImageNet-1k top-1 at 224²)
and where its official weights are published (SPEC §8, §10). The registry (:func:`get_config`,
:func:`list_models`), checkpoint inference, the weight fetcher and the app's About page all read this one
table. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .config import CrossFormerConfig, normalise_overrides


@dataclass(frozen=True)
class WeightSource:
    """Where one official checkpoint can be downloaded by a script (Google Drive)."""

    drive_id: str            # Google Drive file id
    filename: str            # the official file name (also the name in the cache)
    size: int = 0            # its size in bytes, 0 = not recorded (Drive publishes none without an API key)
    sha256: str = ""         # its SHA-256 (hex), "" = not recorded: a download is then verified by a full
                             # load as the variant (crossformer.fetch); a recorded one replaces that load

    @property
    def drive_link(self) -> str:
        """The Drive page a person can open in a browser."""
        return f"https://drive.google.com/file/d/{self.drive_id}/view?usp=sharing"


@dataclass(frozen=True)
class Published:
    """What the official README reports for a variant (ImageNet-1k, 224 × 224)."""

    params_m: float          # parameters, millions
    gflops: float            # GFLOPs
    top1: float              # top-1 accuracy, %


@dataclass(frozen=True)
class Variant:
    """One named model."""

    name: str                            # registry name, e.g. "crossformer_s"
    title: str                           # e.g. "CrossFormer-S"
    paper: str                           # e.g. "ICLR 2022"
    config: CrossFormerConfig
    published: Published | None = None   # None: not an official release (the demo model)
    weights: WeightSource | None = None  # None: no script-downloadable official file
    baidu_url: str = ""                  # Baidu Netdisk page (manual download) …
    baidu_key: str = ""                  # … and its extraction key
    weights_note: str = ""               # a caveat about the published link

    @property
    def baidu(self) -> str:
        """``"https://pan.baidu.com/s/… (key abcd)"``, or ``""`` when there is no Baidu link."""
        if not self.baidu_url:
            return ""
        return f"{self.baidu_url} (key {self.baidu_key}" + (f"; {self.weights_note})" if self.weights_note else ")")

    @property
    def label(self) -> str:
        """``"CrossFormer-S (ICLR 2022)"``."""
        return f"{self.title} ({self.paper})"

    @property
    def code_family(self) -> str:
        """``"v1"`` (CrossFormer code: implicit LDA interval) or ``"v2"`` (CrossFormer++ code)."""
        return self.config.code_version


#: CrossFormer++ layout: progressive group size, explicit interval, activation cooling layer.
PP_LAYOUT: dict[str, Any] = dict(group_size=(4, 4, 14, 7), interval=(4, 2, 1, 1), use_acl=True)
#: Grouping of every official detection/segmentation config (CrossFormer-S/B and ++-S alike, SPEC §7): the
#: backbone runs with these, not the classifier's (group sizes and intervals cannot be read off the weights).
DET_LAYOUT: dict[str, Any] = dict(group_size=(7, 7, 7, 7), interval=(8, 4, 2, 1))
_ICLR, _TPAMI = "ICLR 2022", "TPAMI 2023"
_BAIDU = "https://pan.baidu.com/s/"

#: CrossFormer (ICLR 2022), v1 code (G = 7, LDA interval implicit = H_i / G): name, D, depths, heads,
#: drop-path rate, published (params M, GFLOPs, top-1 %), Google Drive id, Baidu id, Baidu key.
_ICLR_ROWS = (
    ("T", 64, (1, 1, 8, 6), (2, 4, 8, 16), 0.1, (27.8, 2.9, 81.5), "1YSkU9enn-ITyrbxLH13zNcBYvWSEidfq",
     "1M45YXZgVvp6Ew9DO8UhdlA", "nkju"),
    ("S", 96, (2, 2, 6, 2), (3, 6, 12, 24), 0.2, (30.7, 4.9, 82.5), "1RAkigsgr33va0RZ85S2Shs2BhXYcS6U8",
     "1Xf4MXfb_soCnJFBeNDmoQQ", "fgqj"),
    ("B", 96, (2, 2, 18, 2), (3, 6, 12, 24), 0.3, (52.0, 9.2, 83.4), "1bK8biVCi17nz_nkt7rBfio_kywUpllSU",
     "1f5dH__UGDXb-HoOPHT5p0A", "7md9"),
    ("L", 128, (2, 2, 18, 2), (4, 8, 16, 32), 0.5, (92.0, 16.1, 84.0), "1zRWByVW_KIZ87NgaBkDIm60DAsGJErdG",
     "1YJLeHy_cxLBrZLklQBCA_A", "cc89"),
)
#: CrossFormer++ (TPAMI 2023), v2 code, weights on Baidu Netdisk only (key crsf): name, D, depths, heads,
#: drop-path rate, published, Baidu id, note (++-H shares ++-L's link in the official README).
_TPAMI_ROWS = (
    ("S", 64, (2, 2, 18, 2), (2, 4, 8, 16), 0.2, (23.3, 4.9, 83.2), "1smc_kRoogd0Ig5vfqwuGTA", ""),
    ("B", 96, (2, 2, 18, 2), (3, 6, 12, 24), 0.3, (52.0, 9.5, 84.2), "13XVP0ebtNcyRMmkl11ALYg", ""),
    ("L", 128, (2, 2, 18, 2), (4, 8, 16, 32), 0.5, (92.0, 16.6, 84.7), "1xtPh-ndcOxRM7fPYYxIIRg", ""),
    ("H", 128, (6, 6, 18, 2), (4, 8, 16, 32), 0.5, (96.0, 21.8, 84.9), "1xtPh-ndcOxRM7fPYYxIIRg",
     "the official README gives ++-L's link here"),
)

_RECORDS = tuple(
    Variant(f"crossformer_{size.lower()}", f"CrossFormer-{size}", _ICLR,
            CrossFormerConfig(dim, depths, heads, drop_path_rate=dpr), Published(*published),
            WeightSource(drive, f"crossformer-{size.lower()}.pth"), _BAIDU + baidu, key)
    for size, dim, depths, heads, dpr, published, drive, baidu, key in _ICLR_ROWS
) + tuple(
    Variant(f"crossformer_pp_{size.lower()}", f"CrossFormer++-{size}", _TPAMI,
            CrossFormerConfig(dim, depths, heads, drop_path_rate=dpr, **PP_LAYOUT), Published(*published),
            baidu_url=f"{_BAIDU}{baidu}?pwd=crsf", baidu_key="crsf", weights_note=note)
    for size, dim, depths, heads, dpr, published, baidu, note in _TPAMI_ROWS
) + (
    # The small model the app ships (trained on cross-scale Navon figures, see assets/MODEL_CARD.md):
    # CrossFormer (v1) layout, so one LDA group spans the whole map at every input size, and a DPB hidden
    # width of at least 8 (the official C/16 would be 2 in stage 0: a flat bias by construction).
    Variant("crossformer_demo", "CrossFormer demo", "this project, Navon figures",
            CrossFormerConfig(32, (2, 2, 2, 2), (2, 4, 8, 16), group_size=(7, 7, 7, 7), interval=None,
                              num_classes=25, dpb_min_dim=8)),
)

#: Every named variant, by registry name.
VARIANT_RECORDS: dict[str, Variant] = {v.name: v for v in _RECORDS}
#: The architecture of every named variant (a view of :data:`VARIANT_RECORDS`).
VARIANTS: dict[str, CrossFormerConfig] = {n: v.config for n, v in VARIANT_RECORDS.items()}
#: Human names with the paper (a view of :data:`VARIANT_RECORDS`).
VARIANT_INFO: dict[str, str] = {n: v.label for n, v in VARIANT_RECORDS.items()}


def variant_label(name: str, default: str | None = None) -> str:
    """``"CrossFormer-S (ICLR 2022)"`` for a registry name; ``default`` (or the name) for any other."""
    v = VARIANT_RECORDS.get(name)
    return v.label if v is not None else (name if default is None else default)


def list_models() -> list[str]:
    """Names accepted by :func:`crossformer.create_model`."""
    return list(VARIANT_RECORDS)


def get_config(name: str, **overrides: Any) -> CrossFormerConfig:
    """The config of a named variant, with field overrides (``num_classes=10``, ``interval=(…)``)."""
    if name not in VARIANT_RECORDS:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(VARIANT_RECORDS)}")
    return replace(VARIANT_RECORDS[name].config, **normalise_overrides(overrides))
