"""The checkpoint cache for :mod:`crossformer.fetch`: where files go, whether a cached file is good, how one is written.

Reading: :func:`cache_root`, :func:`check_file` (size, format signature, archive structure — an HTML page or a
cut-off file under the right name is reported bad), :func:`cache_report` and :func:`cached_official`; no network.
Writing (used by a download): one download of a name at a time (:func:`locked`, a ``filelock`` lock file), a
uniquely named temporary file (:func:`new_temp`), the atomic rename of a verified file (:func:`publish`), and an
actionable :class:`~crossformer.fetch_http.FetchError` for every file-system failure (:func:`cache_error`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .fetch_http import FetchError, looks_like_html
from .variants import VARIANT_RECORDS, WeightSource

log = logging.getLogger(__name__)

#: Environment variable naming the cache folder (default ``~/.cache/crossformer``).
CACHE_ENV = "CROSSFORMER_CACHE"
#: How long a second download of the same name waits for the first one's lock.
LOCK_WAIT_S = 3600.0
TEMP_SUFFIX = ".download"    # ``.<file>.XXXXXXXX.download``: a download in progress
LOCK_SUFFIX = ".lock"        # ``.<file>.lock``: kept after release (removing it would race), 0 bytes

#: The official ImageNet-1k classification checkpoints a script can download (Google Drive; SPEC §10),
#: a view of :data:`crossformer.variants.VARIANT_RECORDS`.
OFFICIAL_WEIGHTS: dict[str, WeightSource] = {n: v.weights for n, v in VARIANT_RECORDS.items() if v.weights}

#: Variants whose official weights are on Baidu Netdisk only (CrossFormer++, TPAMI 2023): ``{name: link}``.
BAIDU_ONLY: dict[str, str] = {n: v.baidu for n, v in VARIANT_RECORDS.items() if v.baidu and not v.weights}


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$CROSSFORMER_CACHE``, else ``~/.cache/crossformer``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "crossformer"


@dataclass(frozen=True)
class CacheEntry:
    """What the cache holds for one official name.

    Attributes:
        path: where the file is (or would be).
        problem: ``None`` when the file looks complete; ``"missing"``; else why it is bad ("an HTML page …").
    """

    path: Path
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def missing(self) -> bool:
        return self.problem == "missing"


def _zip_problem(f: IO[bytes], size: int) -> str | None:
    """A zip archive (``torch.save`` since 1.6, ``.npz``) is complete when its end record is there and
    its central directory lies inside the file."""
    tail_len = min(size, 22 + 0xFFFF)                    # end record + the longest archive comment
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return "a cut-off zip archive (no end-of-archive record): the download was incomplete"
    cd_size, cd_offset = struct.unpack("<II", tail[at + 12:at + 20])
    if cd_offset != 0xFFFFFFFF and cd_offset + cd_size > size - tail_len + at:   # (zip64 keeps it elsewhere)
        return "a damaged zip archive (its directory points past the end of the file)"
    return None


def _safetensors_problem(f: IO[bytes], head: bytes, size: int) -> str | None:
    """A safetensors file is complete when its header parses and the last tensor ends at the file's end."""
    (n,) = struct.unpack("<Q", head[:8])
    if n > 16 << 20:                                     # a header this large is checked on load only
        return None
    f.seek(8)
    try:
        header = json.loads(f.read(n))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "a damaged safetensors file (unreadable header)"
    if 8 + n + max(ends, default=0) != size:
        return f"a cut-off or padded safetensors file ({size:,} bytes, its header describes " \
               f"{8 + n + max(ends, default=0):,})"
    return None


def _format_problem(path: Path, size: int) -> str | None:
    """Why the bytes of ``path`` are not a complete checkpoint container (None: they look like one)."""
    with open(path, "rb") as f:
        head = f.read(512)
        if looks_like_html(head):
            return "an HTML page, not a checkpoint (a failed or blocked download saved under the right name)"
        if head[:4] == b"PK\x03\x04":
            return _zip_problem(f, size)
        if len(head) >= 10 and head[8:9] == b"{" and 8 + struct.unpack("<Q", head[:8])[0] <= size:
            return _safetensors_problem(f, head, size)
        if head[:1] == b"\x80":                         # legacy torch.save pickle: checked on load
            return None
    return "not a checkpoint (neither a PyTorch zip/pickle, a safetensors nor an npz file)"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_file(path: Path, src: WeightSource, checksum: bool = False) -> str | None:
    """Why ``path`` is not a usable copy of ``src`` — ``"missing"``, a sentence — or ``None`` when it is.

    Cheap (reads at most the first 512 bytes, the last 64 KiB and a safetensors header): a regular file,
    not empty, :attr:`WeightSource.size` when recorded, a known format signature, a complete zip archive
    or safetensors layout. ``checksum=True`` also compares the SHA-256 with :attr:`WeightSource.sha256`
    when one is recorded (reads the whole file). A file that passes is loaded in full only when used.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size == 0:
        return "empty (0 bytes)"
    if src.size and st.st_size != src.size:
        return f"{st.st_size:,} bytes where the official file has {src.size:,}"
    try:
        problem = _format_problem(path, st.st_size)
        if problem is None and checksum and src.sha256 and _sha256(path) != src.sha256:
            problem = "its SHA-256 differs from the official file's"
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    return problem


def cache_report(cache_dir: str | Path | None = None, checksum: bool = False) -> dict[str, CacheEntry]:
    """Every official name → its :class:`CacheEntry` (see :func:`check_file`; no network)."""
    root = cache_root(cache_dir)
    return {name: CacheEntry(root / src.filename, check_file(root / src.filename, src, checksum))
            for name, src in OFFICIAL_WEIGHTS.items()}


def cached_official(cache_dir: str | Path | None = None, checksum: bool = False) -> dict[str, Path]:
    """The official checkpoints complete in the cache: ``{name: path}`` (no network). A bad file (an
    HTML page, a cut-off archive …) is left out, so it is offered for download again."""
    return {name: e.path for name, e in cache_report(cache_dir, checksum).items() if e.ok}


def cache_error(root: Path, err: OSError, doing: str) -> FetchError:
    """An actionable :class:`FetchError` for a file-system failure in the cache folder."""
    code = err.errno
    where = f"--cache-dir DIR or ${CACHE_ENV}"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return FetchError(f"the disk holding the cache folder {root} is full ({doing}); free some space there "
                          f"or choose another folder with {where}")
    if code in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    elif code == errno.EROFS:
        why = "it is on a read-only file system"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        why = "a file is in the way of the folder"
    else:
        why = err.strerror or str(err)
    return FetchError(f"cannot use the cache folder {root} ({doing}: {why}); choose a writable folder with {where}")


def new_temp(root: Path, src: WeightSource) -> tuple[Path, IO[bytes]]:
    """A fresh, uniquely named temporary file in the cache folder, open for writing."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{src.filename}.", suffix=TEMP_SUFFIX, dir=root)
    except OSError as err:
        raise cache_error(root, err, "creating a temporary file") from None
    return Path(name), os.fdopen(fd, "wb")


def publish(tmp: Path, final: Path) -> None:
    """Rename the verified temporary file to its final name (atomic on one file system)."""
    try:
        os.replace(tmp, final)
    except OSError as err:
        raise cache_error(final.parent, err, f"moving the verified download to {final.name}") from None


@contextlib.contextmanager
def locked(root: Path, src: WeightSource) -> Iterator[None]:
    """Hold ``.<file>.lock`` in the cache folder: one download of a name at a time (threads and processes)."""
    from filelock import FileLock, Timeout

    lock = FileLock(root / f".{src.filename}{LOCK_SUFFIX}", timeout=LOCK_WAIT_S)
    try:
        lock.acquire()
    except Timeout:
        raise FetchError(f"another download of {src.filename} into {root} did not finish within "
                         f"{LOCK_WAIT_S:g} s; wait for it, or stop it and try again") from None
    except OSError as err:
        raise cache_error(root, err, "creating the lock file") from None
    try:
        yield
    finally:
        lock.release()


def cached_ok(final: Path, src: WeightSource) -> bool:
    """The cached file passes :func:`check_file` (with the checksum when one is recorded); a bad one is
    reported and will be replaced."""
    problem = check_file(final, src, checksum=True)
    if problem is not None and problem != "missing":
        log.warning("the cached %s is bad (%s); downloading it again", final, problem)
    return problem is None

