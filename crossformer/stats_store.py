"""Where the statistics CLI keeps its rows so that a kill at any moment loses at most one batch.

* ``OUT`` (the CSV a user asked for) is only ever replaced whole: a new file is written beside it, fsynced and
  renamed over it (:func:`merge`). It is always a complete, valid CSV, or absent.
* Each process appends its rows to its own part file ``OUT.part<rank>-of-<world>`` (:class:`PartWriter`):
  header and rows of a batch in one write, flushed and fsynced. A kill leaves at most one cut row at its end.
* ``OUT.json`` (:class:`RunIdentity`) records the checkpoint's SHA-256, the preprocessing and the precision;
  a run whose settings differ is refused (:func:`check_resumable`), so two models never mix in one file.
* The next run (or rank 0 at the end of this one) folds ``OUT`` and every part into a new ``OUT`` with
  :func:`merge`: a k-way merge by image name of the complete images only (an image whose rows were cut is
  dropped and run again), duplicates dropped, then the parts are deleted.

Rows of one image are contiguous and images are in increasing name order in every file written here; that
is what makes the merge streaming and its result equal to a single uninterrupted run.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from .stats_csv import FIELDS, StatsFormatError

#: Rows of one image: ``(name, rows)`` with each row the CSV's string values.
Group = tuple[str, list[list[str]]]
_HEADER_PROBE = 64 * 1024


class StatsResumeError(ValueError):
    """An existing output that this run must not append to (other weights or settings, no record of them)."""


@dataclass(frozen=True)
class RunIdentity:
    """What makes two runs' rows comparable: recorded in ``OUT.json`` and checked before resuming.

    Attributes:
        checkpoint_sha256: SHA-256 of the checkpoint file (hex).
        preprocessing: ``"square:64"`` or ``"official:224"`` (:class:`crossformer.images.Preprocessing.key`).
        precision: the resolved precision, ``"fp32"`` or ``"bf16"``.
        rows_per_image: blocks × heads of the model.
        checkpoint: the checkpoint's file name (informative only, not compared).
    """

    checkpoint_sha256: str
    preprocessing: str
    precision: str
    rows_per_image: int
    checkpoint: str = ""

    def differences(self, old: "RunIdentity") -> list[str]:
        """Sentences naming what differs from ``old`` (the run that made the file)."""
        out = []
        if old.checkpoint_sha256 != self.checkpoint_sha256:
            out.append(f"other weights (checkpoint SHA-256 {old.checkpoint_sha256[:12]}… "
                       f"{'(' + old.checkpoint + ') ' if old.checkpoint else ''}there, "
                       f"{self.checkpoint_sha256[:12]}… now)")
        if old.preprocessing != self.preprocessing:
            out.append(f"other preprocessing ({old.preprocessing} there, {self.preprocessing} now)")
        if old.precision != self.precision:
            out.append(f"another precision ({old.precision} there, {self.precision} now)")
        if old.rows_per_image != self.rows_per_image and not out:
            out.append(f"another model shape ({old.rows_per_image} rows per image there, {self.rows_per_image} now)")
        return out


def sidecar_path(out: Path) -> Path:
    """``OUT.json``: the :class:`RunIdentity` of ``OUT`` and its parts."""
    return out.with_name(out.name + ".json")


def part_path(out: Path, rank: int, world: int) -> Path:
    """The part file of process ``rank`` of ``world``."""
    return out.with_name(f"{out.name}.part{rank}-of-{world}")


def existing_parts(out: Path) -> list[Path]:
    """Part files of ``OUT`` left by any earlier run, whatever its number of processes."""
    pattern = re.compile(re.escape(out.name) + r"\.part\d+-of-\d+")
    try:
        names = os.listdir(out.parent)
    except OSError:
        return []
    return sorted(out.parent / n for n in names if pattern.fullmatch(n))


def is_own_file(name: str, out: Path) -> bool:
    """True for ``OUT`` and the files this module keeps beside it (sidecar, parts, temporaries)."""
    return name == out.name or name.startswith(out.name + ".")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace(tmp: Path, dest: Path) -> None:
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)


def write_identity(out: Path, identity: RunIdentity) -> None:
    """Write ``OUT.json`` atomically."""
    tmp = out.with_name(out.name + ".json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"tool": "crossformer.stats", **asdict(identity)}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    _replace(tmp, sidecar_path(out))


def read_identity(out: Path) -> RunIdentity | None:
    """The recorded identity of ``OUT``, or ``None`` when ``OUT.json`` is missing or unreadable."""
    try:
        d = json.loads(sidecar_path(out).read_text(encoding="utf-8"))
        return RunIdentity(str(d["checkpoint_sha256"]), str(d["preprocessing"]), str(d["precision"]),
                           int(d["rows_per_image"]), str(d.get("checkpoint", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_header(path: Path) -> None:
    """Raise :class:`StatsFormatError` unless ``path`` starts with this module's CSV header."""
    with open(path, "rb") as f:
        head = f.read(_HEADER_PROBE)
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        if b"\0" in head:
            raise UnicodeDecodeError("utf-8", head, 0, 1, "NUL byte")
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise StatsFormatError(f"{path} is not a CSV file (binary content); choose another --out, this file "
                               "is left as it is") from None
    header = next(csv.reader([text]), [])
    if tuple(header) != FIELDS:
        raise StatsFormatError(f"{path} was not written by python -m crossformer.stats (its columns: "
                               f"{', '.join(header[:8])[:120] or 'none'}); choose another --out, this file is "
                               "left as it is")


def check_resumable(out: Path, identity: RunIdentity) -> bool:
    """Check that this run may add to ``OUT`` and its parts; returns True when there is something to resume.

    Raises :class:`StatsFormatError` (``OUT`` is a folder, binary, another tool's CSV) or
    :class:`StatsResumeError` (made with other weights or settings, or with no record of them). Reads only.
    """
    parts = existing_parts(out)
    has_out = out.exists() and not (out.is_file() and out.stat().st_size == 0)
    if has_out and not out.is_file():
        raise StatsFormatError(f"--out {out} is not a regular file")
    for path in ([out] if has_out else []) + parts:
        check_header(path)
    if not has_out and not parts:
        return False
    old = read_identity(out)
    if old is None:
        raise StatsResumeError(f"{out} has no record of the checkpoint and settings it was made with "
                               f"({sidecar_path(out).name} is missing or unreadable), so adding rows could mix "
                               "two models; resume refused: choose a new --out, or move the old file away")
    diff = identity.differences(old)
    if diff:
        raise StatsResumeError(f"{out} was made with {'; '.join(diff)}; resume refused (rows of different "
                               "runs would mix): choose a new --out, or run with the settings it was made with")
    return True


def _records(path: Path) -> Iterator[tuple[list[str], bool]]:
    """``(row, complete)`` of each CSV record after the header; ``complete`` is False for a record that
    the end of the file cut (no line end, or an unterminated quote)."""
    state = {"ended": True, "eof": False}

    def lines(f) -> Iterator[str]:
        for line in f:
            state["ended"] = line.endswith("\n")
            yield line
        state["eof"] = True

    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(lines(f))
        next(reader, None)                                            # header (checked by check_header)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                if state["eof"]:                                      # a quoted field cut by the end of the file
                    yield [], False
                    return
                raise StatsFormatError(f"{path}: line {reader.line_num}: {err}") from None
            yield row, state["ended"]


def iter_groups(path: Path, rows_per_image: int) -> Iterator[Group]:
    """The complete images of a CSV written here, in file order.

    An incomplete last image (the rows a kill cut) is dropped, so it is run again; an incomplete image
    anywhere else, a row of the wrong length or images out of name order raise :class:`StatsFormatError`.
    """
    name: str | None = None
    rows: list[list[str]] = []
    try:
        for row, complete in _records(path):
            if not complete:
                return
            if len(row) != len(FIELDS):
                raise StatsFormatError(f"{path}: a row with {len(row)} values for {len(FIELDS)} columns")
            if row[0] != name:
                if name is not None:
                    if len(rows) != rows_per_image:
                        raise StatsFormatError(f"{path}: image {name!r} has {len(rows)} rows, not "
                                               f"{rows_per_image}")
                    if row[0] < name:
                        raise StatsFormatError(f"{path}: images are not in name order ({row[0]!r} after "
                                               f"{name!r}); the file was edited")
                    yield name, rows
                name, rows = row[0], []
            rows.append(row)
            if len(rows) > rows_per_image:
                raise StatsFormatError(f"{path}: image {name!r} has more than {rows_per_image} rows")
    except UnicodeDecodeError:
        raise StatsFormatError(f"{path} is not UTF-8 text") from None
    if name is not None and len(rows) == rows_per_image:
        yield name, rows


def image_names(out: Path, rows_per_image: int) -> set[str]:
    """Names of the complete images in ``OUT`` (empty when it does not exist)."""
    if not out.is_file():
        return set()
    return {name for name, _ in iter_groups(out, rows_per_image)}


def merge(out: Path, rows_per_image: int) -> set[str]:
    """Fold ``OUT`` and every part file into a new ``OUT`` (written beside it, fsynced, renamed), then
    delete the parts. Returns the names of the images in the result. ``OUT`` is not created when no image
    is complete anywhere (never a header-only file)."""
    parts = existing_parts(out)
    sources = ([out] if out.is_file() and out.stat().st_size else []) + parts
    streams = [iter_groups(p, rows_per_image) for p in sources]
    tmp = out.with_name(out.name + ".tmp")
    names: set[str] = set()
    last = None
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\r\n")
            w.writerow(FIELDS)
            for name, rows in heapq.merge(*streams, key=lambda g: g[0]):
                if name == last:                      # a part merged once already (killed before its deletion)
                    continue
                w.writerows(rows)
                names.add(name)
                last = name
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not names:
        tmp.unlink()
    else:
        _replace(tmp, out)
    for p in parts:
        p.unlink(missing_ok=True)
    return names


class PartWriter:
    """Appends whole batches of rows to one part file: header and rows in one write, then flush + fsync.
    The file is created by the first batch, so a run whose first batch fails leaves no file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: io.TextIOWrapper | None = None

    def append(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\r\n")
        if self._file is None:
            self._file = open(self.path, "w", newline="", encoding="utf-8")
            writer.writeheader()
        writer.writerows(rows)
        self._file.write(buf.getvalue())
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
