"""Per-head attention statistics over many images: the public entry of the statistics modules.

* :func:`head_stats` (:mod:`crossformer.stats_heads`): one row per image × block × head of a batch —
  ``entropy``, ``distance_px``, ``dpb_share``, ``output_rms``, ``acl``, ``uniform_entropy`` — reduced on the
  device during the forward pass (the definitions of :func:`crossformer.analysis.heads.trace_head_stats`).
* :func:`read_csv` (:mod:`crossformer.stats_csv`): a statistics CSV validated column by column
  (:class:`StatsFormatError` otherwise).
* :func:`main` (:mod:`crossformer.stats_cli`): the command line, also under ``torchrun``::

    python -m crossformer.stats --checkpoint ckpt.safetensors --images DIR --out stats.csv \\
        [--size 224 | --official-eval] [--batch 32] [--device auto] [--precision auto] [--summary s.html]
    torchrun --nproc_per_node 2 -m crossformer.stats --checkpoint … --images DIR --out stats.csv

  walks ``DIR`` (regular files only; what is skipped is counted by reason), reads images as the app does
  (:mod:`crossformer.images`), writes one row per image × block × head to ``stats.csv`` (always a complete
  CSV; a killed run resumes; other weights or settings than ``stats.csv.json`` records are refused) and
  optionally the summary figure of the app's Dataset statistics page.
"""

from __future__ import annotations

import sys

from .stats_cli import main, write_summary
from .stats_csv import FIELDS, NUMERIC, REQUIRED, StatsFormatError, read_csv
from .stats_heads import CHUNK_ELEMENTS, head_stats, rows_per_image

__all__ = ["CHUNK_ELEMENTS", "FIELDS", "NUMERIC", "REQUIRED", "StatsFormatError", "head_stats", "main",
           "read_csv", "rows_per_image", "write_summary"]


if __name__ == "__main__":
    sys.exit(main())
