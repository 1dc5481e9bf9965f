"""The batch as thumbnails grouped by ACR file, to fix the assembly first (as ABBYY FlexiCapture's
verification station does): each file a group, its pages in order under it, a page's verdict beside it.

Dragging a page onto another place asks for a move (:attr:`AssemblyTree.move_requested`); the tree does
not move the item itself: the service decides (``move_page``) and the screen redraws from its answer, so
what is shown is always what the store holds.  The same moves are on the keyboard (ui/verify_actions.py).

The thumbnails carry the kiosk's watermark (:mod:`ui.watermark`), painted over the whole tree after the
items; a drag carries only the page's number, never its picture, so no image leaves the tree that way.
"""

from __future__ import annotations

from typing import Any

from .qt import (
    QAbstractItemView,
    QBrush,
    QColor,
    QDropEvent,
    QFont,
    QIcon,
    QImage,
    QMimeData,
    QPixmap,
    QSize,
    Qt,
    QTreeWidget,
    QTreeWidgetItem,
    Signal,
)
from .watermark import Watermark, WatermarkedItemView

THUMB_WIDTH = 56
ROLE_SEQ = Qt.ItemDataRole.UserRole  # a page item: its seq; a file item: None
ROLE_DOC = Qt.ItemDataRole.UserRole + 1  # the document id (a file item, and a page item's file)
VERDICT_MARK = {"ok": "✓", "rescan": "↻ rescan", "delete": "✗", None: "·"}
UNFILED = -1
PAGE_MIME = "application/x-scanstation-page"  # what a dragged page carries: its number, as text


def document_title(doc: dict[str, Any], live_pages: int) -> str:
    """``"ACR 2 · E1234 आशा वर्मा · 2019-20 · 3 p. ⚑ duplicate"`` — the file's index as the supervisor checks
    it (the name as the roster has it)."""
    who = " ".join(str(x) for x in (doc.get("employee_code") or "—", doc.get("employee_name") or "") if x)
    parts = [f"ACR {doc.get('seq', '?')}", who, str(doc.get("acr_period") or "—"), f"{live_pages} p."]
    flags = list(doc.get("flags") or [])
    if doc.get("not_in_roster") and "not_in_roster" not in flags:
        flags.append("not_in_roster")
    text = " · ".join(parts)
    if flags:
        verdicts = doc.get("flag_verdicts") or {}
        marks = [f"{f}{' ✓' if (verdicts.get(f) or {}).get('verdict') == 'accepted' else ''}" for f in flags]
        text += "  ⚑ " + ", ".join(marks)
    return text


def page_title(page: dict[str, Any]) -> str:
    text = f"p. {page['seq']}"
    if page.get("deleted"):
        return f"{text}  ✗ {page['deleted']}"
    verdict = page.get("verdict")
    mark = VERDICT_MARK.get(verdict, str(verdict))
    if str(verdict or "").startswith("rotate"):
        mark = f"⟳ {page.get('rotation', 0)}°"
    text += f"  {mark}"
    if page.get("flags"):
        text += "  ⚑"
    if page.get("seen_by_me"):
        text += "  👁"
    return text


def structure(detail: dict[str, Any]) -> tuple[Any, ...]:
    """What decides the tree's shape: files in order, each with its pages in order (not their verdicts)."""
    pages = [p for p in detail.get("pages", []) if not p.get("replaced_by")]
    files = [(d["id"], tuple(p["seq"] for p in pages if p.get("document_id") == d["id"]))
             for d in detail.get("documents", [])]
    files.append((UNFILED, tuple(p["seq"] for p in pages if p.get("document_id") is None)))
    return tuple(files)


class AssemblyTree(WatermarkedItemView, QTreeWidget):
    page_chosen = Signal(int)  # seq
    move_requested = Signal(int, int, int)  # seq, document id, the page it goes before (0: the file's end)

    def __init__(self, watermark: Watermark | None = None) -> None:
        """``watermark``: the kiosk window's; a tree made alone gets its own (never a page without one)."""
        super().__init__()
        self.use_watermark(watermark)
        # scrolled by pixels and repainted whole: the watermark is painted in viewport coordinates
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHeaderHidden(True)
        self.setColumnCount(1)
        self.setIconSize(QSize(THUMB_WIDTH, int(THUMB_WIDTH * 1.414)))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keyboard belongs to the screen (every action has a key)
        self.setMinimumWidth(230)
        self._pages: dict[int, QTreeWidgetItem] = {}
        self._files: dict[int, QTreeWidgetItem] = {}
        self._icons: dict[int, QIcon] = {}
        self._shape: tuple[Any, ...] = ()
        self.itemClicked.connect(self._clicked)

    # ------------------------------------------------------------------ filling
    def populate(self, detail: dict[str, Any]) -> None:
        """Show ``batch_detail``: rebuilt when files or page order changed, else only the labels."""
        shape = structure(detail)
        docs = {d["id"]: d for d in detail.get("documents", [])}
        pages = {p["seq"]: p for p in detail.get("pages", []) if not p.get("replaced_by")}
        if shape != self._shape:
            self._shape = shape
            current = self.current_seq()
            self.clear()
            self._pages.clear()
            self._files.clear()
            for doc_id, seqs in shape:
                if doc_id == UNFILED and not seqs:
                    continue
                top = QTreeWidgetItem([""])
                top.setData(0, ROLE_SEQ, None)
                top.setData(0, ROLE_DOC, doc_id)
                top.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsDropEnabled)
                font = QFont()
                font.setBold(True)
                top.setFont(0, font)
                self.addTopLevelItem(top)
                self._files[doc_id] = top
                for seq in seqs:
                    child = QTreeWidgetItem([""])
                    child.setData(0, ROLE_SEQ, seq)
                    child.setData(0, ROLE_DOC, doc_id)
                    child.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                                   | Qt.ItemFlag.ItemIsDragEnabled)
                    if seq in self._icons:
                        child.setIcon(0, self._icons[seq])
                    top.addChild(child)
                    self._pages[seq] = child
                top.setExpanded(True)
            if current is not None:
                self.select_seq(current)
        for doc_id, top in self._files.items():
            live = [s for s in dict(shape).get(doc_id, ()) if not pages[s].get("deleted")]
            top.setText(0, document_title(docs[doc_id], len(live)) if doc_id in docs
                        else f"बिना फ़ाइल / unfiled · {len(live)} p.")
            flagged = bool(docs.get(doc_id, {}).get("flags")) or bool(docs.get(doc_id, {}).get("not_in_roster"))
            top.setForeground(0, QBrush(QColor("#8a4b00" if flagged else "#000000")))
        for seq, item in self._pages.items():
            page = pages[seq]
            item.setText(0, page_title(page))
            item.setForeground(0, QBrush(QColor("#9e9e9e" if page.get("deleted") else "#000000")))

    def set_thumbnail(self, seq: int, image: QImage) -> None:
        icon = QIcon(QPixmap.fromImage(image))
        self._icons[seq] = icon
        item = self._pages.get(seq)
        if item is not None:
            item.setIcon(0, icon)

    def forget_thumbnail(self, seq: int) -> None:
        self._icons.pop(seq, None)

    def has_thumbnail(self, seq: int) -> bool:
        return seq in self._icons

    def forget_all(self) -> None:
        self.clear()
        self._pages.clear()
        self._files.clear()
        self._icons.clear()
        self._shape = ()

    # ------------------------------------------------------------------ selection
    def select_seq(self, seq: int) -> None:
        item = self._pages.get(seq)
        if item is not None and self.currentItem() is not item:
            self.setCurrentItem(item)
            self.scrollToItem(item)

    def current_seq(self) -> int | None:
        item = self.currentItem()
        seq = item.data(0, ROLE_SEQ) if item is not None else None
        return int(seq) if seq is not None else None

    def _clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        seq = item.data(0, ROLE_SEQ)
        if seq is not None:
            self.page_chosen.emit(int(seq))

    # ------------------------------------------------------------------ drag and drop: ask, do not move
    def mimeTypes(self) -> list[str]:
        return [PAGE_MIME]

    def mimeData(self, items: Any) -> QMimeData:
        """A dragged page: its number only.  Qt's own item data would carry the thumbnail (the icon) out to
        whichever program the drag is dropped on; this carries nothing worth taking."""
        data = QMimeData()
        seqs = [str(item.data(0, ROLE_SEQ)) for item in items if item.data(0, ROLE_SEQ) is not None]
        data.setData(PAGE_MIME, ",".join(seqs).encode())
        return data

    def drop_target(self, seq: int, target: QTreeWidgetItem | None,
                    where: QAbstractItemView.DropIndicatorPosition) -> tuple[int, int | None] | None:
        """Where a page dropped at ``target``/``where`` goes: (document id, the page it goes before, or None
        for the file's end); None when the drop means nothing (onto itself, outside every file)."""
        if target is None:
            return None
        Pos = QAbstractItemView.DropIndicatorPosition
        target_seq = target.data(0, ROLE_SEQ)
        if target_seq is None:  # a file: on it = at its end; just below its title = at its start
            doc_id = int(target.data(0, ROLE_DOC))
            children = [s for s in _child_seqs(target) if s != seq]
            if where == Pos.AboveItem:
                index = self.indexOfTopLevelItem(target)
                prev = self.topLevelItem(index - 1) if index > 0 else None
                if prev is not None:
                    return int(prev.data(0, ROLE_DOC)), None
                return doc_id, children[0] if children else None
            if where == Pos.BelowItem:
                return doc_id, children[0] if children else None
            return doc_id, None
        if target_seq == seq:
            return None
        parent = target.parent()
        if parent is None:
            return None
        doc_id = int(parent.data(0, ROLE_DOC))
        order = [s for s in _child_seqs(parent) if s != seq]
        if where == Pos.BelowItem:
            index = order.index(int(target_seq)) + 1
            return doc_id, order[index] if index < len(order) else None
        return doc_id, int(target_seq)

    def dropEvent(self, event: QDropEvent) -> None:
        seq = self.current_seq()
        target = self.itemAt(event.position().toPoint())
        found = self.drop_target(seq, target, self.dropIndicatorPosition()) if seq is not None else None
        event.setDropAction(Qt.DropAction.IgnoreAction)
        event.ignore()  # the service moves the page; the tree is redrawn from its answer
        if seq is not None and found is not None and found[0] != UNFILED:
            self.move_requested.emit(seq, found[0], found[1] if found[1] is not None else 0)


def _child_seqs(item: QTreeWidgetItem) -> list[int]:
    """The page seqs under a file item, in order."""
    seqs = []
    for i in range(item.childCount()):
        child = item.child(i)
        if child is not None and child.data(0, ROLE_SEQ) is not None:
            seqs.append(int(child.data(0, ROLE_SEQ)))
    return seqs
