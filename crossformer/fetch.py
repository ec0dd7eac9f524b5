"""Download the official ImageNet-1k CrossFormer checkpoints in one call (network use is opt-in).

    path = crossformer.fetch_official("crossformer_s")      # ~/.cache/crossformer/crossformer-s.pth
    model, info = crossformer.load_checkpoint(path)

or from a shell: ``python -m crossformer fetch crossformer_s`` (``python -m crossformer list`` shows what
is cached, and which cached files are bad). Nothing here touches the network at import time or without an
explicit call. docs/fetching.md says why it is built this way (and which libraries it uses).

The CrossFormer (ICLR 2022) files are on Google Drive (SPEC §10). Drive answers large files with an HTML
"virus scan warning" page instead of the file; the confirmation form (or, on older pages, a ``confirm=``
token in a link or a ``download_warning`` cookie) is parsed and followed.

A download is atomic and verified end to end:

* one download of a name at a time: a :class:`filelock.FileLock` (``.<file>.lock`` in the cache folder);
  a second caller waits, then finds the verified file and returns it without touching the network;
* the body goes to a temporary file with a unique name in the cache folder (``.<file>.XXXX.download``),
  never to the final name; the free space is checked against ``Content-Length`` first;
* the byte count must match ``Content-Length`` (and :attr:`WeightSource.size` when recorded), the SHA-256
  must match :attr:`WeightSource.sha256` when recorded; without a recorded checksum the file is opened with
  :func:`crossformer.load_checkpoint` and its inferred variant must be the name asked for;
* a body that stalls (fewer than :data:`STALL_MIN_BYTES` in :data:`STALL_S` seconds) is abandoned;
* only a verified file is renamed (``os.replace``) to its final name; on any failure or interrupt the
  temporary file is removed, so the cache never holds a partial or unverified file.

Every failure is a :class:`FetchError` whose message says what to do. A cached file is checked cheaply
before it is called cached (:func:`check_file`: size, format signature, archive structure — an HTML page or a
cut-off file under the right name is reported bad and downloaded again).

CrossFormer++ weights are published on Baidu Netdisk only, which cannot be downloaded by a script:
:func:`fetch_official` explains where to get them and how to open a downloaded file.

HTTP through the standard library (``urllib.request``), progress through ``tqdm``, the lock through
``filelock``; torch is imported only to verify a finished download.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import IO, Any, Callable, Optional

from .fetch_cache import (BAIDU_ONLY, CACHE_ENV, OFFICIAL_WEIGHTS, cache_error, cache_root, cached_ok, check_file,
                          locked, new_temp, publish)
from .fetch_http import CHUNK, STALL_MIN_BYTES, FetchError, make_opener, open_checkpoint_response, read_some, \
    stalled_message
from .variants import VARIANT_RECORDS, WeightSource

log = logging.getLogger(__name__)

#: A body that delivers fewer than :data:`STALL_MIN_BYTES` in this many seconds has stalled.
STALL_S = 30.0

#: ``progress(bytes_done, bytes_total_or_None)``: a download progress callback.
ProgressFn = Callable[[int, Optional[int]], None]


def _source(name: str) -> WeightSource:
    if name in OFFICIAL_WEIGHTS:
        return OFFICIAL_WEIGHTS[name]
    if name in BAIDU_ONLY:
        raise FetchError(
            f"{name} (CrossFormer++) is published on Baidu Netdisk only, which cannot be downloaded by a "
            f"script: download it by hand from {BAIDU_ONLY[name]}, then open the file with "
            f"crossformer.load_checkpoint(path) or start the app with `streamlit run app.py -- --checkpoint PATH`")
    raise FetchError(f"no official weights named {name!r}; choose one of {', '.join(OFFICIAL_WEIGHTS)} "
                     f"(CrossFormer++ {', '.join(BAIDU_ONLY)} are Baidu-only)")


def _manual_hint(name: str, src: WeightSource) -> str:
    rec = VARIANT_RECORDS.get(name)
    alt = f" or {rec.baidu}" if rec is not None and rec.baidu else ""
    return (f"download {src.filename} by hand from {src.drive_link}{alt} and open it with "
            f"--checkpoint PATH (or crossformer.load_checkpoint(path))")


class _Progress:
    """Progress from the first bytes: a ``tqdm`` bar on stderr, or ``callback(done, total)`` at most
    10× a second (always on the first chunk and at the end) — the app's ``st.progress``."""

    def __init__(self, label: str, total: int | None, progress: "bool | ProgressFn") -> None:
        self.callback = progress if callable(progress) else None
        self.total = total
        self.bar = None
        if progress and self.callback is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=label, unit="B", unit_scale=True, file=sys.stderr,
                            mininterval=0.1, dynamic_ncols=True)
        self.last = float("-inf")

    def update(self, done: int, n: int) -> None:
        first = done == n
        if self.bar is not None:
            self.bar.update(n)
            if first:
                self.bar.refresh()
        now = time.monotonic()
        if self.callback is not None and (first or now - self.last >= 0.1):
            self.last = now
            self.callback(done, self.total)

    def close(self, done: int) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.callback is not None:
            self.callback(done, self.total)


def _announced_size(resp: Any, name: str, src: WeightSource, root: Path) -> int | None:
    """``Content-Length`` checked against the recorded size and the free space, before any byte is kept."""
    length = resp.headers.get("Content-Length")
    total = int(length) if length and length.strip().isdigit() else None
    if total is not None and src.size and total != src.size:
        raise FetchError(f"the server announces {total:,} bytes for {src.filename}, but the official file has "
                         f"{src.size:,}; it is another file — {_manual_hint(name, src)}")
    need = total or src.size
    if need:
        try:
            free = shutil.disk_usage(root).free
        except OSError:
            free = None
        if free is not None and free < need:
            raise FetchError(f"the disk holding the cache folder {root} has {free / 1e6:.0f} MB free, but "
                             f"{src.filename} needs {need / 1e6:.0f} MB; free some space there or choose another "
                             f"folder with --cache-dir DIR or ${CACHE_ENV}")
    return total


def _receive(resp: Any, first: bytes, out: IO[bytes], root: Path, total: int | None, label: str,
             progress: "bool | ProgressFn", stall_s: float) -> tuple[int, str]:
    """Copy the body (``first`` already read) into ``out`` → (bytes written, their SHA-256).

    Stops with :class:`FetchError` when fewer than :data:`STALL_MIN_BYTES` arrive in ``stall_s`` seconds,
    when more than ``total`` bytes arrive, or when the disk refuses a write.
    """
    bar = _Progress(label, total, progress)
    digest = hashlib.sha256()
    done = window = 0
    window_t = time.monotonic()
    chunk = first
    try:
        while chunk:
            try:
                out.write(chunk)
            except OSError as err:
                raise cache_error(root, err, f"writing the download after {done / 1e6:.1f} MB") from None
            digest.update(chunk)
            done += len(chunk)
            bar.update(done, len(chunk))
            if total is not None and done > total:
                raise FetchError(f"the server sent more than the {total:,} bytes it announced for {label}; "
                                 "try again later")
            now = time.monotonic()
            window += len(chunk)
            if window >= STALL_MIN_BYTES:
                window, window_t = 0, now
            elif now - window_t > stall_s:
                raise FetchError(stalled_message(stall_s, done))
            chunk = read_some(resp, CHUNK, stall_s, done)
    finally:
        bar.close(done)
    return done, digest.hexdigest()


def _verify(tmp: Path, name: str, src: WeightSource) -> None:
    """Open the finished file with :func:`load_checkpoint`; its inferred variant must be ``name``.

    Whatever the loader raises — :class:`~crossformer.checkpoint.CheckpointError` or anything else a
    malformed file provokes — becomes a :class:`FetchError`.
    """
    from .checkpoint import CheckpointError, load_checkpoint   # torch only once a file is here

    hint = _manual_hint(name, src)
    try:
        _, info = load_checkpoint(tmp)
    except CheckpointError as err:
        raise FetchError(f"the downloaded file is not a usable checkpoint ({err}); {hint}") from None
    except Exception as err:  # noqa: BLE001 — any failure to open a downloaded file is a bad download
        raise FetchError(f"the downloaded file is not a usable checkpoint (the loader failed with "
                         f"{type(err).__name__}: {str(err)[:200]}); {hint}") from None
    if info.variant != name:
        raise FetchError(f"the downloaded file holds {info.variant} weights, not {name} "
                         f"({info.summary()}); check the source URL")
    log.info("verified %s: %s", src.filename, info.summary())

def _download_to_temp(name: str, src: WeightSource, root: Path, url: str | None, progress: "bool | ProgressFn",
                      stall_s: float) -> Path:
    """Download and verify into a new temporary file → its path (removed again on any failure)."""
    hint = _manual_hint(name, src)
    resp, first = open_checkpoint_response(make_opener(), src, url, stall_s, hint)
    tmp: Path | None = None
    try:
        total = _announced_size(resp, name, src, root)
        tmp, out = new_temp(root, src)
        with out:
            done, sha = _receive(resp, first, out, root, total, src.filename, progress, stall_s)
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as err:
                raise cache_error(root, err, "writing the download") from None
        resp.close()
        if total is not None and done != total:
            raise FetchError(f"the connection closed after {done:,} of the {total:,} bytes announced for "
                             f"{src.filename}; try again, or {hint}")
        if src.size and done != src.size:
            raise FetchError(f"got {done:,} bytes for {src.filename}, but the official file has {src.size:,}; "
                             f"try again, or {hint}")
        if done == 0:
            raise FetchError(f"the server sent an empty file for {src.filename}; {hint}")
        if src.sha256:
            if sha != src.sha256:
                raise FetchError(f"the SHA-256 of the downloaded {src.filename} is {sha}, not the official "
                                 f"{src.sha256}: the download was corrupted or the source changed; try again, "
                                 f"or {hint}")
        else:
            _verify(tmp, name, src)
        return tmp
    except BaseException:
        resp.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def fetch_official(name: str, cache_dir: str | Path | None = None, url: str | None = None,
                   progress: "bool | ProgressFn" = True, stall_s: float | None = None) -> Path:
    """Download (once) the official ImageNet-1k checkpoint ``name`` and return its path in the cache.

    ``name`` is one of :data:`OFFICIAL_WEIGHTS` (``crossformer_t/s/b/l``). The file goes to ``cache_dir``,
    else ``$CROSSFORMER_CACHE``, else ``~/.cache/crossformer``; a good cached file (:func:`check_file`) is
    returned at once without touching the network, a bad one is downloaded again. ``url`` replaces the
    Google Drive source (a mirror, a test server); it is fetched directly. ``progress``: ``True`` draws a
    ``tqdm`` bar on stderr; a callable ``progress(bytes_done, bytes_total_or_None)`` is called instead (the
    app's ``st.progress``). ``stall_s`` (default :data:`STALL_S`): abandon a body that delivers fewer than
    :data:`STALL_MIN_BYTES` in that many seconds.

    Two calls for one name (threads or processes) do not race: the second waits for the first's lock and
    then returns the verified file. The file is verified before it is kept (see the module docstring).
    Raises :class:`FetchError` (with what to do instead) on any failure — CrossFormer++ names (Baidu-only),
    unknown names, network errors, stalls, Drive answering a web page, truncated, wrong or malformed
    files, an unwritable or full cache folder — and then leaves no temporary file in the cache.
    """
    src = _source(name)
    stall = STALL_S if stall_s is None else float(stall_s)
    root = cache_root(cache_dir)
    final = root / src.filename
    if cached_ok(final, src):
        log.info("using the cached %s", final)
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cache_error(root, err, "creating it") from None
    with locked(root, src):
        if check_file(final, src, checksum=True) is None:       # another download finished meanwhile
            log.info("another download saved %s meanwhile; using it", final)
            return final
        log.info("downloading %s (%s) into %s", name, src.filename, root)
        tmp = _download_to_temp(name, src, root, url, progress, stall)
        try:
            publish(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
    log.info("saved %s (%.1f MB)", final, final.stat().st_size / 1e6)
    return final
