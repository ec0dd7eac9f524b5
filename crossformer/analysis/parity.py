"""How well two implementations agree: the verdict over per-field max errors (NumPy only).

``errors[group][field] = max |torch − numpy|`` as ``viz.parity_figures.group_errors`` arranges
``crossformer.reference.compare``'s flat result; a missing or mismatched field is a non-finite error.

    v = parity_verdict(errors, tol=1e-4)
    v.bad, v.worst        # values above the tolerance (or not finite), the largest error (inf if any is not finite)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class ParityVerdict:
    """Counts and extremes of a set of max-error values against one tolerance.

    Attributes:
        values: errors compared.
        bad: errors above the tolerance or not finite (NaN and inf count as bad).
        broken: errors that are not finite (a field missing from one side, or of another shape).
        largest: the largest finite error (0 when there is none).
    """

    values: int
    bad: int
    broken: int
    largest: float

    @property
    def worst(self) -> float:
        """The largest error: ``inf`` when any is not finite."""
        return math.inf if self.broken else self.largest


def parity_verdict(errors: Mapping[str, Mapping[str, float]], tol: float) -> ParityVerdict:
    """The verdict over every ``errors[group][field]`` at tolerance ``tol``."""
    vals = np.array([float(v) for fields in errors.values() for v in fields.values()], dtype=np.float64)
    finite = vals[np.isfinite(vals)]
    return ParityVerdict(values=int(vals.size), bad=int(np.sum(~(vals <= tol))), broken=int(vals.size - finite.size),
                         largest=float(finite.max()) if finite.size else 0.0)
