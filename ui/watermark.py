"""The watermark over every page the kiosk shows: station, signed-in person, date and time.

The secure room forbids phones, but a photo taken anyway must name its source: which station, whose session,
when.  So every place a page or a thumbnail is on the screen (the supervisor's page view and assembly tree,
the operator's tiles) paints :meth:`Watermark.paint` over what it has drawn, in its own paint event: the
text is tiled diagonally across the whole view, so a photo of any part of it carries at least one whole
line, semi-transparent so the page stays readable.  Nothing in the UI turns it off: the views call it
unconditionally, and the text comes from the service's ``status`` (the station id and the session's person
as the service knows them), not from anything typed at the kiosk.

The rest of the work screen (batch lists, the dashboard, accounts, the audit trail: names and counts, no
page) carries it too, fainter (:class:`WatermarkOverlay`, over the whole work page but not over the views
that paint their own), so that a photo of any signed-in screen names its source.

The time is the minute, refreshed at each minute's turn (``changed`` makes the views repaint).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .qt import (
    QAbstractItemView,
    QColor,
    QEvent,
    QFont,
    QFontMetrics,
    QObject,
    QPainter,
    QPoint,
    QPointF,
    QRect,
    QRectF,
    QRegion,
    QStaticText,
    Qt,
    QTimer,
    QTransform,
    QWidget,
    Signal,
)

ANGLE = 30.0  # degrees: the text rises to the right (a test turns the grab back by this much to read it)
COLOUR = QColor(96, 16, 16, 72)  # dark red at ~28 %: seen on white paper and on grey, the page stays legible
PIXEL_SIZE = 18
GAP_X = 90  # between two copies on one diagonal line, px
LINE_STEP = 4.2  # distance between the diagonal lines, in text heights
UNKNOWN = "—"


class Watermark(QObject):
    """The watermark's text and how to paint it; one per kiosk window, shared by every view of a page."""

    changed = Signal()

    def __init__(self, now: Callable[[], datetime] = datetime.now) -> None:
        super().__init__()
        self._now = now
        self.station = UNKNOWN
        self.person = UNKNOWN
        self.role = ""
        self._font = QFont()
        self._font.setPixelSize(PIXEL_SIZE)
        self._font.setBold(True)
        self._metrics = QFontMetrics(self._font)
        self._minute = ""
        self._static = QStaticText()
        self._size = (0, 0)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.tick)
        self.tick()

    # ------------------------------------------------------------------ the text
    def set_identity(self, station: str, person: str, role: str) -> None:
        """From the service's ``status``: the station id, the session's person and role."""
        self.station, self.person, self.role = station or UNKNOWN, person or UNKNOWN, role
        self._rebuild()

    def clear_identity(self) -> None:
        """Nobody signed in (no page is on the screen then; the next person's ``status`` sets it again)."""
        self.set_identity(UNKNOWN, UNKNOWN, "")

    def text(self) -> str:
        who = f"{self.person} ({self.role})" if self.role else self.person
        return f"ScanStation {self.station} · {who} · {self._minute}"

    def tick(self) -> None:
        """Take the current minute; called again just after the next minute begins."""
        now = self._now()
        self._minute = now.strftime("%Y-%m-%d %H:%M")
        self._rebuild()
        ms_left = (60 - now.second) * 1000 - now.microsecond // 1000
        self._timer.start(max(50, ms_left + 50))  # just past the turn, so the new minute is read

    def _rebuild(self) -> None:
        text = self.text()
        if text == self._static.text():
            return
        self._static = QStaticText(text)
        self._static.prepare(QTransform().rotate(-ANGLE), self._font)
        self._size = (self._metrics.horizontalAdvance(text), self._metrics.height())
        self.changed.emit()

    # ------------------------------------------------------------------ painting
    def paint(self, painter: QPainter, area: QRect, scroll: QPoint | None = None, *, opacity: float = 1.0) -> None:
        """Tile the text over ``area`` (widget coordinates, already drawn by the view).

        ``scroll``: the view's scroll offset in pixels.  The pattern is anchored to the content, so that
        when a view scrolls by moving its pixels and repaints only the uncovered strip, old and new parts
        of the pattern still meet; views that scroll by items repaint whole instead (they pass nothing)."""
        offset = scroll if scroll is not None else QPoint(0, 0)
        width, height = self._size
        step_x = width + GAP_X
        step_y = height * LINE_STEP
        painter.save()
        painter.setClipRect(area, Qt.ClipOperation.IntersectClip)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        painter.setFont(self._font)
        painter.setPen(COLOUR)
        painter.setOpacity(opacity)
        painter.translate(-offset.x(), -offset.y())
        painter.rotate(-ANGLE)
        # the area in the rotated frame (content coordinates turned by +ANGLE): the rows and columns to draw
        box = QTransform().rotate(ANGLE).mapRect(QRectF(area.translated(offset)))
        first_row = math.floor(box.top() / step_y) - 1
        last_row = math.ceil(box.bottom() / step_y) + 1
        for row in range(first_row, last_row + 1):
            shift = (row % 2) * step_x / 2  # alternate lines half a step along: a brick pattern, no columns
            first_col = math.floor((box.left() - shift) / step_x) - 1
            last_col = math.ceil((box.right() - shift) / step_x) + 1
            for col in range(first_col, last_col + 1):
                painter.drawStaticText(QPointF(col * step_x + shift, row * step_y), self._static)
        painter.restore()


class WatermarkOverlay(QWidget):
    """The faint watermark over a whole page of the window (the work page), on top of its children.

    Mouse and keyboard go through it (WA_TransparentForMouseEvents, no focus); it follows its parent's size;
    ``exclude`` lists the views that paint the full watermark themselves (the page view, the thumbnails),
    which it leaves alone so that a page carries one pattern, not two."""

    OPACITY = 0.55

    def __init__(self, watermark: Watermark, parent: QWidget, exclude: list[QWidget]) -> None:
        super().__init__(parent)
        self.host = parent
        self.watermark = watermark
        self.exclude = exclude
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground, True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        watermark.changed.connect(self.update)
        parent.installEventFilter(self)
        self.setGeometry(parent.rect())
        self.raise_()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.host and event.type() in (QEvent.Type.Resize, QEvent.Type.ChildAdded):
            self.setGeometry(self.host.rect())
            self.raise_()  # above children added later too
        return False

    def paintEvent(self, event: Any) -> None:
        region = QRegion(event.rect())
        for view in self.exclude:
            if view.isVisible() and view.window() is self.window():
                corner = view.mapTo(self.window(), QPoint(0, 0)) - self.mapTo(self.window(), QPoint(0, 0))
                region -= QRegion(QRect(corner, view.size()))
        if region.isEmpty():
            return
        painter = QPainter(self)
        painter.setClipRegion(region)
        self.watermark.paint(painter, event.rect(), opacity=self.OPACITY)
        painter.end()


# The mixin below is typed as the item view it is mixed into; at run time it is a plain class in front of the Qt one.
if TYPE_CHECKING:
    _ItemView = QAbstractItemView
else:
    _ItemView = object


class WatermarkedItemView(_ItemView):
    """Mixed in front of a Qt item view that shows pages (the supervisor's thumbnails, the operator's tiles):
    the watermark painted over its viewport after the items, and afresh after every scroll."""

    watermark: Watermark

    def use_watermark(self, watermark: Watermark | None) -> None:
        """``watermark``: the kiosk window's; a view made alone gets its own (never a page without one)."""
        self.watermark = watermark if watermark is not None else Watermark()
        self.watermark.changed.connect(self.viewport().update)

    def paintEvent(self, event: Any) -> None:
        super().paintEvent(event)
        painter = QPainter(self.viewport())
        self.watermark.paint(painter, event.rect())
        painter.end()

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        super().scrollContentsBy(dx, dy)
        self.viewport().update()  # a scroll moves pixels, watermark included: paint it afresh in place


__all__ = ["ANGLE", "Watermark", "WatermarkOverlay", "WatermarkedItemView"]
