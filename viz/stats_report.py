"""The statistics CLI's summary figure as a file: the writer ``crossformer stats --summary`` finds through the
entry point group ``crossformer.summary_writers`` (``pyproject.toml``), so ``crossformer`` never imports ``viz``.

A writer takes the numbers (:class:`crossformer.analysis.dataset.StatsSummary`) and the path the user asked for,
and returns the path it wrote; an :class:`OSError` it raises is the CLI's to report.
"""

from __future__ import annotations

import logging
from pathlib import Path

from crossformer.analysis.dataset import StatsSummary

from .export import ExportUnavailable, figure_to_html, figure_to_png
from .stats_figures import stats_summary_figure

log = logging.getLogger(__name__)


def write_summary(summary: StatsSummary, path: Path) -> Path:
    """:func:`viz.stats_figures.stats_summary_figure` of ``summary`` (the app's Dataset statistics figure) as
    ``.html`` or ``.png``, by the suffix of ``path``. PNG needs kaleido and chromium; without them the HTML is
    written next to it (same name, ``.html``). Returns the file written."""
    path = Path(path)
    fig = stats_summary_figure(summary)
    if path.suffix.lower() == ".png":
        try:
            path.write_bytes(figure_to_png(fig))
            return path
        except ExportUnavailable as err:
            path = path.with_suffix(".html")
            log.warning("PNG export unavailable (%s); writing %s", err, path)
    path.write_bytes(figure_to_html(fig))
    return path
