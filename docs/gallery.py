"""Render every ``viz`` builder for sample images to PNG files, to look at all of them at once.

    .venv/bin/python docs/gallery.py                 # → docs/gallery/*.png (+ README.md listing them)
    .venv/bin/python docs/gallery.py --only demo     # one case; --scale 1 for smaller files
    .venv/bin/python docs/gallery.py --match attention   # only figures whose file name contains "attention"

Cases:
* ``demo``: ``crossformer_demo`` at 224×224 on a Navon figure ("a triangle of squares"), with the trained
  weights from ``assets/crossformer_demo.safetensors`` when that file exists, random weights otherwise.
* ``s``: ``crossformer_s`` with random weights on a non-square 200×264 photo (scikit-image's CC0 "chelsea"),
  so SDA/LDA padding, non-square LDA intervals and many heads all show.

PNG export needs kaleido and chromium (``apt-get install chromium``); the script says so and stops if they
are missing. Prints one line per figure with its build and export time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import crossformer  # noqa: E402
import viz  # noqa: E402
from crossformer import attribution, reference  # noqa: E402
from crossformer.analysis import heads, rollout  # noqa: E402
from viz import attention_figures as att  # noqa: E402
from viz import dpb_figures, embedding_figures, export, geometry_figures  # noqa: E402
from viz.attribution_figures import attribution_overlay_figure  # noqa: E402
from viz.diagnostics_figures import diagnostics_figure  # noqa: E402
from viz.parity_figures import group_errors, parity_figure  # noqa: E402

OUT = ROOT / "docs" / "gallery"
DEMO_WEIGHTS = ROOT / "assets" / "crossformer_demo.safetensors"


# ---- inputs -------------------------------------------------------------------------------------------
def navon_image(size: tuple[int, int]) -> np.ndarray:
    from crossformer.navon import render_navon
    return render_navon("triangle", "square", size, seed=3)


def photo_image(size: tuple[int, int]) -> np.ndarray:
    try:
        from PIL import Image
        from skimage import data
    except ImportError:  # scikit-image is a dev dependency
        return navon_image(size)
    return np.asarray(Image.fromarray(data.chelsea()).resize((size[1], size[0]), Image.BICUBIC)).copy()


def to_input(image: np.ndarray, cfg) -> torch.Tensor:
    """``uint8 (H, W, 3)`` → normalised ``(1, 3, H, W)`` float32."""
    from crossformer.images import normalise
    return torch.from_numpy(normalise(image, cfg.mean, cfg.std))[None]


def load_case(name: str):
    if name == "demo":
        if DEMO_WEIGHTS.exists():
            model, info = crossformer.load_checkpoint(DEMO_WEIGHTS)
            weights = f"trained weights ({DEMO_WEIGHTS.name})"
        else:
            torch.manual_seed(0)
            model, weights = crossformer.create_model("crossformer_demo"), "random weights"
        size, image = (224, 224), navon_image((224, 224))
    else:
        torch.manual_seed(0)
        model, weights = crossformer.create_model("crossformer_s"), "random weights"
        size, image = (200, 264), photo_image((200, 264))
    return model.eval(), image, weights


# ---- rendering ------------------------------------------------------------------------------------------
class Gallery:
    def __init__(self, out: Path, scale: float, match: str | None = None) -> None:
        self.out, self.scale, self.match = out, scale, match
        self.rows: list[tuple[str, str]] = []

    def wants(self, name: str) -> bool:
        return self.match is None or self.match in name

    def save(self, name: str, what: str, build) -> None:
        if not self.wants(name):
            return
        t0 = time.perf_counter()
        fig = build()
        t1 = time.perf_counter()
        path = self.out / f"{name}.png"
        path.write_bytes(export.figure_to_png(fig, scale=self.scale))
        t2 = time.perf_counter()
        self.rows.append((path.name, what))
        print(f"{path.name:44s} build {t1 - t0:6.2f} s   png {t2 - t1:5.2f} s")


def render_case(g: Gallery, case: str) -> None:
    model, image, weights = load_case(case)
    cfg = model.cfg
    x = to_input(image, cfg)
    t0 = time.perf_counter()
    trace = model.forward_trace(x)
    print(f"[{case}] {weights}, input {tuple(x.shape[-2:])}, trace {time.perf_counter() - t0:.2f} s")
    target = int(trace.logits[0].argmax())
    p = f"{case}_"
    tag = "crossformer_demo" if case == "demo" else "crossformer_s"

    # 1. groups
    for i, hw in enumerate(trace.stage_hw):
        q = (hw[0] // 3, hw[1] // 2)
        for j, blk in enumerate(trace.blocks[i][:2]):
            g.save(f"{p}groups_s{i}_b{j}_{blk.kind}", f"{tag} · stage {i} block {j} groups, query {q}",
                   lambda blk=blk, i=i, q=q: geometry_figures.group_partition_figure(image, blk.layout, i, query=q))
        if len(trace.blocks[i]) > 1:
            g.save(f"{p}sda_vs_lda_s{i}", f"{tag} · SDA window vs LDA group of token {q}, stage {i}",
                   lambda i=i, q=q: geometry_figures.sda_lda_figure(image, trace.block(i, 0).layout,
                                                                    trace.block(i, 1).layout, i, q))
    # 2. cross-scale embedding
    emb = trace.embedding
    g.save(f"{p}cel_energy", f"{tag} · CEL energy per kernel", lambda: embedding_figures.kernel_energy_figure(emb, image))
    for k in (0, len(emb.kernels) - 1):
        g.save(f"{p}cel_top_channels_k{emb.kernels[k]}", f"{tag} · most active channels of the {emb.kernels[k]}×"
               f"{emb.kernels[k]} kernel", lambda k=k: embedding_figures.top_channels_figure(emb, k, 8))
    h0, w0 = trace.stage_hw[0]
    g.save(f"{p}cel_footprints", f"{tag} · CEL kernel footprints to scale",
           lambda: embedding_figures.kernel_footprints_figure(image, emb.kernels, emb.stride, emb.paddings,
                                                              (h0 // 3, w0 // 2)))
    for i, m in enumerate(trace.merges):
        g.save(f"{p}merge{i}_energy", f"{tag} · merge after stage {i}: energy per kernel",
               lambda m=m: embedding_figures.kernel_energy_figure(m, image))
    m0 = trace.merges[0]
    h1, w1 = m0.output_hw
    g.save(f"{p}merge0_footprints", f"{tag} · merge 0 kernel footprints (in 4-px tokens)",
           lambda: embedding_figures.kernel_footprints_figure(image, m0.kernels, m0.stride, m0.paddings,
                                                              (h1 // 3, w1 // 2), scale=4))
    # 3. dynamic position bias
    b00 = trace.block(0, 0)
    G0 = b00.group_size
    g.save(f"{p}dpb_surface_s0_b0", f"{tag} · DPB surface, stage 0 block 0 head 0",
           lambda: dpb_figures.dpb_surface_figure(b00.dpb_table, G0, 0))
    b2 = trace.block(2, 0)
    g.save(f"{p}dpb_heatmaps_s2_b0", f"{tag} · DPB per head, stage 2 block 0",
           lambda: dpb_figures.dpb_heatmap_figure(b2.dpb_table, b2.group_size))
    g.save(f"{p}bias_matrix_s2_b0", f"{tag} · expanded G²×G² bias, stage 2 block 0 head 0",
           lambda: dpb_figures.bias_matrix_figure(b2.dpb_bias, 0, b2.group_size))
    tables = {G: model.dpb_table(2, 0, G).numpy() for G in (3, 5, 7, 9, 13, 21)}
    g.save(f"{p}dpb_sizes_s2_b0", f"{tag} · one DPB MLP at G = 3…21, stage 2 block 0 head 0",
           lambda: dpb_figures.dpb_sizes_figure(tables, 0, trained_group_size=b2.group_size))
    # 4. attention
    for i, j in ((0, 0), (0, 1), (1, 1)):
        blk = trace.block(i, j)
        hw = trace.stage_hw[i]
        q = (hw[0] // 3, hw[1] // 2)
        g.save(f"{p}attention_s{i}_b{j}_mean", f"{tag} · attention of token {q}, {blk.name}, head mean",
               lambda blk=blk, q=q: att.query_attention_figure(image, blk, q))
    blk = trace.block(1, 1)
    hw = trace.stage_hw[1]
    q1 = (hw[0] // 3, hw[1] // 2)
    g.save(f"{p}attention_s1_b1_head0", f"{tag} · attention of token {q1}, s1_b1, head 0",
           lambda: att.query_attention_figure(image, blk, q1, head=0))
    g.save(f"{p}head_grid_s1_b0", f"{tag} · every head, s1_b0 (SDA), zoomed on the window",
           lambda: att.head_grid_figure(image, trace.block(1, 0), q1, include_mean=True))
    g.save(f"{p}head_grid_s1_b1", f"{tag} · every head, s1_b1 (LDA)",
           lambda: att.head_grid_figure(image, blk, q1, include_mean=True))
    gq = geometry_figures.query_group_member(blk.layout, q1)[0]
    g.save(f"{p}group_matrix_s1_b1", f"{tag} · attention matrix of the query's group, s1_b1 head 0",
           lambda: att.group_matrix_figure(blk, gq, 0))
    partly = [(b, int(np.nonzero(b.layout.key_padding.any(1) & ~b.layout.key_padding.all(1))[0][-1]))
              for b in trace.all_blocks() if (b.layout.key_padding.any(1) & ~b.layout.key_padding.all(1)).any()]
    if partly:
        pb, pg = partly[0]
        g.save(f"{p}group_matrix_padded", f"{tag} · attention matrix of a partly padded group ({pb.name}, "
               f"group {pg}), head mean", lambda: att.group_matrix_figure(pb, pg, None))
    g.save(f"{p}bias_content_s1_b1", f"{tag} · content-only vs position-only vs actual, s1_b1 head 0",
           lambda: att.bias_content_split_figure(blk, q1, 0))
    g.save(f"{p}bias_content_s0_b0", f"{tag} · content-only vs position-only vs actual, s0_b0 head mean",
           lambda: att.bias_content_split_figure(b00, (h0 // 3, w0 // 2), None))
    g.save(f"{p}rollout", f"{tag} · heuristic group-aware attention rollout",
           lambda: att.rollout_figure(image, rollout.attention_rollout(trace)))
    # 5. attributions
    names = cfg.class_names or ()
    if not names and case == "demo":
        from crossformer.navon import CLASS_NAMES
        names = CLASS_NAMES
    label = names[target] if target < len(names) else f"class {target}"
    if g.wants(f"{p}integrated_gradients"):
        t = time.perf_counter()
        ig, delta = attribution.integrated_gradients(model, x, target, steps=32, internal_batch_size=8)
        print(f"  integrated gradients {time.perf_counter() - t:.2f} s, delta {delta:.2e}")
    g.save(f"{p}integrated_gradients", f"{tag} · Integrated Gradients for the predicted class",
           lambda: attribution_overlay_figure(image, ig, f"Integrated Gradients · “{label}”", signed=True,
                                              colorbar_title="attribution", clip_percentile=99.5,
                                              subtitle=f"32 steps from a baseline of zeros after normalisation (the "
                                                       f"mean colour) · convergence delta {delta:.2e}", side_by_side=True))
    for i in range(len(trace.stage_hw)):
        cam = attribution.grad_cam(model, x, target, i) if g.wants(f"{p}grad_cam_s{i}") else None
        g.save(f"{p}grad_cam_s{i}", f"{tag} · Grad-CAM at the end of stage {i}",
               lambda cam=cam, i=i: attribution_overlay_figure(
                   image, cam, f"Grad-CAM at the end of stage {i} · “{label}”", colorbar_title="Grad-CAM",
                   subtitle=f"captum LayerGradCam on model.layers[{i}].feature_map · {4 * 2 ** i} px cells"))
    if g.wants(f"{p}occlusion"):
        t = time.perf_counter()
        occ = attribution.occlusion(model, x, target, window=32, stride=16)
        print(f"  occlusion {time.perf_counter() - t:.2f} s")
    g.save(f"{p}occlusion", f"{tag} · Occlusion (32-px windows, stride 16)",
           lambda: attribution_overlay_figure(image, occ, f"Occlusion · “{label}”", signed=True,
                                              colorbar_title="logit drop",
                                              subtitle="logit drop when a 32×32 patch is zeroed, stride 16"))
    # 6. diagnostics
    g.save(f"{p}diagnostics", f"{tag} · entropy, distance, DPB share per head; residual RMS per block",
           lambda: diagnostics_figure(heads.trace_head_stats(trace)))
    # 7. parity against the NumPy reference
    if g.wants(f"{p}parity"):
        t = time.perf_counter()
        sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        _, ref_flat = reference.forward(sd, x.numpy(), cfg)
        errors = group_errors({k: v for k, v in reference.compare(trace.flat(), ref_flat).items()
                               if not k.endswith(".members")})
        print(f"  numpy reference {time.perf_counter() - t:.2f} s")
    g.save(f"{p}parity", f"{tag} · max |PyTorch − NumPy| per block and field",
           lambda: parity_figure(errors))


def write_readme(g: Gallery) -> None:
    lines = ["# Gallery", "",
             "PNG renderings of every `viz/` figure builder, made by `docs/gallery.py` (the PNGs are not "
             "committed: run `.venv/bin/python docs/gallery.py` to make them; it needs kaleido and chromium).",
             "", "Cases: `demo_*` — `crossformer_demo` at 224×224 on a Navon figure (trained weights from "
             "`assets/crossformer_demo.safetensors` when present, else random); `s_*` — `crossformer_s` with "
             "random weights on a non-square 200×264 photo (scikit-image `chelsea`, CC0).", "",
             "| file | what it shows |", "|---|---|"]
    lines += [f"| `{f}` | {w} |" for f, w in g.rows]
    (g.out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--only", choices=("demo", "s"), default=None)
    ap.add_argument("--scale", type=float, default=1.5, help="PNG scale factor (layout px → image px)")
    ap.add_argument("--match", default=None, help="only figures whose file name contains this text")
    args = ap.parse_args(argv)
    if not viz.png_available():
        print("PNG export unavailable: install kaleido and chromium (apt-get install chromium)", file=sys.stderr)
        return 1
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    g = Gallery(args.out, args.scale, args.match)
    t = time.perf_counter()
    for case in ("demo", "s"):
        if args.only in (None, case):
            render_case(g, case)
    if args.only is None and args.match is None and args.out == OUT:
        write_readme(g)
    print(f"{len(g.rows)} figures in {time.perf_counter() - t:.1f} s → {args.out}")
    export.close_exporter()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
