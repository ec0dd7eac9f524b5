"""Make the README's dataset-statistics figure with the real CLI: held-out Navon figures, shipped demo weights.

    .venv/bin/python docs/stats_figure.py [--n 200] [--out docs/screenshots/stats_summary_demo.png]

Writes ``--n`` held-out figures (``crossformer.navon.navon_batch`` with the evaluation seed of
``training/eval_demo.py``, 224²) as PNGs to a temporary folder, then runs
``python -m crossformer.stats --checkpoint assets/crossformer_demo.safetensors --images DIR --out CSV --summary PNG``
in a subprocess, exactly as a user would. The PNG needs kaleido and chromium (``TESTING.md``), and the figure
the package installed (``scripts/setup.sh``: its writer is an entry point, ``docs/package.md``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crossformer import navon  # noqa: E402
from training.eval_demo import EVAL_SEED  # noqa: E402  (the held-out seed: never a training stream)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots" / "stats_summary_demo.png"))
    ap.add_argument("--csv", default=None, help="keep the CSV here (default: a temporary file)")
    args = ap.parse_args(argv)

    images, _labels = navon.navon_batch(EVAL_SEED, args.n, (224, 224))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "navon"
        folder.mkdir()
        for k, img in enumerate(images):
            Image.fromarray(img).save(folder / f"{k:04d}.png")
        csv = args.csv or str(Path(tmp) / "stats.csv")
        cmd = [sys.executable, "-m", "crossformer.stats", "--checkpoint",
               str(ROOT / "assets" / "crossformer_demo.safetensors"), "--images", str(folder),
               "--size", "224", "--batch", "32", "--out", csv, "--summary", args.out]
        return subprocess.run(cmd, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
