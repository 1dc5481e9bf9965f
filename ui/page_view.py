"""The supervisor's page viewer: one page image at fit-width, 100 % or 200 %, panned by dragging or keys.

Speed (bench/ui.py: a keypress to the next page painted within 150 ms p95 on 300-dpi A4 pages) comes
from never decoding or scaling on the UI thread, nor holding Python's GIL while doing it: PNG bytes are
decoded and scaled to the view's width with a smooth (bilinear, box pre-filtered) transform in a worker
(:func:`decode_page`, Pillow: it releases the GIL; PySide6's QImage calls do not),
and the screen keeps the neighbouring pages decoded ahead (:class:`ImageCache`).  The UI thread only
turns a ready QImage into a pixmap and paints it.

At fit-width the view shows the prescaled image 1:1 (sharp, and cheap to paint); at 100 % and 200 % it
shows the full-resolution image under a view transform with smooth pixmap transform, so that panning
a 2480 × 3508 page repaints only the visible part.

Every paint ends with the kiosk's watermark (:mod:`ui.watermark`) over the page: station, person, time.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .qt import (
    QColor,
    QElapsedTimer,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QImage,
    QKeyEvent,
    QObject,
    QPainter,
    QPixmap,
    QPoint,
    QResizeEvent,
    QRunnable,
    Qt,
    QThreadPool,
    Signal,
)
from .watermark import Watermark

FIT_WIDTH, ACTUAL, DOUBLE = "fit-width", "100%", "200%"
ZOOMS = (FIT_WIDTH, ACTUAL, DOUBLE)
PAN_STEP = 120  # px per arrow key at 100 %/200 %


@dataclass
class DecodedPage:
    """A page image ready for the screen: ``full`` at full resolution (None for a preview), ``fitted``
    scaled to ``width`` px with the smooth transform."""

    key: tuple[Any, ...]
    full: QImage | None
    fitted: QImage
    width: int
    source_width: int  # the page's full width in pixels (for a preview: as far as the screen knows it)


def decode_page(key: tuple[Any, ...], data: bytes, width: int, *, keep_full: bool,
                source_width: int = 0) -> DecodedPage:
    """PNG bytes to a DecodedPage, in a worker thread.

    Decoding and scaling use Pillow, not ``QImage.fromData``/``QImage.scaled``: PySide6 holds Python's GIL
    through those two calls (measured on a 300-dpi A4 page: 120 ms and 150 ms during which the UI thread
    cannot run a line of Python), while Pillow releases it while it decodes and resamples.  The scaling is
    the same kind of smooth transform Qt's SmoothTransformation is (bilinear with box pre-reduction, so a
    3× reduction averages every source pixel).  Only the final copy into a QImage (a memcpy) happens in Qt.
    """
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = opened if opened.mode in ("L", "RGB") else opened.convert(
                "RGB" if opened.mode in ("RGBA", "P", "CMYK") else "L")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"page image {key!r} is not a readable PNG ({len(data)} bytes): {e}") from e
    full_width = image.width
    if image.width > width:
        height = max(1, round(image.height * width / image.width))
        fitted = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    else:
        fitted = image
    return DecodedPage(key, to_qimage(image) if keep_full else None, to_qimage(fitted), width,
                       full_width if keep_full else (source_width or full_width))


def to_qimage(image: Image.Image) -> QImage:
    """A Pillow image (L or RGB) as a QImage that owns its pixels."""
    fmt = QImage.Format.Format_Grayscale8 if image.mode == "L" else QImage.Format.Format_RGB888
    channels = 1 if image.mode == "L" else 3
    raw = image.tobytes()
    return QImage(raw, image.width, image.height, image.width * channels, fmt).copy()


class _Relay(QObject):
    done = Signal(object, object)  # key, DecodedPage | BaseException


class _Load(QRunnable):
    def __init__(self, key: tuple[Any, ...], fetch: Callable[[], bytes], width: int, keep_full: bool,
                 source_width: int, relay: _Relay) -> None:
        super().__init__()
        self.key, self.fetch, self.width, self.keep_full, self.relay = key, fetch, width, keep_full, relay
        self.source_width = source_width

    def run(self) -> None:
        try:
            result: Any = decode_page(self.key, self.fetch(), self.width, keep_full=self.keep_full,
                                      source_width=self.source_width)
        except BaseException as e:  # reported on the UI thread
            result = e
        self.relay.done.emit(self.key, result)


class ImageCache(QObject):
    """Decoded pages by key, loaded in a private worker pool (fetch + decode + scale off the UI thread).

    ``request(key, fetch, width)`` starts a load unless the key is cached or on its way; ``loaded`` is
    emitted on the UI thread.  The newest ``capacity`` pages are kept (least recently used dropped).
    """

    loaded = Signal(object)  # key
    failed = Signal(object, object)  # key, error

    def __init__(self, capacity: int = 12, threads: int = 2) -> None:
        super().__init__()
        self.capacity = capacity
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(threads)
        self._pages: OrderedDict[tuple[Any, ...], DecodedPage] = OrderedDict()
        self._pending: set[tuple[Any, ...]] = set()
        self._relay = _Relay()
        self._relay.done.connect(self._done)

    def get(self, key: tuple[Any, ...]) -> DecodedPage | None:
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
        return page

    def pending(self, key: tuple[Any, ...]) -> bool:
        return key in self._pending

    def request(self, key: tuple[Any, ...], fetch: Callable[[], bytes], width: int, *, keep_full: bool = False,
                source_width: int = 0, priority: int = 0) -> None:
        if key in self._pages or key in self._pending:
            return
        self._pending.add(key)
        self.pool.start(_Load(key, fetch, width, keep_full, source_width, self._relay), priority)

    def clear(self) -> None:
        self._pages.clear()

    def _done(self, key: tuple[Any, ...], result: Any) -> None:
        self._pending.discard(key)
        if isinstance(result, BaseException):
            self.failed.emit(key, result)
            return
        self._pages[key] = result
        self._pages.move_to_end(key)
        while len(self._pages) > self.capacity:
            self._pages.popitem(last=False)
        self.loaded.emit(key)

    def wait(self, msecs: int = 10_000) -> None:
        self.pool.waitForDone(msecs)


class PageView(QGraphicsView):
    """Shows one :class:`DecodedPage`; zoom modes fit-width / 100 % / 200 %; drag or keys to pan.

    ``painted`` is emitted after a paint that showed a newly set page (with the milliseconds since
    :meth:`mark` was called, for bench/ui.py), so a measurement covers the real paint, not the call.
    """

    painted = Signal(object, float)  # key, ms since mark()
    resized = Signal(int)  # the new fit width

    def __init__(self, watermark: Watermark | None = None) -> None:
        """``watermark``: the kiosk window's; a view made alone gets its own (never a page without one)."""
        super().__init__()
        self.watermark = watermark = watermark if watermark is not None else Watermark()
        watermark.changed.connect(self.viewport().update)  # the next minute, or another person
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setBackgroundBrush(QColor("#5a5a5a"))
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys belong to the verification screen
        # a portrait page at fit-width is always taller than the view: a vertical bar that is always there
        # keeps the viewport's width (and so the fit width) from changing when it appears
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.zoom = FIT_WIDTH
        self.page: DecodedPage | None = None
        self._shown_key: tuple[Any, ...] | None = None
        self._report_key: tuple[Any, ...] | None = None
        self._clock = QElapsedTimer()
        self._clock.start()
        self._mark_ms = 0.0

    # ------------------------------------------------------------------ what is shown
    def fit_width(self) -> int:
        """The width a page is scaled to at fit-width: the viewport less the scroll bar's room."""
        return max(200, self.viewport().width())

    def mark(self) -> None:
        """Start the clock for the next ``painted`` (a keypress)."""
        self._mark_ms = self._clock.nsecsElapsed() / 1e6

    def show_page(self, page: DecodedPage | None) -> None:
        self.page = page
        if page is None:
            self.item.setPixmap(QPixmap())
            self._shown_key = None
            self.viewport().update()
            return
        new = page.key != self._shown_key
        self._apply()
        if new:
            self._shown_key = page.key
            self._report_key = page.key
            self.verticalScrollBar().setValue(0)

    def set_zoom(self, zoom: str) -> None:
        if zoom not in ZOOMS:
            raise ValueError(f"zoom {zoom!r}: expected one of {ZOOMS}")
        self.zoom = zoom
        self._apply()

    def _apply(self) -> None:
        page = self.page
        if page is None:
            return
        self.resetTransform()
        if self.zoom == FIT_WIDTH or page.full is None:
            image = page.fitted
            if self.zoom != FIT_WIDTH and page.full is None:  # the full image is on its way: scale the preview
                factor = (1.0 if self.zoom == ACTUAL else 2.0) * page.source_width / max(1, image.width())
                self.scale(factor, factor)
        else:
            image = page.full
            factor = 1.0 if self.zoom == ACTUAL else 2.0
            self.scale(factor, factor)
        self.item.setPixmap(QPixmap.fromImage(image))
        self.scene().setSceneRect(self.item.boundingRect())

    # ------------------------------------------------------------------ panning from the keyboard
    def pan(self, dx: int, dy: int) -> None:
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() + dx)
        v.setValue(v.value() + dy)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # only reached when a test focuses the view
        event.ignore()

    # ------------------------------------------------------------------ painting and resizing
    def paintEvent(self, event: Any) -> None:
        super().paintEvent(event)
        # over the page, in the same paint: no frame shows the page without it.  Anchored to the scroll
        # position because panning moves the drawn pixels and repaints only the strip uncovered.
        painter = QPainter(self.viewport())
        self.watermark.paint(painter, event.rect(),
                             QPoint(self.horizontalScrollBar().value(), self.verticalScrollBar().value()))
        painter.end()
        if self._report_key is not None:
            key, self._report_key = self._report_key, None
            self.painted.emit(key, self._clock.nsecsElapsed() / 1e6 - self._mark_ms)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.resized.emit(self.fit_width())

