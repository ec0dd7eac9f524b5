"""Paths and start-up options of the app (no Streamlit).

A checkpoint can be named at start-up with ``streamlit run app.py -- --checkpoint PATH`` or the
environment variable ``CROSSFORMER_CHECKPOINT``; the command line wins.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
SAMPLES_DIR = ASSETS / "samples"
DEMO_WEIGHTS = ASSETS / "crossformer_demo.safetensors"
IMAGENET_CLASSES = ASSETS / "imagenet_classes.json"
CHECKPOINT_ENV = "CROSSFORMER_CHECKPOINT"
SAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")

#: Checkpoint file types offered by the uploader (``load_checkpoint`` sniffs the real format).
CHECKPOINT_TYPES = ("pth", "pt", "bin", "ckpt", "tar", "safetensors", "npz")


def startup_checkpoint(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Path | None:
    """The checkpoint named on the command line (``-- --checkpoint PATH``) or in ``$CROSSFORMER_CHECKPOINT``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--checkpoint", default=None)
    try:
        args, _ = parser.parse_known_args(argv)
    except SystemExit:   # a malformed command line must not stop the app
        args = argparse.Namespace(checkpoint=None)
    value = args.checkpoint or environ.get(CHECKPOINT_ENV) or None
    return Path(value).expanduser() if value else None
