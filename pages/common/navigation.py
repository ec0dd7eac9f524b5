"""The app's pages, in lesson order (``app.py`` builds ``st.navigation`` from this list)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    """One page: its script, title, Material icon and id (the prefix of its widget keys)."""

    path: str
    title: str
    icon: str
    id: str
    lesson: str   # the lesson-mode instruction for this step


PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/overview.py", "Overview", ":material/home:", "overview",
             "Read the prediction, then the pipeline table: how many tokens each stage has, and how "
             "many groups SDA and LDA cut them into."),
    PageSpec("pages/embedding.py", "Cross-scale embedding", ":material/filter_center_focus:", "emb",
             "Click a spot in the image: the four squares are what the 4/8/16/32-pixel kernels see for that "
             "token. Compare the kernels' energy maps."),
    PageSpec("pages/groups.py", "SDA & LDA groups", ":material/grid_view:", "grp",
             "Pick a stage and click a token: SDA groups it with its neighbours, LDA with tokens "
             "spread over the whole image. Note where padding appears."),
    PageSpec("pages/schemes.py", "Why cross-scale attention?", ":material/compare:", "sch",
             "Click a token and compare one block of each scheme: full attention sees everything at a "
             "quadratic cost, windows see little; then read how far SDA + LDA reach after two blocks."),
    PageSpec("pages/position_bias.py", "Dynamic position bias", ":material/blur_on:", "dpb",
             "Look at the bias as a function of the offset (Δh, Δw), then move the G slider: the same "
             "MLP gives a bias for any group size."),
    PageSpec("pages/attention.py", "Attention", ":material/visibility:", "attn",
             "Click a query token and compare an SDA block with the next LDA block: where does the "
             "query look, and how much of it is content vs position bias?"),
    PageSpec("pages/interventions.py", "Interventions", ":material/science:", "int", "Scan every head: which one, removed alone, costs the top class the most? Then drop the position bias or swap SDA↔LDA in one block and compare the prediction and the next block's attention."),
    PageSpec("pages/attributions.py", "Attributions", ":material/highlight:", "attr",
             "Run integrated gradients, Grad-CAM and occlusion for the top class: which pixels "
             "does the prediction rest on?"),
    PageSpec("pages/reference.py", "NumPy reference", ":material/calculate:", "ref",
             "Run the NumPy reference and check every block agrees to 1e-4; then recompute one "
             "attention weight step by step."),
    PageSpec("pages/dataset_stats.py", "Dataset statistics", ":material/query_stats:", "stats",
             "Press the button to compute the statistics of the shipped samples: which heads are uniform, how "
             "far each block looks, how much the position bias decides — over many images, not one."),
    PageSpec("pages/about.py", "About", ":material/info:", "about",
             "The papers, the released variants and how to load the official weights."),
)


def page(page_id: str) -> PageSpec:
    return next(p for p in PAGES if p.id == page_id)


def next_page(page_id: str) -> PageSpec | None:
    ids = [p.id for p in PAGES]
    i = ids.index(page_id)
    return PAGES[i + 1] if i + 1 < len(PAGES) else None
