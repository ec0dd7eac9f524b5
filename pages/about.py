"""About: the papers, the released variants, how to get and load the official weights, citations."""

import pandas as pd
import streamlit as st

from crossformer.config import VARIANT_INFO, VARIANTS
from pages.common import widgets

widgets.page_header("about", (
    "**CrossFormer** (Wang et al., ICLR 2022) is a vision transformer built on *cross-scale attention*: "
    "its cross-scale embedding layers (CEL) mix patches of several sizes into every token, its "
    "long short distance attention alternates short-distance (SDA) and long-distance (LDA) groups so "
    "attention stays cheap yet reaches across the image, and its dynamic position bias (DPB) makes "
    "relative-position bias an MLP that works at any group size. **CrossFormer++** (TPAMI 2023) adds a "
    "progressive group size (PGS: G = 4, 4, 14, 7 with intervals I = 4, 2, 1, 1) and an activation cooling "
    "layer (ACL) that keeps activations from growing with depth. This app runs a faithful re-implementation "
    "(checkpoints of the official code load strictly) and shows what it computes on your image."))

st.subheader("Released variants (ImageNet-1k, 224×224)")
README = {  # params / FLOPs / top-1 as published in the official README (SPEC §8)
    "crossformer_t": ("27.8 M", "2.9 G", "81.5 %"), "crossformer_s": ("30.7 M", "4.9 G", "82.5 %"),
    "crossformer_b": ("52.0 M", "9.2 G", "83.4 %"), "crossformer_l": ("92.0 M", "16.1 G", "84.0 %"),
    "crossformer_pp_s": ("23.3 M", "4.9 G", "83.2 %"), "crossformer_pp_b": ("52.0 M", "9.5 G", "84.2 %"),
    "crossformer_pp_l": ("92.0 M", "16.6 G", "84.7 %"), "crossformer_pp_h": ("96.0 M", "21.8 G", "84.9 %"),
}
rows = []
for name, cfg in VARIANTS.items():
    params, flops, top1 = README.get(name, ("–", "–", "–"))
    rows.append({"variant": VARIANT_INFO.get(name, name), "name": name, "D": cfg.embed_dim,
                 "depths": "-".join(map(str, cfg.depths)), "heads": "-".join(map(str, cfg.num_heads)),
                 "G": "-".join(map(str, cfg.group_size)),
                 "I": "H/G (v1)" if cfg.interval is None else "-".join(map(str, cfg.interval)),
                 "ACL": "yes" if cfg.use_acl else "–", "params": params, "FLOPs": flops, "top-1": top1})
# a static table wraps to the page width (a dataframe scrolled its last column, top-1, out of view)
st.table(pd.DataFrame(rows).set_index("variant"))
st.caption("D: channels of stage 0 · depths: blocks per stage · heads: attention heads per stage · G: group side "
           "(tokens) per stage · I: LDA interval per stage (v1: H/G, one LDA group spans the whole map) · ACL: "
           "activation cooling layer · FLOPs at 224×224 · top-1: ImageNet-1k accuracy as published.")
st.caption("The demo model is this project's own small CrossFormer trained on Navon figures (a large shape made "
           "of small shapes), a task that needs both fine detail and global layout.")

st.subheader("Official weights")
st.markdown("""
| variant | download (links from the official README) |
|---|---|
| CrossFormer-T | [Google Drive](https://drive.google.com/file/d/1YSkU9enn-ITyrbxLH13zNcBYvWSEidfq/view?usp=sharing) · [Baidu](https://pan.baidu.com/s/1M45YXZgVvp6Ew9DO8UhdlA) (key nkju) |
| CrossFormer-S | [Google Drive](https://drive.google.com/file/d/1RAkigsgr33va0RZ85S2Shs2BhXYcS6U8/view?usp=sharing) · [Baidu](https://pan.baidu.com/s/1Xf4MXfb_soCnJFBeNDmoQQ) (key fgqj) |
| CrossFormer-B | [Google Drive](https://drive.google.com/file/d/1bK8biVCi17nz_nkt7rBfio_kywUpllSU/view?usp=sharing) · [Baidu](https://pan.baidu.com/s/1f5dH__UGDXb-HoOPHT5p0A) (key 7md9) |
| CrossFormer-L | [Google Drive](https://drive.google.com/file/d/1zRWByVW_KIZ87NgaBkDIm60DAsGJErdG/view?usp=sharing) · [Baidu](https://pan.baidu.com/s/1YJLeHy_cxLBrZLklQBCA_A) (key cc89) |
| CrossFormer++-S | [Baidu](https://pan.baidu.com/s/1smc_kRoogd0Ig5vfqwuGTA?pwd=crsf) (key crsf) |
| CrossFormer++-B | [Baidu](https://pan.baidu.com/s/13XVP0ebtNcyRMmkl11ALYg?pwd=crsf) (key crsf) |
| CrossFormer++-L | [Baidu](https://pan.baidu.com/s/1xtPh-ndcOxRM7fPYYxIIRg?pwd=crsf) (key crsf) |
| CrossFormer++-H | the README gives the ++-L link again (probably a copy error) |

**CrossFormer-T/S/B/L in one command** (network needed once; the file is cached in `$CROSSFORMER_CACHE` or
`~/.cache/crossformer`, verified by loading it as that variant, and reused offline afterwards):

```bash
bash scripts/run_app.sh --official crossformer_s      # or: python -m crossformer fetch crossformer_s
```

or choose **Official ImageNet weights (download once)** under *Model* in the sidebar. Nothing is downloaded unless
you ask. **CrossFormer++** weights are on Baidu only (links above, key `crsf`): download the file by hand, then
choose **Upload a checkpoint…** in the sidebar, or start the app with it:

```bash
streamlit run app.py -- --checkpoint path/to/crossformer-s.pth
# or
CROSSFORMER_CHECKPOINT=path/to/crossformer-s.pth streamlit run app.py
```

The variant (T/S/B/L, ++-S/B/L/H) is read off the tensors; `.pth` files of both official code versions,
`.safetensors` and `.npz` load. Pickled `.pth` files are opened with a restricted unpickler that rebuilds
only tensors and plain containers: a file that tries to run code is refused. Use the **official eval
transform** (resize 256, centre-crop 224) for ImageNet predictions; class names come from
`assets/imagenet_classes.json` (the sorted-synset order of the official evaluation).
""")

st.subheader("Cite")
st.code("""@inproceedings{wang2022crossformer,
  title     = {CrossFormer: A Versatile Vision Transformer Hinging on Cross-scale Attention},
  author    = {Wang, Wenxiao and Yao, Lu and Chen, Long and Lin, Binbin and Cai, Deng and He, Xiaofei and Liu, Wei},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2022}
}
@article{wang2023crossformerpp,
  title   = {CrossFormer++: A Versatile Vision Transformer Hinging on Cross-scale Attention},
  author  = {Wang, Wenxiao and Chen, Wei and Qiu, Qibo and Chen, Long and Wu, Boxi and Lin, Binbin and He, Xiaofei and Liu, Wei},
  journal = {IEEE Transactions on Pattern Analysis and Machine Intelligence},
  year    = {2023}
}""", language="bibtex")
st.caption("Official code: github.com/cheerss/CrossFormer. This app: pages read one cached forward trace; "
           "nothing leaves your machine.")
