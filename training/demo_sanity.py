"""Does the demo model look at what the task needs? Measurements for the model card (nothing asserted).

    .venv/bin/python training/demo_sanity.py                 # 16 figures at 224 × 224
    .venv/bin/python training/demo_sanity.py --n 4 --json /tmp/sanity.json

1. **Cross-scale embedding.** For every CEL kernel (4, 8, 16, 32 px) and every channel of it, two
   correlations over the 56 × 56 token grid, from the raw conv outputs ``trace.embedding.per_kernel``:

   * *element score*: |corr(response, ink)| over the tokens inside the figure's lattice region, where
     ``ink`` is the fraction of the token's 4 × 4 pixels covered by local elements. Inside the region the
     only thing that varies is element vs gap, so this measures how much a channel follows the small
     elements.
   * *outline score*: |corr(blurred response, blurred silhouette)| over all tokens, both box-blurred over
     one lattice pitch (so single elements and gaps average out), where the silhouette is 1 on the
     global shape's lattice cells. This measures how much a channel follows the global shape's outline.

   Reported per kernel: the mean of each score over channels and images, and how many channels have a
   higher element than outline score.

2. **Attention distance.** For every block, the attention-weighted mean distance between query and key
   (``trace.block(i, j).attention`` over ``layout.positions`` × the stage stride ``4·2^i`` px), per head,
   averaged over the real (unpadded) queries; next to it the distance uniform attention over the same
   groups would give. For the figure's own tokens also the share of attention mass that lands on other
   figure tokens more than two element pitches away ("across the global shape").

Prints Markdown tables; ``--json`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from scipy.ndimage import uniform_filter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import crossformer  # noqa: E402
from crossformer import navon  # noqa: E402
from crossformer.images import normalise  # noqa: E402

SANITY_SEED = 777


def pool(a: np.ndarray, s: int) -> np.ndarray:
    """Average ``(H, W)`` over ``s × s`` cells → ``(H/s, W/s)`` (floor)."""
    H, W = a.shape[0] // s * s, a.shape[1] // s * s
    return a[:H, :W].reshape(H // s, s, W // s, s).mean(axis=(1, 3))


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float(abs((a * b).sum()) / den) if den > 0 else 0.0


def cel_scores(trace, layers: list[dict], params: list[navon.NavonParams]) -> list[dict]:
    """Element and outline scores per CEL kernel (see the module docstring)."""
    emb = trace.embedding
    out = []
    for i, k in enumerate(emb.kernels):
        resp = emb.per_kernel[i]                                      # (B, c_k, Ho, Wo)
        el, ol, prefers = [], [], 0
        for b, (lay, p) in enumerate(zip(layers, params)):
            ink = pool(lay["ink"], emb.stride)                        # (Ho, Wo)
            region = pool(lay["region"], emb.stride)
            win = max(3, int(round(p.pitch / emb.stride)) | 1)        # one pitch, odd, in tokens
            sil = uniform_filter(region, win, mode="nearest")
            inside = region > 0.99
            for c in range(resp.shape[1]):
                r = resp[b, c]
                e = corr(r[inside], ink[inside])
                o = corr(uniform_filter(r, win, mode="nearest"), sil)
                el.append(e)
                ol.append(o)
                prefers += e > o
        out.append({"kernel": k, "channels": int(resp.shape[1]), "element_score": float(np.mean(el)),
                    "outline_score": float(np.mean(ol)), "channels_preferring_elements": prefers / len(layers)})
    return out


def attention_distances(trace, layers: list[dict], params: list[navon.NavonParams]) -> list[dict]:
    """Attention-weighted query–key distance (px) per block and head, with the uniform baseline."""
    rows = []
    for bt in trace.all_blocks():
        lay = bt.layout
        s = trace.embedding.stride * 2 ** bt.stage                             # stage stride, px
        pos = lay.positions.astype(np.float64)                                  # (nG, N, 2)
        dist = np.linalg.norm(pos[:, :, None, :] - pos[:, None, :, :], axis=-1) * s   # (nG, N, N)
        real = lay.members >= 0                                                 # (nG, N)
        attn = bt.attention.astype(np.float64)                                  # (B, nG, heads, N, N)
        w_q = real[None, :, None, :]                                            # real queries
        mean_d = (attn * dist[None, :, None]).sum(-1)                           # (B, nG, heads, N)
        per_head = (mean_d * w_q).sum(axis=(0, 1, 3)) / (w_q.sum() * attn.shape[0])
        keys = real[:, None, :].astype(np.float64)                              # uniform over real keys
        uni = ((dist * keys).sum(-1) / keys.sum(-1))[real].mean()
        # share of attention from figure queries to figure keys more than two pitches away
        H, W = trace.stage_hw[bt.stage]
        far = []
        for b, (lay_b, p) in enumerate(zip(layers, params)):
            region = pool(lay_b["region"], s)[:H, :W].reshape(-1) > 0.5         # (L,)
            members = lay.members
            on_fig = np.where(members >= 0, region[np.maximum(members, 0)], False)   # (nG, N)
            mask = on_fig[:, None, :] & (dist > 2 * p.pitch)                    # keys: figure, far
            q = on_fig                                                          # queries on the figure
            if q.sum() == 0:
                continue
            mass = (bt.attention[b] * mask[:, None]).sum(-1)                    # (nG, heads, N)
            far.append((mass * q[:, None]).sum(axis=(0, 2)) / q.sum())
        rows.append({"block": bt.name, "kind": lay.kind, "group_size": lay.group_size,
                     "interval": list(lay.interval), "feature_hw": list(lay.feature_hw),
                     "mean_distance_px": [float(v) for v in per_head], "uniform_distance_px": float(uni),
                     "far_figure_mass": [float(v) for v in np.mean(far, axis=0)] if far else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=str(ROOT / "assets" / "crossformer_demo.safetensors"))
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=SANITY_SEED)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    model, _ = crossformer.load_checkpoint(args.weights)
    rng = np.random.default_rng(args.seed)
    size = (args.size, args.size)
    params, images, layers = [], [], []
    for k in range(args.n):
        p = navon.sample_params(rng, size, navon.SHAPES[k % 5], navon.SHAPES[(k // 5 + k) % 5])
        img, lay = navon.render(p, size, layers=True)
        params.append(p)
        images.append(img)
        layers.append(lay)
    x = torch.from_numpy(normalise(np.stack(images), model.cfg.mean, model.cfg.std))
    trace = model.forward_trace(x)
    correct = int((trace.logits.argmax(1) == np.array([p.label for p in params])).sum())

    cel = cel_scores(trace, layers, params)
    att = attention_distances(trace, layers, params)
    pitch = float(np.mean([p.pitch for p in params]))
    diam = float(np.mean([2 * p.global_radius for p in params]))
    print(f"{args.n} figures at {size[0]}×{size[1]} (seed {args.seed}), {correct}/{args.n} classified "
          f"correctly; mean element pitch {pitch:.1f} px, mean global-shape diameter {diam:.0f} px.\n")
    print("| CEL kernel | channels | element score | outline score | channels preferring elements |")
    print("|---|---|---|---|---|")
    for r in cel:
        print(f"| {r['kernel']}×{r['kernel']} | {r['channels']} | {r['element_score']:.2f} | "
              f"{r['outline_score']:.2f} | {r['channels_preferring_elements']:.1f} of {r['channels']} |")
    print("\n| block | kind | G | I | map | mean attention distance per head (px) | uniform (px) | "
          "far-figure mass per head |")
    print("|---|---|---|---|---|---|---|---|")
    for r in att:
        far = ", ".join(f"{v:.2f}" for v in r["far_figure_mass"]) if r["far_figure_mass"] else "–"
        print(f"| {r['block']} | {r['kind'].upper()} | {r['group_size']} | {r['interval'][0]} | "
              f"{r['feature_hw'][0]}×{r['feature_hw'][1]} | "
              f"{', '.join(f'{v:.0f}' for v in r['mean_distance_px'])} | {r['uniform_distance_px']:.0f} | {far} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": args.n, "seed": args.seed, "correct": correct,
                                               "pitch_px": pitch, "diameter_px": diam, "cel": cel,
                                               "attention": att}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
