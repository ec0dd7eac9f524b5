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

import contextlib
import errno
import hashlib
import html.parser
import http.client
import http.cookiejar
import json
import logging
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Optional

from .variants import VARIANT_RECORDS, WeightSource

log = logging.getLogger(__name__)

#: Google Drive's direct-download endpoint (a module constant so tests can point it at a local server).
DRIVE_URL = "https://drive.google.com/uc"
#: Environment variable naming the cache folder (default ``~/.cache/crossformer``).
CACHE_ENV = "CROSSFORMER_CACHE"
USER_AGENT = "crossformer-explorer-fetch/1.0 (python urllib)"
#: Seconds to wait for a connection and for the response headers (or ``stall_s``, if shorter).
TIMEOUT_S = 60.0
#: A body that delivers fewer than :data:`STALL_MIN_BYTES` in this many seconds has stalled.
STALL_S = 30.0
STALL_MIN_BYTES = 1024
#: How long a second download of the same name waits for the first one's lock.
LOCK_WAIT_S = 3600.0
CHUNK = 64 << 10             # bytes per read: progress moves from the first 64 KiB on
_MAX_PAGE = 2 << 20          # an HTML page larger than this is not a Drive warning page
TEMP_SUFFIX = ".download"    # ``.<file>.XXXXXXXX.download``: a download in progress
LOCK_SUFFIX = ".lock"        # ``.<file>.lock``: kept after release (removing it would race), 0 bytes


class FetchError(RuntimeError):
    """A download that did not produce a verified checkpoint; the message says what to do instead."""


#: The official ImageNet-1k classification checkpoints a script can download (Google Drive; SPEC §10),
#: a view of :data:`crossformer.variants.VARIANT_RECORDS`.
OFFICIAL_WEIGHTS: dict[str, WeightSource] = {n: v.weights for n, v in VARIANT_RECORDS.items() if v.weights}

#: Variants whose official weights are on Baidu Netdisk only (CrossFormer++, TPAMI 2023): ``{name: link}``.
BAIDU_ONLY: dict[str, str] = {n: v.baidu for n, v in VARIANT_RECORDS.items() if v.baidu and not v.weights}

#: ``progress(bytes_done, bytes_total_or_None)``: a download progress callback.
ProgressFn = Callable[[int, Optional[int]], None]


# ---- cache ----------------------------------------------------------------------------------------
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
        if _looks_like_html(head):
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


def _cache_error(root: Path, err: OSError, doing: str) -> FetchError:
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


# ---- HTTP -----------------------------------------------------------------------------------------
def _opener() -> urllib.request.OpenerDirector:
    """An opener that keeps cookies across the Drive confirmation round trip."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", USER_AGENT), ("Accept-Encoding", "identity")]
    opener.cookiejar = jar  # type: ignore[attr-defined]
    return opener


def _open(opener: urllib.request.OpenerDirector, url: str, stall_s: float) -> Any:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise FetchError(f"refusing to fetch {url!r}: only http(s) URLs are supported")
    try:
        return opener.open(url, timeout=min(TIMEOUT_S, stall_s))
    except urllib.error.HTTPError as err:
        raise FetchError(f"{url} answered HTTP {err.code} {err.reason}; check the URL or try again later") \
            from None
    except TimeoutError:
        raise FetchError(f"{url} did not answer within {min(TIMEOUT_S, stall_s):g} s; try again later") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise FetchError(f"could not reach {url}: {reason}; check the network connection and try again") \
            from None


def _looks_like_html(head: bytes, content_type: str = "") -> bool:
    """A web page rather than a checkpoint: ``text/html`` or a body starting like HTML."""
    if "text/html" in content_type.lower():
        return True
    start = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--"))


class _DrivePage(html.parser.HTMLParser):
    """Collects the forms (action + hidden inputs) and link targets of a Drive warning page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.links: list[str] = []
        self._form: tuple[str, dict[str, str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form":
            self._form = (a.get("action", ""), {})
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            if a.get("type", "text").lower() in ("hidden", "submit", "text"):
                self._form[1][a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def _confirm_url(page: bytes, page_url: str, drive_id: str, cookies: http.cookiejar.CookieJar) -> str | None:
    """The URL that Drive's "can't scan this file for viruses" page would submit to, or None."""
    text = page.decode("utf-8", "replace")
    parser = _DrivePage()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # noqa: BLE001 — a malformed page just yields no form
        log.debug("could not parse the Drive page", exc_info=True)
    # Current pages: <form id="download-form" action="https://drive.usercontent.google.com/download">
    # with hidden id / export / confirm / uuid inputs.
    for action, fields in parser.forms:
        if "confirm" in fields or ("id" in fields and "download" in action):
            fields.setdefault("id", drive_id)
            target = urllib.parse.urljoin(page_url, action or page_url)
            return f"{target.split('?')[0]}?{urllib.parse.urlencode(fields)}"
    # Older pages: a link carrying ?confirm=TOKEN (its href may keep &amp; entities in raw text).
    for href in parser.links + re.findall(r"""href=["']([^"']*confirm=[^"']*)["']""", text):
        href = href.replace("&amp;", "&")
        if "confirm=" in href:
            return urllib.parse.urljoin(page_url, href)
    m = re.search(r"confirm=([0-9A-Za-z_\-]+)", text)
    token = m.group(1) if m else None
    # Oldest: a download_warning_* cookie holds the token.
    for c in cookies:
        if c.name.startswith("download_warning") and c.value:
            token = c.value
    if token:
        return f"{DRIVE_URL}?{urllib.parse.urlencode({'export': 'download', 'confirm': token, 'id': drive_id})}"
    return None


def _read_some(resp: Any, n: int, stall_s: float, done: int) -> bytes:
    """Whatever the body has ready, up to ``n`` bytes (``b""`` at its end); a silent socket is a stall."""
    try:
        return resp.read1(n)
    except TimeoutError:
        raise FetchError(_stalled(stall_s, done)) from None
    except (OSError, http.client.HTTPException) as err:
        raise FetchError(f"the download broke off after {done / 1e6:.1f} MB ({err}); try again") from None


def _stalled(stall_s: float, done: int) -> str:
    return (f"the download stalled: fewer than {STALL_MIN_BYTES} bytes arrived in {stall_s:g} s "
            f"(after {done / 1e6:.1f} MB); the server or the network is stuck — try again later")


# ---- download -------------------------------------------------------------------------------------
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


def _open_checkpoint_response(opener: urllib.request.OpenerDirector, name: str, src: WeightSource,
                              url: str | None, stall_s: float) -> tuple[Any, bytes]:
    """Open the response that carries the file itself → (response, its first bytes)."""
    hint = _manual_hint(name, src)
    if url is not None:
        resp = _open(opener, url, stall_s)
        first = _read_some(resp, CHUNK, stall_s, 0)
        if _looks_like_html(first, resp.headers.get("Content-Type", "")):
            resp.close()
            raise FetchError(f"{url} returned a web page instead of the checkpoint; {hint}")
        return resp, first
    start = f"{DRIVE_URL}?{urllib.parse.urlencode({'export': 'download', 'id': src.drive_id})}"
    resp = _open(opener, start, stall_s)
    first = _read_some(resp, CHUNK, stall_s, 0)
    if not _looks_like_html(first, resp.headers.get("Content-Type", "")):
        return resp, first
    try:
        page = first + resp.read(_MAX_PAGE - len(first))
    except (OSError, http.client.HTTPException):
        page = first
    page_url = resp.geturl()
    resp.close()
    target = _confirm_url(page, page_url, src.drive_id, opener.cookiejar)  # type: ignore[attr-defined]
    if target is not None:
        log.info("Google Drive asked to confirm the download of %s (no virus scan); following it", src.filename)
        resp = _open(opener, target, stall_s)
        first = _read_some(resp, CHUNK, stall_s, 0)
        if not _looks_like_html(first, resp.headers.get("Content-Type", "")):
            return resp, first
        resp.close()
    raise FetchError("Google Drive returned a web page instead of the checkpoint (quota exceeded or the link "
                     f"changed); {hint}")


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
                raise _cache_error(root, err, f"writing the download after {done / 1e6:.1f} MB") from None
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
                raise FetchError(_stalled(stall_s, done))
            chunk = _read_some(resp, CHUNK, stall_s, done)
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


def _new_temp(root: Path, src: WeightSource) -> tuple[Path, IO[bytes]]:
    """A fresh, uniquely named temporary file in the cache folder, open for writing."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{src.filename}.", suffix=TEMP_SUFFIX, dir=root)
    except OSError as err:
        raise _cache_error(root, err, "creating a temporary file") from None
    return Path(name), os.fdopen(fd, "wb")


def _publish(tmp: Path, final: Path) -> None:
    """Rename the verified temporary file to its final name (atomic on one file system)."""
    try:
        os.replace(tmp, final)
    except OSError as err:
        raise _cache_error(final.parent, err, f"moving the verified download to {final.name}") from None


def _download_to_temp(name: str, src: WeightSource, root: Path, url: str | None, progress: "bool | ProgressFn",
                      stall_s: float) -> Path:
    """Download and verify into a new temporary file → its path (removed again on any failure)."""
    hint = _manual_hint(name, src)
    resp, first = _open_checkpoint_response(_opener(), name, src, url, stall_s)
    tmp: Path | None = None
    try:
        total = _announced_size(resp, name, src, root)
        tmp, out = _new_temp(root, src)
        with out:
            done, sha = _receive(resp, first, out, root, total, src.filename, progress, stall_s)
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as err:
                raise _cache_error(root, err, "writing the download") from None
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


@contextlib.contextmanager
def _locked(root: Path, src: WeightSource) -> Iterator[None]:
    """Hold ``.<file>.lock`` in the cache folder: one download of a name at a time (threads and processes)."""
    from filelock import FileLock, Timeout

    lock = FileLock(root / f".{src.filename}{LOCK_SUFFIX}", timeout=LOCK_WAIT_S)
    try:
        lock.acquire()
    except Timeout:
        raise FetchError(f"another download of {src.filename} into {root} did not finish within "
                         f"{LOCK_WAIT_S:g} s; wait for it, or stop it and try again") from None
    except OSError as err:
        raise _cache_error(root, err, "creating the lock file") from None
    try:
        yield
    finally:
        lock.release()


def _cached_ok(final: Path, src: WeightSource) -> bool:
    """The cached file passes :func:`check_file` (with the checksum when one is recorded); a bad one is
    reported and will be replaced."""
    problem = check_file(final, src, checksum=True)
    if problem is not None and problem != "missing":
        log.warning("the cached %s is bad (%s); downloading it again", final, problem)
    return problem is None


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
    if _cached_ok(final, src):
        log.info("using the cached %s", final)
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _cache_error(root, err, "creating it") from None
    with _locked(root, src):
        if check_file(final, src, checksum=True) is None:       # another download finished meanwhile
            log.info("another download saved %s meanwhile; using it", final)
            return final
        log.info("downloading %s (%s) into %s", name, src.filename, root)
        tmp = _download_to_temp(name, src, root, url, progress, stall)
        try:
            _publish(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
    log.info("saved %s (%.1f MB)", final, final.stat().st_size / 1e6)
    return final
