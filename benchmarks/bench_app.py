"""Benchmark the Streamlit app headlessly (AppTest): how fast a new image and a widget change are.

Prints
* start-up: the first run of the app (model load, imports),
* new image → all pages' data ready: upload an image the app has never seen, then open every page once
  (forward trace + every page's figures built), per image and the median over several images,
* widget rerun: for the main widgets of each page, the time of one rerun after changing it (median and
  max of several changes), plus a plain rerun of each page.

Goals on a CPU with the demo model: new image ≤ 2 s, widget rerun ≤ 0.3 s (ratios printed). AppTest times
include its own overhead (script thread start, tree parsing: ~10–20 ms per run), so they slightly
overstate what a browser user waits. Run from the repository root:

    .venv/bin/python benchmarks/bench_app.py [--images 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from pages.common import navigation  # noqa: E402

NEW_IMAGE_GOAL_S = 2.0
WIDGET_GOAL_S = 0.3

PAGES = [spec.path for spec in navigation.PAGES]     # the app's own page list, in lesson order

#: page → [(widget kind, key, values cycled through)]. Selectors alternate (their figures are cached after
#: the first change); sliders move to a new value every time (every change rebuilds the figures it drives).
FRESH = tuple(range(3, 40, 3))
WIDGETS = {
    "pages/embedding.py": [("selectbox", "emb_layer", (1, 0)), ("radio", "emb_kernel", (1, 0)),
                           ("slider", "emb_qrow", FRESH)],
    "pages/groups.py": [("selectbox", "grp_stage", (1, 0)), ("radio", "grp_block", (0, 1)),
                        ("slider", "grp_qrow", FRESH)],
    "pages/position_bias.py": [("selectbox", "dpb_block", (1, 0)), ("selectbox", "dpb_head", (1, 0)),
                               ("slider", "dpb_g", tuple(range(3, 17)))],
    "pages/attention.py": [("selectbox", "attn_block", (0, 1)), ("selectbox", "attn_head", (1, None)),
                           ("slider", "attn_qrow", FRESH), ("radio", "attn_view", ("matrix", "heads"))],
    "pages/attributions.py": [("radio", "attr_method", ("gradcam", "ig"))],
}


def photo(seed: int, h: int = 240, w: int = 320) -> bytes:
    """A smooth random picture the app has not seen (PNG bytes)."""
    import app_samples as S
    rng = np.random.default_rng(seed)
    small = (rng.random((h // 16, w // 16, 3)) * 255).astype(np.uint8)
    from PIL import Image
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))
    return S.png(img)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def check(at) -> None:
    if at.exception:
        raise RuntimeError(at.exception[0].value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=3, help="new images to time")
    ap.add_argument("--repeats", type=int, default=5, help="changes per widget")
    args = ap.parse_args()

    import pytest
    import torch
    import app_samples as S

    torch.set_num_threads(min(4, os.cpu_count() or 1))
    mp = pytest.MonkeyPatch()
    S.run_like_the_server(mp)
    load0 = os.getloadavg()
    print(f"CPU: {os.cpu_count()} cores, torch {torch.get_num_threads()} threads, load average "
          f"{load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f} (1/5/15 min)")

    at = S.new_app(size=None)
    t = timed(at.run)
    check(at)
    model = next(c.value for c in at.sidebar.caption if c.value.startswith("**"))
    print(f"model: {model.split('·')[0].strip('* ')}; default preprocessing: {at.session_state['sb_prep']} "
          f"{at.session_state['sb_size'] if 'sb_size' in at.session_state else 224}")
    print(f"start-up (first run: model load + imports): {t:.2f} s")
    for p in PAGES:                                # warm the code paths (imports) once, not timed
        at.switch_page(p).run()
        check(at)

    print("\nnew image → all pages' data ready (upload on Overview, then open each page once)")
    totals, firsts = [], []
    for i in range(args.images):
        at.switch_page(PAGES[0]).run()
        data = photo(1000 + i)                        # the test picture is encoded before the clock starts
        up = timed(lambda: at.file_uploader(key="sb_upload").upload(f"new_{i}.png", data, "image/png").run())
        check(at)
        per_page = [up]
        for p in PAGES[1:]:
            per_page.append(timed(lambda: at.switch_page(p).run()))
            check(at)
        totals.append(sum(per_page))
        firsts.append(up)
        detail = "  ".join(f"{Path(p).stem} {s:.2f}" for p, s in zip(PAGES, per_page))
        print(f"  image {i}: {sum(per_page):.2f} s  ({detail})")
    med = statistics.median(totals)
    print(f"  median: trace ready and Overview shown {statistics.median(firsts):.2f} s; all {len(PAGES)} pages "
          f"drawn {med:.2f} s → {med / NEW_IMAGE_GOAL_S:.2f} × the {NEW_IMAGE_GOAL_S:g} s goal")

    print(f"\nwidget rerun (median / max of {args.repeats} changes; goal {WIDGET_GOAL_S} s)")
    worst = 0.0
    for p in PAGES:
        at.switch_page(p).run()
        check(at)
        plain = [timed(at.run) for _ in range(args.repeats)]
        print(f"  {Path(p).stem:15s} plain rerun{'':12s} {statistics.median(plain):.3f} / {max(plain):.3f} s")
        worst = max(worst, statistics.median(plain))
        for kind, key, values in WIDGETS.get(p, []):
            times = []
            for r in range(args.repeats):
                widget = getattr(at, kind)(key=key)
                v = values[r % len(values)]
                times.append(timed(lambda: widget.set_value(v).run()))
                check(at)
            worst = max(worst, statistics.median(times))
            print(f"  {Path(p).stem:15s} {kind:9s} {key:14s} {statistics.median(times):.3f} / {max(times):.3f} s")
    print(f"  worst median {worst:.3f} s → {worst / WIDGET_GOAL_S:.2f} × the {WIDGET_GOAL_S} s goal")
    load1 = os.getloadavg()
    print(f"\nload average at the end: {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}")
    mp.undo()


if __name__ == "__main__":
    import cpu_steal

    sys.exit(cpu_steal.run(main))
