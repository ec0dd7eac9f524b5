"""The statistics CLI's folder walk: every regular file under a folder, and why anything else was skipped.

Symlinks are followed (a dataset is often a tree of links), each folder is entered once (by device and
inode), so a link back to a parent or a self-referential link cannot loop; FIFOs, devices and sockets are
never opened; a folder that cannot be listed is counted, not fatal. The list is sorted by relative name
(``/``-separated), the order of the CSV and of the shards under ``torchrun``.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

#: Why a file found in the folder did not become rows (reading and decoding add their own reasons,
#: :class:`crossformer.images.ImageError.reason`).
NOT_REGULAR = "not a regular file"
LOOP = "symlink loop"
BROKEN_LINK = "broken symlink"
UNREADABLE = "unreadable"
UNREADABLE_FOLDER = "unreadable folder"
BAD_NAME = "name not UTF-8"


@dataclass
class Skipped:
    """Skipped files by reason: ``{reason: [relative names]}`` (a folder's name ends with ``/``)."""

    by_reason: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, name: str) -> None:
        self.by_reason.setdefault(reason, []).append(name)

    def update(self, other: "Skipped") -> None:
        for reason, names in other.by_reason.items():
            self.by_reason.setdefault(reason, []).extend(names)

    def total(self) -> int:
        return sum(len(v) for v in self.by_reason.values())

    def describe(self) -> str:
        """``"1 not an image, 2 symlink loop"`` (most frequent first), or ``""``."""
        items = sorted(self.by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        return ", ".join(f"{len(v)} {k}" for k, v in items)


def walk_images(root: Path, ignore: Callable[[str], bool] | None = None,
                ignore_in: Path | None = None) -> tuple[list[tuple[str, Path]], Skipped]:
    """``([(relative name, path)], skipped)`` for every regular file under ``root``, sorted by name.

    ``ignore(name)`` drops files of the folder ``ignore_in`` silently (the CLI's own output files).
    """
    skipped = Skipped()
    files: list[tuple[str, Path]] = []
    root_st = os.stat(root)
    seen = {(root_st.st_dev, root_st.st_ino)}
    own = None
    if ignore is not None and ignore_in is not None:
        try:
            st = os.stat(ignore_in)
            own = (st.st_dev, st.st_ino)
        except OSError:
            own = None
    stack: list[tuple[Path, str, tuple[int, int]]] = [(root, "", (root_st.st_dev, root_st.st_ino))]
    while stack:
        folder, prefix, key = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            skipped.add(UNREADABLE_FOLDER, prefix or "./")
            continue
        for entry in entries:
            rel = prefix + entry.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                skipped.add(BAD_NAME, rel.encode("utf-8", "backslashreplace").decode("ascii", "replace"))
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as err:
                link = entry.is_symlink()
                skipped.add(LOOP if err.errno == errno.ELOOP else BROKEN_LINK if link else UNREADABLE, rel)
                continue
            if stat.S_ISDIR(st.st_mode):
                sub = (st.st_dev, st.st_ino)
                if sub in seen:
                    skipped.add(LOOP, rel + "/")
                else:
                    seen.add(sub)
                    stack.append((Path(entry.path), rel + "/", sub))
            elif not stat.S_ISREG(st.st_mode):
                skipped.add(NOT_REGULAR, rel)
            elif not (own == key and ignore is not None and ignore(entry.name)):
                files.append((rel, Path(entry.path)))
    files.sort(key=lambda f: f[0])
    return files, skipped
