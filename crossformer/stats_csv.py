"""The statistics CSV: its columns, and :func:`read_csv`, which validates a file column by column before
anything is sized from it.

One row per image × block × head (:data:`FIELDS`). A file comes from the CLI (``python -m crossformer.stats``)
or from anyone's upload, so every count and index that a reader sizes an array from is bounded here:
stages < :data:`MAX_STAGES`, blocks per stage < :data:`MAX_BLOCKS_PER_STAGE`, heads < :data:`MAX_HEADS`,
rows ≤ :data:`MAX_ROWS`, image names ≤ :data:`MAX_NAME_CHARS`; a head index of 30,000,000 is a
:class:`StatsFormatError`, never a 4 GB table. The text is parsed with the ``csv`` module over
``newline=""`` lines, so a quoted name holding a line break or U+2028 reads back as written.
"""

from __future__ import annotations

import csv
import io
import re

import numpy as np

FIELDS = ("image", "stage", "block", "kind", "head", "entropy", "distance_px", "dpb_share", "output_rms",
          "acl", "uniform_entropy")
#: Columns a statistics CSV must have (``acl`` and ``uniform_entropy`` are newer and optional).
REQUIRED = FIELDS[:9]
NUMERIC = ("entropy", "distance_px", "dpb_share", "output_rms", "uniform_entropy")

#: Bounds a file must respect (every released CrossFormer has 4 stages, ≤ 24 blocks in one, ≤ 48 heads).
MAX_STAGES = 8
MAX_BLOCKS_PER_STAGE = 64
MAX_HEADS = 64
MAX_ROWS = 20_000_000
MAX_COLUMNS = 64
MAX_NAME_CHARS = 4096
#: Entropy in nats is at most ln(keys per group); 50 nats is ln of 5·10²¹ keys.
MAX_ENTROPY = 50.0
#: Mean attention distance in input pixels (an image side of a million pixels).
MAX_DISTANCE_PX = 1e6
_TOL = 1e-6
_BLOCK = re.compile(r"s(\d{1,2})_b(\d{1,3})")


class StatsFormatError(ValueError):
    """A statistics CSV that this module did not write (missing columns, unparsable or out-of-range values)."""


def _rows(text: str, max_rows: int) -> tuple[list[str], dict[str, list[str]]]:
    """Header and the raw text of each known column (``csv`` module, ``newline=""``: only ``\\r``/``\\n``
    end a line, quoted fields may hold any character)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise StatsFormatError("the file is empty")
        header = [h.strip() for h in header]
        if len(header) > MAX_COLUMNS:
            raise StatsFormatError(f"{len(header)} columns; a statistics CSV has {len(FIELDS)}")
        missing = [f for f in REQUIRED if f not in header]
        if missing:
            raise StatsFormatError(f"not a statistics CSV of `python -m crossformer.stats`: missing column(s) "
                                   f"{', '.join(missing)} (found: {', '.join(header[:12]) or 'none'})")
        dup = sorted({h for h in header if header.count(h) > 1 and h in FIELDS})
        if dup:
            raise StatsFormatError(f"column {dup[0]} appears twice")
        col = {f: header.index(f) for f in FIELDS if f in header}
        raw: dict[str, list[str]] = {f: [] for f in col}
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise StatsFormatError(f"line {reader.line_num}: {len(row)} values for {len(header)} columns")
            if len(raw["image"]) >= max_rows:
                raise StatsFormatError(f"more than {max_rows:,} rows: summarise a subset of the images")
            for f, i in col.items():
                raw[f].append(row[i])
    except csv.Error as err:
        raise StatsFormatError(f"line {reader.line_num}: not a readable CSV ({err})") from None
    if not raw["image"]:
        raise StatsFormatError("the file has a header but no rows")
    return header, raw


def _numbers(raw: list[str], name: str) -> np.ndarray:
    """``(rows,)`` float64 of one column; a value that is not a finite number is an error."""
    try:
        v = np.asarray(raw, dtype=np.float64)
    except ValueError as err:
        raise StatsFormatError(f"column {name}: a value is not a number ({err})") from None
    if not np.isfinite(v).all():
        raise StatsFormatError(f"column {name} has a non-finite value (nan or inf)")
    return v


def _integers(raw: list[str], name: str, lo: int, hi: int) -> np.ndarray:
    """``(rows,)`` int64 of one column, every value an integer in ``[lo, hi)``."""
    v = _numbers(raw, name)
    bad = (v < lo) | (v >= hi) | (v != np.floor(v))
    if bad.any():
        raise StatsFormatError(f"column {name} must hold integers from {lo} to {hi - 1}; found "
                               f"{raw[int(np.argmax(bad))][:20]!r}")
    return v.astype(np.int64)


def _in_range(v: np.ndarray, name: str, lo: float, hi: float, what: str) -> None:
    if ((v < lo - _TOL) | (v > hi + _TOL)).any():
        raise StatsFormatError(f"column {name} is {what} and must lie in [{lo:g}, {hi:g}]; found "
                               f"{float(v[int(np.argmax((v < lo - _TOL) | (v > hi + _TOL)))]):g}")


def _codes(raw: list[str]) -> tuple[list[str], np.ndarray]:
    """Distinct values in order of first appearance and ``(rows,)`` int64 codes (hashing, no sort)."""
    ids: dict[str, int] = {}
    codes = np.fromiter((ids.setdefault(v, len(ids)) for v in raw), dtype=np.int64, count=len(raw))
    return list(ids), codes


def _blocks(raw: list[str], stage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``block`` names (``s<stage>_b<index>``, stage as in the ``stage`` column) as a str array,
    and each row's block code."""
    names, idx = _codes(raw)
    for name in names:
        m = _BLOCK.fullmatch(name)
        if m is None or int(m.group(2)) >= MAX_BLOCKS_PER_STAGE:
            raise StatsFormatError(f"column block holds {str(name)[:20]!r}; expected s<stage>_b<index> with "
                                   f"index < {MAX_BLOCKS_PER_STAGE}")
    stage_of = np.array([int(_BLOCK.fullmatch(n).group(1)) for n in names])
    if (stage_of[idx] != stage).any():
        i = int(np.argmax(stage_of[idx] != stage))
        raise StatsFormatError(f"block {raw[i]} is listed with stage {int(stage[i])}")
    return np.asarray(names, dtype=str)[idx], idx


def read_csv(text: str, max_rows: int | None = None) -> dict[str, np.ndarray]:
    """Parse and validate a CSV written by :func:`crossformer.stats.main` into columns.

    Returns ``{field: (rows,) array}``: ``image`` as an object array of ``str``, ``block`` and ``kind`` as
    ``str`` arrays, ``stage``, ``head``, ``acl`` as ``int64`` (``acl`` is −1 when the file predates that
    column), the rest ``float64`` (``uniform_entropy`` NaN when absent). Every column is checked for type and
    range, and each image × block × head must appear once, before anything else is built from it. Raises
    :class:`StatsFormatError` naming the first problem.
    """
    cap = MAX_ROWS if max_rows is None else min(int(max_rows), MAX_ROWS)
    _, raw = _rows(text, cap)
    long = next((s for s in raw["image"] if not s or len(s) > MAX_NAME_CHARS), None)
    if long is not None:
        raise StatsFormatError(f"column image must name the image (1 to {MAX_NAME_CHARS} characters)")
    kinds = set(raw["kind"])
    if not kinds <= {"sda", "lda"}:
        raise StatsFormatError(f"column kind must be sda or lda, found {', '.join(sorted(kinds - {'sda', 'lda'})[:3])}")
    n = len(raw["image"])
    names, image_id = _codes(raw["image"])
    images = np.empty(len(names), dtype=object)
    images[:] = names
    out: dict[str, np.ndarray] = {"image": images[image_id], "kind": np.asarray(raw["kind"], dtype="<U3")}
    out["stage"] = _integers(raw["stage"], "stage", 0, MAX_STAGES)
    out["head"] = _integers(raw["head"], "head", 0, MAX_HEADS)
    out["acl"] = _integers(raw["acl"], "acl", 0, 2) if "acl" in raw else np.full(n, -1, dtype=np.int64)
    out["block"], block_id = _blocks(raw["block"], out["stage"])
    for f in NUMERIC:
        out[f] = _numbers(raw[f], f) if f in raw else np.full(n, np.nan)
    _in_range(out["entropy"], "entropy", 0.0, MAX_ENTROPY, "an entropy in nats")
    _in_range(out["distance_px"], "distance_px", 0.0, MAX_DISTANCE_PX, "a distance in pixels")
    _in_range(out["dpb_share"], "dpb_share", 0.0, 1.0, "a total-variation distance")
    _in_range(out["output_rms"], "output_rms", 0.0, np.inf, "a root mean square")
    if "uniform_entropy" in raw:
        _in_range(out["uniform_entropy"], "uniform_entropy", 0.0, MAX_ENTROPY, "an entropy in nats")
    cell = (image_id.astype(np.int64) * (MAX_STAGES * MAX_BLOCKS_PER_STAGE) + block_id) * MAX_HEADS + out["head"]
    uniq, first, count = np.unique(cell, return_index=True, return_counts=True)
    if len(uniq) != n:
        i = int(first[np.argmax(count > 1)])
        raise StatsFormatError(f"image {str(out['image'][i])[:60]!r}, block {out['block'][i]}, head "
                               f"{int(out['head'][i])} appears more than once")
    kind_pairs = np.unique(np.stack([block_id, (out["kind"] == "lda").astype(np.int64)]), axis=1)
    if kind_pairs.shape[1] != len(np.unique(block_id)):
        raise StatsFormatError("a block is listed as both sda and lda")
    return out
