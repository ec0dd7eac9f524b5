"""Are the heavy actions' estimates right? Estimate, measured time and their ratio per action, model and size.

For each model (``--models``, default the demo model and CrossFormer-S with random weights) and input
(``--sizes``, default 224×224 and 512×768), the cost model (:mod:`pages.common.estimates`) is calibrated exactly as
the app calibrates it (``calibrate.measure`` once per model for the engine the app picks, and once for the NumPy
reference: the same timings price every input size), then every heavy action the pages offer is estimated with the
pages' own cost functions and run with the pages' own code:

* head-importance scan (Interventions: ``crossformer.interventions.head_importance``, batch 16);
* integrated gradients at the page's default step count, Grad-CAM, occlusion with 32-px squares (Attributions:
  ``heavy_runs.attribution``);
* deletion / insertion over three stored maps, 32 steps, 16-px patches (the faithfulness comparison's curves);
* the NumPy reference (``heavy_runs.reference_run``; ``--no-numpy`` skips it).

Prints ``estimate s · measured s · estimate / measured`` and the load average before each model and size; the goal
is every ratio within [0.5, 2]. CrossFormer-S has random weights (the timings do not depend on the weights).

    .venv/bin/python benchmarks/bench_estimates.py [--models crossformer_demo crossformer_s] [--sizes 224x224 512x768]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

GOAL = (0.5, 2.0)


def _bundle(name: str):
    """A :class:`pages.common.models.ModelBundle` as the app builds one (demo: the shipped weights)."""
    import crossformer
    from pages.common.models import ModelBundle

    torch.manual_seed(0)
    demo = ROOT / "assets" / "crossformer_demo.safetensors"
    if name == "crossformer_demo" and demo.exists():
        model, _ = crossformer.load_checkpoint(demo)
    else:
        model = crossformer.create_model(name)
    model.eval()
    n = model.cfg.num_classes
    return ModelBundle(name, model, name, name, "", tuple(f"class {i}" for i in range(n)), "cpu", "bench",
                       name == "crossformer_demo", sum(p.numel() for p in model.parameters()))


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def timings_of(bundle, numpy_ref: bool) -> tuple[object, object | None]:
    """The app's timings of ``bundle`` for its torch engine and (``numpy_ref``) the NumPy reference."""
    import os

    from crossformer import precision
    from pages.common import calibrate, model_loaders

    engine = precision.resolve("auto", bundle.device)
    cal, t_cal = _timed(lambda: calibrate.measure(bundle, engine))
    ncal, t_ncal = _timed(lambda: calibrate.measure(bundle, "numpy", weights=model_loaders.numpy_weights(
        bundle.model_id, _bundle=bundle))) if numpy_ref else (None, 0.0)
    print(f"\n{bundle.model_id}: calibration {engine} {t_cal:.1f} s, NumPy {t_ncal:.1f} s (load average "
          f"{os.getloadavg()[0]:.2f}); one-image pass at "
          + ", ".join(f"{f / 1e9:.2f} GFLOPs {t * 1e3:.0f} ms" for f, t in cal.points)
          + ("" if ncal is None else "; NumPy " + ", ".join(f"{t * 1e3:.0f} ms" for _, t in ncal.points)))
    return cal, ncal


def bench(bundle, hw: tuple[int, int], cal, ncal, skip: set[str] = frozenset()) -> list[tuple[str, float, float]]:
    """``(action, estimate s, measured s)`` for every heavy action on one model and input size, priced by the
    torch timings ``cal`` and (unless ``None``) the NumPy timings ``ncal``."""
    import os

    from crossformer import precision
    from crossformer.faithfulness import deletion_insertion
    from crossformer.interventions import head_importance
    from pages.common import estimates, heavy_runs, traces
    from crossformer import attribution

    name = bundle.model_id
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    x = traces.model_input(bundle, pixels)
    engine = precision.resolve("auto", bundle.device)
    flops = estimates.forward_flops(bundle.cfg, hw)
    with torch.inference_mode():
        target = int(bundle.model(x).argmax())
    batch = attribution.batch_for(hw)
    rows = []

    def run(label: str, cost: estimates.Cost, fn, calibration=cal) -> object:
        est = estimates.estimate(cost, flops, calibration).seconds
        if any(label.lower().startswith(k) for k in skip):
            print(f"  {label:<34}{est:>10.2f}{'skipped':>12}", flush=True)
            return None
        out, t = _timed(fn)
        rows.append((label, est, t))
        print(f"  {label:<34}{est:>10.2f}{t:>12.2f}{est / t:>10.2f}", flush=True)
        return out

    at = cal.at(flops)
    print(f"\n{name} at {hw[0]}×{hw[1]} ({engine}; priced at {at.overhead_s * 1e3:.1f} ms per call, "
          f"{at.per_flop_s * 1e12:.1f} ps per FLOP; load average {os.getloadavg()[0]:.2f})")
    print(f"  {'action':<34}{'estimate':>10}{'measured':>12}{'ratio':>10}")
    n_heads = sum(h * d for h, d in zip(bundle.cfg.num_heads, bundle.cfg.depths))
    run(f"head scan ({n_heads} heads)", estimates.scan_cost(n_heads, 16),
        lambda: head_importance(bundle.model, x, target, kind="zero"))
    steps = next((n for n in (32, 24, 16, 12, 8)
                  if estimates.estimate(estimates.ig_cost(n, min(n, batch)), flops, cal).seconds <= 20.0), 4)
    maps = {}
    maps["ig"] = run(f"integrated gradients ({steps} steps)", estimates.ig_cost(steps, min(steps, batch)),
                     lambda: heavy_runs.attribution("ig", bundle, pixels, target, steps))
    maps["gradcam"] = run("Grad-CAM", estimates.gradcam_cost(),
                          lambda: heavy_runs.attribution("gradcam", bundle, pixels, target, len(bundle.cfg.depths) - 1))
    maps["occlusion"] = run("occlusion (32 px)",
                            estimates.occlusion_cost(attribution.occlusion_total(hw, 32, 32), batch),
                            lambda: heavy_runs.attribution("occlusion", bundle, pixels, target, 32))
    gh, gw = -(-hw[0] // 16), -(-hw[1] // 16)
    steps_f = min(gh * gw, 32)
    curve_images = 2 + 4 * (steps_f - 1)

    def curves() -> None:
        for amap in (m for m in maps.values() if m is not None):
            with bundle.lock:
                deletion_insertion(bundle.model, x, amap.values, target, patch=16, steps=steps_f)

    n_maps = sum(m is not None for m in maps.values())
    run(f"deletion/insertion ({n_maps * curve_images} images)", estimates.forward_cost(n_maps * curve_images, 16),
        curves)
    if ncal is not None:
        trace = bundle.model.forward_trace(x)
        n_blocks = sum(bundle.cfg.depths)
        run("NumPy reference", estimates.reference_cost(n_blocks),
            lambda: heavy_runs.reference_run(name, bundle, pixels, trace), calibration=ncal)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["crossformer_demo", "crossformer_s"])
    ap.add_argument("--sizes", nargs="+", default=["224x224", "512x768"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-numpy", action="store_true", help="skip the NumPy reference")
    ap.add_argument("--skip", nargs="*", default=[], metavar="MODEL:HxW:ACTION",
                    help="leave out an action (first word: head, integrated, grad-cam, occlusion, deletion) of one "
                         "model and size, e.g. crossformer_s:512x768:deletion (said in the output)")
    args = ap.parse_args(argv)
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)     # "no runtime found": the caches work without one
    torch.set_num_threads(args.threads)
    out = []
    for name in args.models:
        bundle = _bundle(name)
        cal, ncal = timings_of(bundle, not args.no_numpy)
        for size in args.sizes:
            h, w = (int(v) for v in size.lower().split("x"))
            out += bench(bundle, (h, w), cal, ncal, {a.split(":")[2].lower() for a in args.skip
                                                     if a.split(":")[:2] == [name, size.lower()]})
    ratios = [e / m for _, e, m in out]
    bad = [(a, e / m) for a, e, m in out if not GOAL[0] <= e / m <= GOAL[1]]
    print(f"\nestimate / measured over {len(out)} actions: min {min(ratios):.2f}, max {max(ratios):.2f}; "
          f"goal within [{GOAL[0]}, {GOAL[1]}]: {'met' if not bad else f'missed by {len(bad)}'}")
    return 0


if __name__ == "__main__":
    import cpu_steal

    sys.exit(cpu_steal.run(main))
