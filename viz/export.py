"""Turn any figure into bytes for download buttons, slides and papers: PNG, SVG, HTML.

* Plotly → PNG/SVG through kaleido 1.x driving the system chromium (``/usr/bin/chromium`` or
  ``$BROWSER_PATH``). One headless browser is started on first use, in its own event-loop thread, and
  shared by every caller (a Streamlit server's sessions included): calls are serialised with a lock and each
  has a timeout. When kaleido or chromium is missing, or the browser fails, PNG/SVG raise
  :class:`ExportUnavailable` and :func:`png_available` turns ``False``; HTML always works (plotly.js is
  inlined, so the file opens offline).
* matplotlib → ``Figure.savefig`` (Agg canvas, no pyplot); its "HTML" is the SVG in a page.
"""

from __future__ import annotations

import asyncio
import atexit
import io
import logging
import os
import shutil
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import plotly.graph_objects as go

log = logging.getLogger(__name__)

#: Chromium/Chrome binaries tried in order when ``$BROWSER_PATH`` is unset.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome",
                       "/usr/bin/google-chrome-stable")
DEFAULT_SIZE = (900, 600)       # (width, height) when a plotly figure does not set one
START_TIMEOUT_S = 60.0
RENDER_TIMEOUT_S = 60.0
MAX_FAILURES = 3                # after this many browser failures PNG export is off for the process


class ExportUnavailable(RuntimeError):
    """Static (PNG/SVG) export of a plotly figure is not possible here; offer HTML instead."""


def chromium_path() -> str | None:
    """The browser kaleido will drive: ``$BROWSER_PATH`` if it exists, else the first system chromium."""
    env = os.environ.get("BROWSER_PATH")
    if env and os.path.exists(env):
        return env
    for p in CHROMIUM_CANDIDATES:
        if os.path.exists(p):
            return p
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _kaleido_module():
    try:
        import kaleido  # noqa: F401
    except Exception:  # pragma: no cover - depends on the install
        return None
    return kaleido


class _KaleidoWorker:
    """One kaleido browser in a private event loop thread; thread-safe, every call bounded in time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kaleido: Any = None
        self.failures = 0
        self.last_error: str | None = None

    # -- life cycle (called with the lock held) --
    def _start(self) -> None:
        kaleido = _kaleido_module()
        if kaleido is None:
            raise ExportUnavailable("kaleido is not installed")
        path = chromium_path()
        if path is None:
            raise ExportUnavailable("no chromium found (install it, e.g. apt-get install chromium)")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="kaleido-export", daemon=True)
        thread.start()

        async def _open():
            k = kaleido.Kaleido(n=1, timeout=RENDER_TIMEOUT_S, mathjax=False, path=path)
            await k.open()
            return k

        fut = asyncio.run_coroutine_threadsafe(_open(), loop)
        try:
            self._kaleido = fut.result(START_TIMEOUT_S)
        except BaseException as e:
            fut.cancel()
            loop.call_soon_threadsafe(loop.stop)
            raise ExportUnavailable(f"could not start chromium for export: {e!r}") from e
        self._loop = loop
        log.info("kaleido export browser started (%s)", path)

    def _shutdown(self) -> None:
        loop, k = self._loop, self._kaleido
        self._loop, self._kaleido = None, None
        if loop is None:
            return
        if k is not None:
            try:
                asyncio.run_coroutine_threadsafe(k.close(), loop).result(10)
            except BaseException as e:  # noqa: BLE001 - best effort at shutdown
                log.debug("kaleido close failed: %r", e)
        loop.call_soon_threadsafe(loop.stop)

    def close(self) -> None:
        with self._lock:
            self._shutdown()

    def available(self) -> bool:
        return (self.failures < MAX_FAILURES and _kaleido_module() is not None
                and chromium_path() is not None)

    def render(self, fig_dict: dict, opts: dict, timeout: float) -> bytes:
        if not self.available():
            raise ExportUnavailable(self.last_error or "static export unavailable (kaleido/chromium missing)")
        if not self._lock.acquire(timeout=timeout):
            raise ExportUnavailable("export busy: timed out waiting for the browser")
        try:
            if self._kaleido is None:
                try:
                    self._start()
                except ExportUnavailable as e:
                    self._fail(str(e))
                    raise
            fut = asyncio.run_coroutine_threadsafe(self._kaleido.calc_fig(fig_dict, opts=opts), self._loop)
            try:
                return fut.result(timeout)
            except FutureTimeout as e:
                fut.cancel()
                self._fail(f"export timed out after {timeout:.0f} s")
                self._shutdown()   # a stuck browser is restarted on the next call
                raise ExportUnavailable(self.last_error) from e
            except Exception as e:
                self._fail(f"export failed: {e!r}")
                self._shutdown()
                raise ExportUnavailable(self.last_error) from e
        finally:
            self._lock.release()

    def _fail(self, msg: str) -> None:
        self.failures += 1
        self.last_error = msg
        log.warning("static export: %s", msg)


_WORKER = _KaleidoWorker()
atexit.register(_WORKER.close)


def png_available() -> bool:
    """Whether plotly figures can be exported to PNG/SVG here (kaleido importable, chromium present, and
    the browser has not failed repeatedly). matplotlib figures always can."""
    return _WORKER.available()


def close_exporter() -> None:
    """Stop the shared export browser (it restarts on the next PNG/SVG call)."""
    _WORKER.close()


def _is_matplotlib(fig: Any) -> bool:
    try:
        from matplotlib.figure import Figure
    except Exception:  # pragma: no cover
        return False
    return isinstance(fig, Figure)


def _savefig(fig, fmt: str, dpi: float | None = None) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fig.canvas is None or not hasattr(fig.canvas, "print_figure"):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


#: ``layout.meta`` key under which a figure drawn at its column's width keeps its own pixel width for the
#: static exports (:func:`responsive`).
EXPORT_WIDTH = "export_width"


def responsive(fig: Any) -> Any:
    """``fig`` itself, made to take its container's width: a plotly figure's ``layout.width`` is moved to
    ``layout.meta[EXPORT_WIDTH]``, where PNG/SVG exports still find it. Anything else is returned as is.

    In place and cheap (two layout properties), for a figure that is not shared yet: the app applies it
    once when a figure is built, instead of copying the figure for display (a figure copy with its arrays
    took 5–30 ms; an image-heavy page shows several)."""
    if isinstance(fig, go.Figure) and fig.layout.width is not None:
        meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
        fig.update_layout(width=None, meta={**meta, EXPORT_WIDTH: int(fig.layout.width)})
    return fig


def export_width(fig: go.Figure) -> int | None:
    """The pixel width a figure is exported at: its layout width, or the one :func:`responsive` kept."""
    meta = fig.layout.meta
    return fig.layout.width or (meta.get(EXPORT_WIDTH) if isinstance(meta, dict) else None)


def _plotly_static(fig: go.Figure, fmt: str, width: int | None, height: int | None, scale: float,
                   timeout: float) -> bytes:
    fig_dict = fig.to_dict()
    layout = fig_dict.get("layout", {})
    opts = dict(format=fmt, width=int(width or export_width(fig) or DEFAULT_SIZE[0]),
                height=int(height or layout.get("height") or DEFAULT_SIZE[1]), scale=float(scale))
    out = _WORKER.render(fig_dict, opts, timeout)
    return out if isinstance(out, bytes) else bytes(out)


def figure_to_png(fig: Any, *, width: int | None = None, height: int | None = None, scale: float = 2.0,
                  timeout: float = RENDER_TIMEOUT_S) -> bytes:
    """PNG bytes of a plotly or matplotlib figure (``scale`` multiplies the layout size / 100 dpi).

    Raises :class:`ExportUnavailable` for plotly when kaleido/chromium cannot render.
    """
    if _is_matplotlib(fig):
        return _savefig(fig, "png", dpi=100 * scale)
    return _plotly_static(fig, "png", width, height, scale, timeout)


def figure_to_svg(fig: Any, *, width: int | None = None, height: int | None = None,
                  timeout: float = RENDER_TIMEOUT_S) -> bytes:
    """SVG bytes of a plotly or matplotlib figure (plotly: raises :class:`ExportUnavailable` like PNG)."""
    if _is_matplotlib(fig):
        return _savefig(fig, "svg")
    return _plotly_static(fig, "svg", width, height, 1.0, timeout)


def figure_to_html(fig: Any, *, include_plotlyjs: bool | str = True) -> bytes:
    """A standalone HTML page (UTF-8): interactive for plotly (plotly.js inlined → works offline);
    the SVG inside a page for matplotlib. Always available."""
    if _is_matplotlib(fig):
        svg = _savefig(fig, "svg").decode("utf-8")
        return ("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>" + svg
                + "</body></html>").encode("utf-8")
    return fig.to_html(include_plotlyjs=include_plotlyjs, full_html=True).encode("utf-8")


def export_figure(fig: Any, fmt: str = "png", **kwargs) -> tuple[bytes, str, str]:
    """``(data, mime type, file extension)`` in ``fmt`` (``"png"``, ``"svg"`` or ``"html"``), falling back
    to HTML when static export is unavailable — convenient for a download button."""
    fmt = fmt.lower()
    if fmt not in ("png", "svg", "html"):
        raise ValueError(f"format must be png, svg or html, got {fmt!r}")
    if fmt != "html":
        try:
            if fmt == "png":
                return figure_to_png(fig, **kwargs), "image/png", "png"
            return figure_to_svg(fig, **kwargs), "image/svg+xml", "svg"
        except ExportUnavailable as e:
            log.info("falling back to HTML: %s", e)
    return figure_to_html(fig), "text/html", "html"
