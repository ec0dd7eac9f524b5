"""About: the papers, the released variants, how to get and load the official weights, citations."""

import pandas as pd
import streamlit as st

from crossformer.variants import PP_LAYOUT, VARIANT_RECORDS, Variant
from pages.common import widgets

widgets.page_header("about", (
    "**CrossFormer** (Wang et al., ICLR 2022) is a vision transformer built on *cross-scale attention*: "
    "its cross-scale embedding layers (CEL) mix patches of several sizes into every token, its "
    "long short distance attention alternates short-distance (SDA) and long-distance (LDA) groups so "
    "attention stays cheap yet reaches across the image, and its dynamic position bias (DPB) makes "
    "relative-position bias an MLP that works at any group size. **CrossFormer++** (TPAMI 2023) adds a "
    f"progressive group size (PGS: G = {', '.join(map(str, PP_LAYOUT['group_size']))} with intervals "
    f"I = {', '.join(map(str, PP_LAYOUT['interval']))}) and an activation cooling "
    "layer (ACL) that keeps activations from growing with depth. This app runs a faithful re-implementation "
    "(checkpoints of the official code load strictly) and shows what it computes on your image."))

st.subheader("Released variants (ImageNet-1k, 224×224)")
rows = []
for rec in VARIANT_RECORDS.values():
    cfg, pub = rec.config, rec.published
    rows.append({"variant": rec.label, "name": rec.name, "D": cfg.embed_dim,
                 "depths": "-".join(map(str, cfg.depths)), "heads": "-".join(map(str, cfg.num_heads)),
                 "G": "-".join(map(str, cfg.group_size)),
                 "I": "H/G (v1)" if cfg.interval is None else "-".join(map(str, cfg.interval)),
                 "ACL": "yes" if cfg.use_acl else "–",
                 "params": f"{pub.params_m:.1f} M" if pub else "–", "FLOPs": f"{pub.gflops:.1f} G" if pub else "–",
                 "top-1": f"{pub.top1:.1f} %" if pub else "–"})
# a static table wraps to the page width (a dataframe scrolled its last column, top-1, out of view)
st.table(pd.DataFrame(rows).set_index("variant"))
st.caption("D: channels of stage 0 · depths: blocks per stage · heads: attention heads per stage · G: group side "
           "(tokens) per stage · I: LDA interval per stage (v1: H/G, one LDA group spans the whole map) · ACL: "
           "activation cooling layer · FLOPs at 224×224 · top-1: ImageNet-1k accuracy as published.")
st.caption("The demo model is this project's own small CrossFormer trained on Navon figures (a large shape made "
           "of small shapes), a task that needs both fine detail and global layout.")

st.subheader("Official weights")


def weight_links(rec: Variant) -> str:
    """Markdown links to where a variant's official weights are published."""
    links = [f"[Google Drive]({rec.weights.drive_link})"] if rec.weights else []
    if rec.baidu_url:
        links.append(f"[Baidu]({rec.baidu_url}) (key {rec.baidu_key})")
    return " · ".join(links) + (f" — {rec.weights_note}" if rec.weights_note else "")


st.markdown("| variant | download (links from the official README) |\n|---|---|\n" + "\n".join(
    f"| {rec.title} | {weight_links(rec)} |" for rec in VARIANT_RECORDS.values() if rec.published))
st.markdown("""
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
`.safetensors` and `.npz` load. Pickled `.pth` files are opened with `torch.load(weights_only=True)`, which
rebuilds only tensors and plain containers (a yacs config is read as a plain dict): a file that tries to run
code is refused. Use the **official eval
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
