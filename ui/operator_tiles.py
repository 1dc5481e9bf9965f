"""The page tiles of the operator's screen (:class:`ui.operator.OperatorScreen`): one tile per page the
moment the service acknowledges it, with its processing state (received, cleaned, OCR, flags).

A tile's picture is the page's thumbnail (``page_thumbnail``, :data:`THUMB_WIDTH` wide) once the page is
cleaned, a drawn :func:`placeholder` (the page's number) until then; :func:`tile_text` is the state under
it; :func:`tiles_view` the grid, one fixed cell per page so that the tiles line up, with the kiosk's
watermark (:mod:`ui.watermark`) painted over the tiles.  The screen keeps the tiles and asks for the
thumbnails.
"""

from __future__ import annotations

from typing import Any

from .qt import QAbstractItemView, QColor, QFont, QListWidget, QPainter, QPixmap, QSize, Qt
from .watermark import Watermark, WatermarkedItemView
from .widgets import bi

THUMB_WIDTH = 120
THUMB_SIZE = QSize(THUMB_WIDTH, int(THUMB_WIDTH * 1.414))
STATE_TEXT = {
    "captured": bi("प्राप्त", "received"),
    "processed": bi("साफ़", "cleaned"),
}
OCR_TEXT = {  # short: a tile is narrow
    "pending": "OCR …",
    "done": "OCR ✓",
    "failed": "OCR ✗",
    "skipped": bi("खाली", "blank"),
}


def placeholder(seq: int, state: str) -> QPixmap:
    """The tile of a page not cleaned yet (or without thumbnails): its number and state, drawn."""
    pixmap = QPixmap(THUMB_SIZE)
    pixmap.fill(QColor("#eceff1") if state == "captured" else QColor("#e8f5e9"))
    painter = QPainter(pixmap)
    painter.setPen(QColor("#455a64"))
    painter.drawRect(0, 0, THUMB_SIZE.width() - 1, THUMB_SIZE.height() - 1)
    font = QFont()
    font.setPointSize(20)
    font.setBold(True)
    painter.setFont(font)
    painter.drawText(pixmap.rect(), int(Qt.AlignmentFlag.AlignCenter), str(seq))
    painter.end()
    return pixmap


def tile_text(page: dict[str, Any]) -> str:
    state = STATE_TEXT.get(str(page.get("state")), str(page.get("state")))
    ocr = OCR_TEXT.get(str(page.get("ocr")), "") if page.get("state") == "processed" else ""
    flags = page.get("flags") or []
    lines = [f"{page['seq']} · {state}"] + ([ocr] if ocr else []) + ([", ".join(flags)] if flags else [])
    return "\n".join(lines)


class TilesView(WatermarkedItemView, QListWidget):
    """The tile grid with the watermark painted over its tiles (and the space between them)."""

    def __init__(self, watermark: Watermark | None = None) -> None:
        """``watermark``: the kiosk window's; a grid made alone gets its own (never a page without one)."""
        super().__init__()
        self.use_watermark(watermark)
        # no drag: a tile's picture never leaves the grid (Static movement alone still allows a drag out)
        self.setDragEnabled(False)
        self.setDragDropMode(QAbstractItemView.DragDropMode.NoDragDrop)


def tiles_view(watermark: Watermark | None = None) -> TilesView:
    """The grid of tiles: icons of :data:`THUMB_SIZE`, a fixed cell per page, one selected at a time."""
    view = TilesView(watermark)
    view.setViewMode(QListWidget.ViewMode.IconMode)
    view.setIconSize(THUMB_SIZE)
    # a fixed cell per page: the tiles line up whatever their state text says
    view.setGridSize(QSize(THUMB_SIZE.width() + 50, THUMB_SIZE.height() + 110))
    view.setResizeMode(QListWidget.ResizeMode.Adjust)
    view.setMovement(QListWidget.Movement.Static)
    view.setSpacing(6)
    view.setWordWrap(True)
    view.setTextElideMode(Qt.TextElideMode.ElideNone)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    return view


__all__ = ["OCR_TEXT", "STATE_TEXT", "THUMB_SIZE", "THUMB_WIDTH", "TilesView", "placeholder", "tile_text", "tiles_view"]
